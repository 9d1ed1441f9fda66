"""Seeded defect: under multi-value, concurrent writes do not stay siblings: only the
greatest survives, as if the policy were last-writer-wins."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest.mock import patch

from gossipcert.reference_node.core import kv


@contextmanager
def installed() -> Iterator[None]:
    normalize = kv.normalize

    def one_sibling(key: str, siblings: Any, context: Any, policy: Any) -> Any:
        return normalize(key, siblings, context, "lww")

    with patch.object(kv, "normalize", one_sibling):
        yield
