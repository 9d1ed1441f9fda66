"""Shared by the defects that break the control API rather than the core: run the
reference node with one more aiohttp middleware in front of its handlers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from unittest.mock import patch

import gossipcert.reference_node.__main__ as entry
from aiohttp import web

Middleware = Callable[
    [web.Request, Callable[[web.Request], Awaitable[web.StreamResponse]]],
    Awaitable[web.StreamResponse],
]


@contextmanager
def control_patched(middleware: Middleware) -> Iterator[None]:
    """While open, every control API the node builds passes through ``middleware``."""
    original = entry.build_app

    def build(runtime: object) -> web.Application:
        app = original(runtime)  # type: ignore[arg-type]
        app.middlewares.append(middleware)
        return app

    with patch.object(entry, "build_app", build):
        yield
