"""Seeded defect: every key/value read (``GET /v1/kv``, ``GET /v1/kv/{key}``) answers
500, so nothing about the replicated state can be observed; writes still work."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

from aiohttp import web

import reference_node.__main__ as entry


@web.middleware
async def _fail_reads(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    if request.method == "GET" and request.path.startswith("/v1/kv"):
        body = {"error": "internal", "message": "the store cannot be read"}
        return web.json_response(body, status=500)
    return await handler(request)


@contextmanager
def installed() -> Iterator[None]:
    original = entry.build_app

    def build(runtime: object) -> web.Application:
        app = original(runtime)  # type: ignore[arg-type]
        app.middlewares.append(_fail_reads)
        return app

    entry.build_app = build  # type: ignore[assignment]
    try:
        yield
    finally:
        entry.build_app = original
