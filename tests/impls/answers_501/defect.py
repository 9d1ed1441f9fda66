"""Seeded defect: the control API answers 501 to everything but the node, membership,
join and leave calls, although the manifest declares broadcast, kv, events and metrics."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from control_patch import control_patched  # noqa: E402

_SERVED = ("/v1/node", "/v1/members", "/v1/join", "/v1/leave")


@web.middleware
async def _refuse(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    if request.path in _SERVED:
        return await handler(request)
    body = {"error": "not_implemented", "message": f"{request.path} is not implemented"}
    return web.json_response(body, status=501)


def installed() -> AbstractContextManager[None]:
    return control_patched(_refuse)
