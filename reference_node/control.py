"""The v1 control API (DESIGN.md) over aiohttp, a thin adapter onto the core."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from gossipcert.reference_node import __version__
from gossipcert.reference_node.core.crdt import CrdtError
from gossipcert.reference_node.core.events import BroadcastEvent, Event, MemberEvent
from gossipcert.reference_node.core.keyring import KeyringError
from gossipcert.reference_node.core.kv import visible_values
from gossipcert.reference_node.core.messages import KvState
from gossipcert.reference_node.core.vclock import VClock, decode_context, encode_context
from gossipcert.reference_node.persist import PersistError
from gossipcert.reference_node.runtime import GossipRuntime, split_address

IMPL_NAME = "gossipcert-reference"
CAPABILITIES = [
    "membership",
    "failure-detection",
    "broadcast",
    "kv",
    "crdt",
    "events",
    "metrics",
    "leave",
    "encryption",
]
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
    except PersistError as exc:
        # The call was not made durable, so it is not acknowledged.
        return _error(500, "persist_failed", str(exc))
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


def context_of(entry: KvState) -> str:
    """Opaque causal context: the key's version vector, which a later write or delete
    hands back to supersede exactly the siblings it saw."""
    return encode_context(entry.context)


def _context_arg(body: dict[str, Any]) -> VClock | None:
    context = body.get("context")
    if context is None:
        return None
    if not isinstance(context, str):
        raise ApiError(400, "bad_context", "context must be the string a GET returned")
    try:
        return decode_context(context)
    except ValueError as exc:
        raise ApiError(400, "bad_context", f"context: {exc}") from exc


CRDT_OPS = ("increment", "decrement", "add", "remove", "set")


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
        entries = {key: {"values": values} for key, values in kv.visible().items()}
        return web.json_response({"digest": kv.digest(), "entries": entries})

    @routes.put("/v1/kv/{key:.+}")
    async def put_key(request: web.Request) -> web.Response:
        key = request.match_info["key"]
        body = await _body(request, required=True)
        if "value" not in body:
            raise ApiError(400, "bad_request", "value is required")
        context = _context_arg(body)
        node = runtime.node
        entry = runtime.call(lambda now: node.kv_put(key, body["value"], now, context))
        return web.json_response({"context": context_of(entry), "timestamp": list(entry.timestamp)})

    @routes.get("/v1/kv/{key:.+}")
    async def get_key(request: web.Request) -> web.Response:
        key = request.match_info["key"]
        entry = runtime.node.kv_get(key)
        if entry is None:
            raise ApiError(404, "not_found", f"no value for key {key!r}")
        return web.json_response(
            {"key": key, "values": visible_values(entry), "context": context_of(entry)}
        )

    @routes.delete("/v1/kv/{key:.+}")
    async def delete_key(request: web.Request) -> web.Response:
        key = request.match_info["key"]
        context = _context_arg(await _body(request, required=False))
        node = runtime.node
        entry = runtime.call(lambda now: node.kv_delete(key, now, context))
        return web.json_response({"context": context_of(entry), "timestamp": list(entry.timestamp)})

    @routes.post("/v1/crdt/{name}")
    async def post_crdt(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        body = await _body(request, required=True)
        type_name, op = body.get("type"), body.get("op")
        if not isinstance(type_name, str) or not isinstance(op, str):
            raise ApiError(400, "bad_request", "type and op must be strings")
        if op not in CRDT_OPS:
            raise ApiError(
                400, "bad_op", f"unknown op {op!r}; expected one of {', '.join(CRDT_OPS)}"
            )
        node = runtime.node
        try:
            update = runtime.call(
                lambda now: node.crdt_apply(name, type_name, op, body.get("value"), now)
            )
        except CrdtError as exc:
            raise ApiError(400, "bad_crdt_op", str(exc)) from exc
        return web.json_response({"type": update.crdt.type_name, "value": update.crdt.value()})

    @routes.get("/v1/crdt/{name}")
    async def get_crdt(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        update = runtime.node.crdt_get(name)
        if update is None:
            raise ApiError(404, "not_found", f"no CRDT named {name!r}")
        return web.json_response({"type": update.crdt.type_name, "value": update.crdt.value()})

    @routes.get("/v1/events")
    async def get_events(request: web.Request) -> web.Response:
        try:
            after = int(request.query.get("after", "0"))
        except ValueError as exc:
            raise ApiError(400, "bad_request", "after must be an integer") from exc
        events = runtime.node.events_after(after)
        following = events[-1].seq if events else max(0, after)
        return web.json_response({"events": [event_json(e) for e in events], "next": following})

    @routes.get("/v1/keyring")
    async def get_keyring(request: web.Request) -> web.Response:
        return web.json_response(runtime.keyring_view())

    @routes.post("/v1/keyring")
    async def post_keyring(request: web.Request) -> web.Response:
        body = await _body(request, required=True)
        op, key = body.get("op"), body.get("key")
        if not isinstance(op, str) or not isinstance(key, str):
            raise ApiError(400, "bad_request", "op and key must be strings")
        try:
            view = runtime.keyring_change(op, key)
        except KeyringError as exc:
            status = {"unknown_key": 404, "primary_key": 409, "encryption_disabled": 409}
            raise ApiError(status.get(exc.reason, 400), exc.reason, str(exc)) from exc
        except OSError as exc:
            raise ApiError(500, "persist_failed", f"keyring file not written: {exc}") from exc
        return web.json_response(view)

    @routes.get("/v1/metrics")
    async def get_metrics(request: web.Request) -> web.Response:
        snapshot = runtime.metrics_snapshot()
        node = runtime.node
        snapshot["dissemination"] = node.dissemination_stats()
        snapshot["state"] = {
            "keys": len(node.kv),
            "tombstones": node.kv.tombstone_count,
            "tombstones_collected": node.kv.collected,
            "crdts": len(node.state.crdts),
            "merkle_items": len(node.state.tree),
        }
        return web.json_response(snapshot)

    app = web.Application(middlewares=[_errors_as_json])
    app.add_routes(routes)
    return app
