"""Seeded defect: the control API answers every member's incarnation as a string
(``"3"`` for ``3``) in ``GET /v1/members``, a wrong field type the OpenAPI rejects."""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from control_patch import control_patched  # noqa: E402


@web.middleware
async def _stringify(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    response = await handler(request)
    if request.path != "/v1/members" or not isinstance(response, web.Response):
        return response
    body = json.loads(response.body)  # type: ignore[arg-type]
    for member in body.get("members", []):
        member["incarnation"] = str(member.get("incarnation"))
    return web.json_response(body, status=response.status)


def installed() -> AbstractContextManager[None]:
    return control_patched(_stringify)
