"""Seeded defect: the manifest leaves out kv, crdt, leave and encryption, yet the control
API serves them (the reference node's handlers answer 200) where the contract wants 501.
The patch only marks each such answer in a header, so a log shows it was not refused."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from control_patch import control_patched  # noqa: E402

# The launcher answers 501 for what a manifest leaves out; this defect keeps serving it.
SERVES_UNDECLARED = True

_UNDECLARED = ("/v1/kv", "/v1/crdt/", "/v1/leave", "/v1/keyring")


@web.middleware
async def _serves_undeclared(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    response = await handler(request)
    if request.path.startswith(_UNDECLARED):
        response.headers["X-Undeclared-Capability"] = "served"
    return response


def installed() -> AbstractContextManager[None]:
    return control_patched(_serves_undeclared)
