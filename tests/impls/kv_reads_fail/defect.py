"""Seeded defect: every key/value read (``GET /v1/kv``, ``GET /v1/kv/{key}``) answers
500, so nothing about the replicated state can be observed; writes still work."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from control_patch import control_patched  # noqa: E402


@web.middleware
async def _fail_reads(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    if request.method == "GET" and request.path.startswith("/v1/kv"):
        body = {"error": "internal", "message": "the store cannot be read"}
        return web.json_response(body, status=500)
    return await handler(request)


def installed() -> AbstractContextManager[None]:
    return control_patched(_fail_reads)
