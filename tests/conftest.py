"""Shared test set-up.

Tests marked ``docker`` need a Docker engine. Where none answers they are skipped with the
reason; with ``GOSSIPCERT_REQUIRE_DOCKER=1`` (set by CI) that skip is a failure instead,
so a CI machine that lost its engine cannot pass by skipping.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from typing import Any

import pytest
from gossipcert.chaos.toxiproxy import BackgroundServer
from gossipcert.chaos.toxiproxy_client import ToxiproxyClient
from hypothesis import settings
from simulated_runs import reference_timing as manifest_reference_timing

REQUIRE_DOCKER_ENV = "GOSSIPCERT_REQUIRE_DOCKER"


# Hypothesis budgets (``HYPOTHESIS_PROFILE`` picks one in the property tests): ``ci`` a
# fixed, derandomized budget; ``dev`` a quick look; ``long`` a deep local search.
_COMMON_PROFILE: dict[str, object] = {"deadline": None, "print_blob": True}
settings.register_profile("ci", max_examples=25, derandomize=True, **_COMMON_PROFILE)
settings.register_profile("dev", max_examples=10, **_COMMON_PROFILE)
settings.register_profile("long", max_examples=1000, **_COMMON_PROFILE)


@functools.cache
def docker_unavailable() -> str | None:
    """Why Docker cannot be used here, or None when an engine answers."""
    from gossipcert.harness.drivers.images import docker_client
    from gossipcert.harness.errors import GossipcertError

    try:
        docker_client().close()
    except GossipcertError as exc:
        return str(exc)
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("docker") is None:
        return
    reason = docker_unavailable()
    if reason is None:
        return
    if os.environ.get(REQUIRE_DOCKER_ENV) == "1":
        pytest.fail(f"{REQUIRE_DOCKER_ENV}=1 but Docker is unavailable: {reason}",
                    pytrace=False)
    pytest.skip(f"Docker is unavailable: {reason}")


@pytest.fixture
def reference_timing() -> dict[str, Any]:
    """The timing the reference manifest declares, a fresh copy per test."""
    return manifest_reference_timing()


@pytest.fixture
def proxy_server() -> Iterator[BackgroundServer]:
    """A Toxiproxy-compatible server of our own for one test: its state dies with it."""
    with BackgroundServer("127.0.0.1:0") as srv:
        yield srv


@pytest.fixture(scope="module")
def shared_proxy_server() -> Iterator[BackgroundServer]:
    """One Toxiproxy-compatible server for a whole test module (starting one per test costs
    more than the tests); ``proxy_client`` leaves it empty after each test."""
    with BackgroundServer("127.0.0.1:0") as srv:
        yield srv


@pytest.fixture
def proxy_client(shared_proxy_server: BackgroundServer) -> Iterator[ToxiproxyClient]:
    """Our client of the module's shared server; the proxies a test made are deleted after
    it."""
    with ToxiproxyClient(shared_proxy_server.url) as client:
        yield client
        for name in client.proxies():
            client.delete_proxy(name)
