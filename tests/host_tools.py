"""What a test needs of the host (a system tool, root, cgroup v2), checked one way.

Where something is missing the test is skipped with the reason; with
``GOSSIPCERT_REQUIRE_TOOLS=1`` (set by CI) the skip is a failure instead, so a CI machine
that lost a tool cannot pass by skipping. Docker is gated the same way in ``conftest.py``.
"""

from __future__ import annotations

import functools
import os
import shutil

import pytest

REQUIRE_TOOLS_ENV = "GOSSIPCERT_REQUIRE_TOOLS"


def need(reason: str | None) -> None:
    """Skip (or, under CI, fail) the calling test when ``reason`` says what is missing."""
    if reason is None:
        return
    if os.environ.get(REQUIRE_TOOLS_ENV) == "1":
        pytest.fail(f"{REQUIRE_TOOLS_ENV}=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@functools.cache
def serf_missing() -> str | None:
    """Why ``serf`` cannot run here, or None; looked up once per test session."""
    if shutil.which("serf") is None:
        return "serf is not installed (Debian package: serf)"
    return None


def need_serf() -> None:
    need(serf_missing())
