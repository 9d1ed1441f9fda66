"""The v1 control API over aiohttp: a thin adapter onto `api.handle`.

Every request goes to one handler, which hands the method, the raw path and the body to
`api.handle` and writes its reply as JSON; a join waits here, on the event loop, until the
node is ready or the wait is over. The only errors decided here are aiohttp's own (a body
over the size limit, ...), turned into the same `{error, message}` shape.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web
from gossipcert.reference_node.api import AwaitReady, Response, handle
from gossipcert.reference_node.runtime import GossipRuntime

__all__ = ["build_app"]

JOIN_POLL_S = 0.02
"""How often a join checks whether the node is ready."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, error: str, message: str) -> web.Response:
    return web.json_response({"error": error, "message": message}, status=status)


@web.middleware
async def _errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        error = exc.reason.lower().replace(" ", "_")
        return _error(exc.status, error, f"{request.method} {request.path}: {exc.reason}")


async def _ready(runtime: GossipRuntime, wait: AwaitReady) -> Response:
    loop = asyncio.get_running_loop()
    give_up = loop.time() + wait.timeout_ms / 1000
    while not runtime.node.ready and loop.time() < give_up:
        await asyncio.sleep(JOIN_POLL_S)
    return wait.outcome(runtime.node.ready)


def build_app(runtime: GossipRuntime) -> web.Application:
    async def serve(request: web.Request) -> web.Response:
        body = await request.read()
        reply = handle(runtime, request.method, request.raw_path, body)
        if isinstance(reply, AwaitReady):
            reply = await _ready(runtime, reply)
        return web.json_response(reply.body, status=reply.status)

    app = web.Application(middlewares=[_errors_as_json])
    app.router.add_route("*", "/{path:.*}", serve)
    return app
