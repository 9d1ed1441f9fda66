"""The v1 control API (docs/contract.md, specs/control-api.yaml) as one sans-IO function.

`handle(host, method, target, body)` turns a request into a reply over a core `Node`
and a small `Host`: what only a driver has (its clock, the durability of acknowledged
writes, traffic counters, the keyring). The asyncio runtime serves it over HTTP
(`control.py`) and the simulator calls it directly (`sim/simulation.py`), so a simulated
node answers every call exactly as a real one: same status codes, same JSON, same errors.

A join cannot answer at once: the node contacts its seeds and the contract waits until one
answers. `handle` then returns `AwaitReady`, and the driver lets its clock run (the real
one or the virtual one) until `Node.ready` or the wait's end before it answers
`AwaitReady.outcome(ready)`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qsl, unquote

from gossipcert.reference_node.core.crdt import CrdtError
from gossipcert.reference_node.core.events import BroadcastEvent, Event, MemberEvent
from gossipcert.reference_node.core.keyring import Keyring, KeyringError, encode_key, parse_key
from gossipcert.reference_node.core.kv import visible_values
from gossipcert.reference_node.core.messages import KvState
from gossipcert.reference_node.core.node import Node
from gossipcert.reference_node.core.vclock import VClock, decode_context, encode_context
from gossipcert.specs import gossipcert_version

__all__ = [
    "CAPABILITIES",
    "CRDT_OPS",
    "IMPL_NAME",
    "JOIN_WAIT_MS",
    "ApiError",
    "AwaitReady",
    "Host",
    "Reply",
    "Response",
    "change_keyring",
    "context_of",
    "core_metrics",
    "event_json",
    "handle",
    "keyring_view",
    "split_address",
]

T = TypeVar("T")

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
JOIN_WAIT_MS = 5_000
"""How long `POST /v1/join` waits for a seed to answer before it gives up with 503."""
CRDT_OPS = ("increment", "decrement", "add", "remove", "set")


class Host(Protocol):
    """What a driver gives the API besides the node. `GossipRuntime` is one."""

    @property
    def node(self) -> Node: ...

    def call(self, action: Callable[[int], T]) -> T:
        """Run `action(now_ms)` on the node and carry out its effects. A write is durable
        when this returns; an `OSError` says it could not be made so."""
        ...

    def metrics_snapshot(self) -> dict[str, Any]:
        """Traffic counters (`metrics.Metrics.snapshot()`) plus `core_metrics(...)`."""
        ...

    def keyring_view(self) -> dict[str, Any]: ...

    def keyring_change(self, op: str, key_text: str) -> dict[str, Any]:
        """Raises `KeyringError` for a refused change, `OSError` when it cannot be kept."""
        ...


@dataclass(frozen=True)
class Response:
    """A reply: HTTP status and a JSON-ready body."""

    status: int
    body: Any


@dataclass(frozen=True)
class AwaitReady:
    """A join in progress: answer `outcome(node.ready)` once the node is ready, or when
    `timeout_ms` have passed since the call."""

    timeout_ms: int = JOIN_WAIT_MS

    def outcome(self, ready: bool) -> Response:
        if ready:
            return Response(200, {"joined": True})
        return _error(
            503,
            "join_timeout",
            f"no seed answered within {self.timeout_ms / 1000:g} s; still retrying in the "
            "background",
        )


Reply = Response | AwaitReady


class ApiError(Exception):
    """A request the API refuses; becomes the `{error, message}` body."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message


def _error(status: int, error: str, message: str) -> Response:
    return Response(status, {"error": error, "message": message})


# ---- shared pieces ---------------------------------------------------------------------


def split_address(address: str) -> tuple[str, int]:
    """`HOST:PORT` into its parts; ValueError names what is wrong."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT, got {address!r}")
    return host, int(port)


def context_of(entry: KvState) -> str:
    """Opaque causal context: the key's version vector, which a later write or delete
    hands back to supersede exactly the siblings it saw."""
    return encode_context(entry.context)


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


def keyring_view(keyring: Keyring | None) -> dict[str, Any]:
    """`GET /v1/keyring`: installed keys, primary first."""
    if keyring is None:
        return {"enabled": False, "primary": None, "keys": []}
    keys = [encode_key(k) for k in keyring.keys]
    return {"enabled": True, "primary": keys[0], "keys": keys}


def change_keyring(keyring: Keyring | None, op: str, key_text: str) -> None:
    """install | use | remove one key; KeyringError says why not."""
    if keyring is None:
        raise KeyringError("encryption_disabled", "this node was started without keys")
    key = parse_key(key_text)
    if op == "install":
        keyring.install(key)
    elif op == "use":
        keyring.use(key)
    elif op == "remove":
        keyring.remove(key)
    else:
        raise KeyringError("bad_request", f"op must be install, use or remove, got {op!r}")


def core_metrics(
    node: Node, *, outbound_bytes: int, outbound_links: int, replay_cache: int
) -> dict[str, Any]:
    """The part of `GET /v1/metrics` that the core knows (rounds, queues, health), with
    the driver's own transport queues in among them."""
    return {
        "rounds": {
            "probe": node.probe_rounds,
            "gossip": node.gossip_rounds,
            "push_pull": node.push_pull_rounds,
        },
        "queues": {
            "piggyback": len(node.queue),
            "outbound_bytes": outbound_bytes,
            "outbound_links": outbound_links,
            "suspicions": node.suspicion_count,
            "relays": node.relay_count,
            "replay_cache": replay_cache,
        },
        "awareness_score": node.awareness.score,
    }


# ---- the request -----------------------------------------------------------------------


def handle(host: Host, method: str, target: str, body: bytes = b"") -> Reply:
    """Answer one request. `target` is the path as sent, percent-encoded, with its query
    (`/v1/kv/a%2Fb`, `/v1/events?after=3`); `body` the raw request body."""
    method = method.upper()
    raw_path, _, query = target.partition("?")
    path = unquote(raw_path)
    route = _route(raw_path)
    if route is None:
        return _error(404, "not_found", f"{method} {path}: Not Found")
    name, arg = route
    # HEAD is answered as a GET (the server sends no body).
    action = _ACTIONS.get((name, "GET" if method == "HEAD" else method))
    if action is None:
        return _error(405, "method_not_allowed", f"{method} {path}: Method Not Allowed")
    try:
        return action(_Request(host, arg, query, body))
    except ApiError as exc:
        return _error(exc.status, exc.error, exc.message)


def _route(raw_path: str) -> tuple[str, str] | None:
    """(resource, its path argument) or None when no resource has this path."""
    fixed = _FIXED.get(unquote(raw_path))
    if fixed is not None:
        return fixed, ""
    for prefix, name in (("/v1/kv/", "key"), ("/v1/crdt/", "crdt")):
        if raw_path.startswith(prefix):
            rest = raw_path[len(prefix) :]
            if not rest or (name == "crdt" and "/" in rest):
                return None
            return name, unquote(rest)
    return None


_FIXED = {
    "/v1/node": "node",
    "/v1/members": "members",
    "/v1/join": "join",
    "/v1/leave": "leave",
    "/v1/broadcast": "broadcast",
    "/v1/broadcasts": "broadcasts",
    "/v1/kv": "kv",
    "/v1/events": "events",
    "/v1/keyring": "keyring",
    "/v1/metrics": "metrics",
}


@dataclass(frozen=True)
class _Request:
    host: Host
    arg: str
    query: str
    raw: bytes

    def json(self, *, required: bool) -> dict[str, Any]:
        if not self.raw.strip():
            if required:
                raise ApiError(400, "bad_request", "a JSON object body is required")
            return {}
        try:
            body = json.loads(self.raw)
        except ValueError as exc:
            raise ApiError(400, "bad_json", f"body is not valid JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise ApiError(400, "bad_request", "body must be a JSON object")
        return body

    def call(self, action: Callable[[int], T]) -> T:
        try:
            return self.host.call(action)
        except OSError as exc:
            # The call was not made durable, so it is not acknowledged.
            raise ApiError(500, "persist_failed", str(exc)) from exc


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


def _get_node(r: _Request) -> Response:
    node = r.host.node
    return Response(
        200,
        {
            "id": node.id,
            "impl": IMPL_NAME,
            "version": gossipcert_version(),
            "capabilities": list(CAPABILITIES),
            "ready": node.ready,
        },
    )


def _get_members(r: _Request) -> Response:
    members = [
        {"id": m.id, "address": m.address, "status": m.status.value, "incarnation": m.incarnation}
        for m in r.host.node.member_list()
    ]
    return Response(200, {"members": members})


def _post_join(r: _Request) -> Reply:
    body = r.json(required=True)
    seeds = body.get("seeds")
    if not isinstance(seeds, list) or not all(isinstance(s, str) for s in seeds):
        raise ApiError(400, "bad_request", "seeds must be a list of HOST:PORT strings")
    for seed in seeds:
        try:
            split_address(seed)
        except ValueError as exc:
            raise ApiError(400, "bad_request", str(exc)) from exc
    node = r.host.node
    r.call(lambda now: node.join(seeds, now))
    return AwaitReady()


def _post_leave(r: _Request) -> Response:
    node = r.host.node
    r.call(node.leave)
    return Response(202, {"leaving": True})


def _post_broadcast(r: _Request) -> Response:
    body = r.json(required=True)
    broadcast_id = body.get("id")
    if not isinstance(broadcast_id, str) or not broadcast_id:
        raise ApiError(400, "bad_request", "id must be a non-empty string")
    if "payload" not in body:
        raise ApiError(400, "bad_request", "payload is required")
    node = r.host.node
    fresh = r.call(lambda now: node.broadcast(broadcast_id, body["payload"], now))
    return Response(202, {"id": broadcast_id, "delivered": fresh})


def _get_broadcasts(r: _Request) -> Response:
    received = [
        {"id": d.id, "origin": d.origin, "payload": d.payload, "at_ms": d.at_ms}
        for d in r.host.node.delivered_broadcasts()
    ]
    return Response(200, {"received": received})


def _get_kv(r: _Request) -> Response:
    kv = r.host.node.kv
    entries = {key: {"values": values} for key, values in kv.visible().items()}
    return Response(200, {"digest": kv.digest(), "entries": entries})


def _put_key(r: _Request) -> Response:
    key = r.arg
    body = r.json(required=True)
    if "value" not in body:
        raise ApiError(400, "bad_request", "value is required")
    context = _context_arg(body)
    node = r.host.node
    entry = r.call(lambda now: node.kv_put(key, body["value"], now, context))
    return Response(200, {"context": context_of(entry), "timestamp": list(entry.timestamp)})


def _get_key(r: _Request) -> Response:
    key = r.arg
    entry = r.host.node.kv_get(key)
    if entry is None:
        raise ApiError(404, "not_found", f"no value for key {key!r}")
    return Response(
        200, {"key": key, "values": visible_values(entry), "context": context_of(entry)}
    )


def _delete_key(r: _Request) -> Response:
    key = r.arg
    context = _context_arg(r.json(required=False))
    node = r.host.node
    entry = r.call(lambda now: node.kv_delete(key, now, context))
    return Response(200, {"context": context_of(entry), "timestamp": list(entry.timestamp)})


def _post_crdt(r: _Request) -> Response:
    name = r.arg
    body = r.json(required=True)
    type_name, op = body.get("type"), body.get("op")
    if not isinstance(type_name, str) or not isinstance(op, str):
        raise ApiError(400, "bad_request", "type and op must be strings")
    if op not in CRDT_OPS:
        raise ApiError(400, "bad_op", f"unknown op {op!r}; expected one of {', '.join(CRDT_OPS)}")
    node = r.host.node
    try:
        update = r.call(lambda now: node.crdt_apply(name, type_name, op, body.get("value"), now))
    except CrdtError as exc:
        raise ApiError(400, "bad_crdt_op", str(exc)) from exc
    return Response(200, {"type": update.crdt.type_name, "value": update.crdt.value()})


def _get_crdt(r: _Request) -> Response:
    name = r.arg
    update = r.host.node.crdt_get(name)
    if update is None:
        raise ApiError(404, "not_found", f"no CRDT named {name!r}")
    return Response(200, {"type": update.crdt.type_name, "value": update.crdt.value()})


def _get_events(r: _Request) -> Response:
    query = dict(reversed(parse_qsl(r.query, keep_blank_values=True)))  # the first wins
    try:
        after = int(query.get("after", "0"))
    except ValueError as exc:
        raise ApiError(400, "bad_request", "after must be an integer") from exc
    events = r.host.node.events_after(after)
    following = events[-1].seq if events else max(0, after)
    return Response(200, {"events": [event_json(e) for e in events], "next": following})


def _get_keyring(r: _Request) -> Response:
    return Response(200, r.host.keyring_view())


def _post_keyring(r: _Request) -> Response:
    body = r.json(required=True)
    op, key = body.get("op"), body.get("key")
    if not isinstance(op, str) or not isinstance(key, str):
        raise ApiError(400, "bad_request", "op and key must be strings")
    try:
        view = r.host.keyring_change(op, key)
    except KeyringError as exc:
        status = {"unknown_key": 404, "primary_key": 409, "encryption_disabled": 409}
        raise ApiError(status.get(exc.reason, 400), exc.reason, str(exc)) from exc
    except OSError as exc:
        raise ApiError(500, "persist_failed", f"keyring file not written: {exc}") from exc
    return Response(200, view)


def _get_metrics(r: _Request) -> Response:
    snapshot = r.host.metrics_snapshot()
    node = r.host.node
    snapshot["dissemination"] = node.dissemination_stats()
    snapshot["state"] = {
        "keys": len(node.kv),
        "tombstones": node.kv.tombstone_count,
        "tombstones_collected": node.kv.collected,
        "crdts": len(node.state.crdts),
        "merkle_items": len(node.state.tree),
    }
    return Response(200, snapshot)


_ACTIONS: dict[tuple[str, str], Callable[[_Request], Reply]] = {
    ("node", "GET"): _get_node,
    ("members", "GET"): _get_members,
    ("join", "POST"): _post_join,
    ("leave", "POST"): _post_leave,
    ("broadcast", "POST"): _post_broadcast,
    ("broadcasts", "GET"): _get_broadcasts,
    ("kv", "GET"): _get_kv,
    ("key", "PUT"): _put_key,
    ("key", "GET"): _get_key,
    ("key", "DELETE"): _delete_key,
    ("crdt", "POST"): _post_crdt,
    ("crdt", "GET"): _get_crdt,
    ("events", "GET"): _get_events,
    ("keyring", "GET"): _get_keyring,
    ("keyring", "POST"): _post_keyring,
    ("metrics", "GET"): _get_metrics,
}
