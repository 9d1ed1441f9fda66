"""Seeded defect: the control API answers 501 to everything but the node, membership,
join and leave calls, although the manifest declares broadcast, kv, events and metrics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

from aiohttp import web

import reference_node.__main__ as entry

_SERVED = ("/v1/node", "/v1/members", "/v1/join", "/v1/leave")


@web.middleware
async def _refuse(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    if request.path in _SERVED:
        return await handler(request)
    body = {"error": "not_implemented", "message": f"{request.path} is not implemented"}
    return web.json_response(body, status=501)


@contextmanager
def installed() -> Iterator[None]:
    original = entry.build_app

    def build(runtime: object) -> web.Application:
        app = original(runtime)  # type: ignore[arg-type]
        app.middlewares.append(_refuse)
        return app

    entry.build_app = build  # type: ignore[assignment]
    try:
        yield
    finally:
        entry.build_app = original
