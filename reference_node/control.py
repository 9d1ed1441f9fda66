"""The v1 control API (DESIGN.md) over aiohttp, a thin adapter onto the core."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from reference_node import __version__
from reference_node.core.events import BroadcastEvent, Event, MemberEvent
from reference_node.core.messages import KvUpdate
from reference_node.runtime import GossipRuntime, split_address

IMPL_NAME = "gossipcert-reference"
CAPABILITIES = ["membership", "failure-detection", "broadcast", "kv", "events", "metrics"]
JOIN_WAIT_S = 5.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message


def _error(status: int, error: str, message: str) -> web.Response:
    return web.json_response({"error": error, "message": message}, status=status)


@web.middleware
async def _errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return _error(exc.status, exc.error, exc.message)
    except web.HTTPException as exc:
        error = exc.reason.lower().replace(" ", "_")
        return _error(exc.status, error, f"{request.method} {request.path}: {exc.reason}")


async def _body(request: web.Request, *, required: bool) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        if required:
            raise ApiError(400, "bad_request", "a JSON object body is required")
        return {}
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise ApiError(400, "bad_json", f"body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", "body must be a JSON object")
    return body


def context_of(entry: KvUpdate) -> str:
    """Opaque causal context: under LWW, just the winning version."""
    return f"{entry.timestamp.wall_ms}.{entry.timestamp.logical}.{entry.writer}"


def event_json(event: Event) -> dict[str, Any]:
    if isinstance(event, MemberEvent):
        return {
            "seq": event.seq,
            "at_ms": event.at_ms,
            "kind": event.kind,
            "member": event.member,
            "status": event.status.value,
            "incarnation": event.incarnation,
        }
    assert isinstance(event, BroadcastEvent)
    return {
        "seq": event.seq,
        "at_ms": event.at_ms,
        "kind": event.kind,
        "id": event.id,
        "origin": event.origin,
    }


def build_app(runtime: GossipRuntime) -> web.Application:
    routes = web.RouteTableDef()

    @routes.get("/v1/node")
    async def get_node(request: web.Request) -> web.Response:
        node = runtime.node
        return web.json_response(
            {
                "id": node.id,
                "impl": IMPL_NAME,
                "version": __version__,
                "capabilities": CAPABILITIES,
                "ready": node.ready,
            }
        )

    @routes.get("/v1/members")
    async def get_members(request: web.Request) -> web.Response:
        members = [
            {
                "id": m.id,
                "address": m.address,
                "status": m.status.value,
                "incarnation": m.incarnation,
            }
            for m in runtime.node.member_list()
        ]
        return web.json_response({"members": members})

    @routes.post("/v1/join")
    async def post_join(request: web.Request) -> web.Response:
        body = await _body(request, required=True)
        seeds = body.get("seeds")
        if not isinstance(seeds, list) or not all(isinstance(s, str) for s in seeds):
            raise ApiError(400, "bad_request", "seeds must be a list of HOST:PORT strings")
        for seed in seeds:
            try:
                split_address(seed)
            except ValueError as exc:
                raise ApiError(400, "bad_request", str(exc)) from exc
        node = runtime.node
        runtime.call(lambda now: node.join(seeds, now))
        loop = asyncio.get_running_loop()
        give_up = loop.time() + JOIN_WAIT_S
        while not node.ready and loop.time() < give_up:
            await asyncio.sleep(0.02)
        if not node.ready:
            raise ApiError(
                503,
                "join_timeout",
                f"no seed answered within {JOIN_WAIT_S:g} s; still retrying in the background",
            )
        return web.json_response({"joined": True})

    @routes.post("/v1/leave")
    async def post_leave(request: web.Request) -> web.Response:
        node = runtime.node
        runtime.call(node.leave)
        return web.json_response({"leaving": True}, status=202)

    @routes.post("/v1/broadcast")
    async def post_broadcast(request: web.Request) -> web.Response:
        body = await _body(request, required=True)
        broadcast_id = body.get("id")
        if not isinstance(broadcast_id, str) or not broadcast_id:
            raise ApiError(400, "bad_request", "id must be a non-empty string")
        if "payload" not in body:
            raise ApiError(400, "bad_request", "payload is required")
        node = runtime.node
        fresh = runtime.call(lambda now: node.broadcast(broadcast_id, body["payload"], now))
        return web.json_response({"id": broadcast_id, "delivered": fresh}, status=202)

    @routes.get("/v1/broadcasts")
    async def get_broadcasts(request: web.Request) -> web.Response:
        received = [
            {"id": d.id, "origin": d.origin, "payload": d.payload, "at_ms": d.at_ms}
            for d in runtime.node.delivered_broadcasts()
        ]
        return web.json_response({"received": received})

    @routes.get("/v1/kv")
    async def get_all(request: web.Request) -> web.Response:
        kv = runtime.node.kv
        entries = {key: {"values": [value]} for key, value in kv.live().items()}
        return web.json_response({"digest": kv.digest(), "entries": entries})

    @routes.put("/v1/kv/{key:.+}")
    async def put_key(request: web.Request) -> web.Response:
        key = request.match_info["key"]
        body = await _body(request, required=True)
        if "value" not in body:
            raise ApiError(400, "bad_request", "value is required")
        node = runtime.node
        entry = runtime.call(lambda now: node.kv_put(key, body["value"], now))
        return web.json_response({"context": context_of(entry), "timestamp": list(entry.timestamp)})

    @routes.get("/v1/kv/{key:.+}")
    async def get_key(request: web.Request) -> web.Response:
        key = request.match_info["key"]
        entry = runtime.node.kv_get(key)
        if entry is None:
            raise ApiError(404, "not_found", f"no value for key {key!r}")
        return web.json_response(
            {"key": key, "values": [entry.value], "context": context_of(entry)}
        )

    @routes.delete("/v1/kv/{key:.+}")
    async def delete_key(request: web.Request) -> web.Response:
        key = request.match_info["key"]
        await _body(request, required=False)  # a context may come; LWW ignores it
        node = runtime.node
        entry = runtime.call(lambda now: node.kv_delete(key, now))
        return web.json_response({"context": context_of(entry), "timestamp": list(entry.timestamp)})

    @routes.route("*", "/v1/crdt/{name}")
    async def crdt(request: web.Request) -> web.Response:
        return _error(501, "not_implemented", "CRDTs are not implemented by this node yet")

    @routes.get("/v1/events")
    async def get_events(request: web.Request) -> web.Response:
        try:
            after = int(request.query.get("after", "0"))
        except ValueError as exc:
            raise ApiError(400, "bad_request", "after must be an integer") from exc
        events = runtime.node.events_after(after)
        following = events[-1].seq if events else max(0, after)
        return web.json_response({"events": [event_json(e) for e in events], "next": following})

    @routes.get("/v1/metrics")
    async def get_metrics(request: web.Request) -> web.Response:
        return web.json_response(runtime.metrics.snapshot())

    app = web.Application(middlewares=[_errors_as_json])
    app.add_routes(routes)
    return app
