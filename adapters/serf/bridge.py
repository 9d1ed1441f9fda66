"""The v1 control contract for one ``serf agent``, through the agent's RPC interface.

The bridge starts the agent as its child, subscribes to every event the agent emits
(``stream *``) and answers the harness from what the agent said: its member list, its
member events and user events, each stamped with the bridge's clock when the agent
reported it. Broadcasts are Serf user events (name :data:`EVENT_NAME`, the payload a small
JSON object carrying the contract's id and origin). Nothing here gossips, retries or
decides a member's status: Serf does.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from aiohttp import web
from gossipcert.adapters.common import ContractError
from gossipcert.adapters.serf.rpc import RPCError, SerfRPC

__all__ = ["CAPABILITIES", "EVENT_NAME", "Bridge", "build_app", "handle", "member_status"]

EVENT_NAME = "gossipcert"
CAPABILITIES = ("membership", "failure-detection", "broadcast", "events", "leave")

# Serf's member status -> the contract's. Serf tells nothing of suspicion (memberlist keeps
# it to itself), and a member that announced its leave is still a member until it is gone.
_STATUS = {"alive": "alive", "leaving": "alive", "left": "left", "failed": "dead"}
# Serf's member events -> the status they report.
_EVENT_STATUS = {"member-join": "alive", "member-leave": "left", "member-failed": "dead"}


def member_status(serf_status: str) -> str:
    return _STATUS.get(serf_status, "alive" if serf_status == "none" else "dead")


def _address(member: dict[str, Any]) -> str:
    raw = member.get("Addr") or b""
    if isinstance(raw, (bytes, bytearray)) and len(raw) in (4, 16):
        if len(raw) == 4 or raw[:12] == b"\x00" * 10 + b"\xff\xff":
            host = ".".join(str(b) for b in raw[-4:])
        else:
            host = ":".join(f"{raw[i] << 8 | raw[i + 1]:x}" for i in range(0, 16, 2))
    else:
        host = str(raw)
    return f"{host}:{member.get('Port', 0)}"


@dataclass
class _State:
    ready: bool = False
    left: bool = False
    events: list[dict[str, Any]] = field(default_factory=list)
    received: dict[str, dict[str, Any]] = field(default_factory=dict)
    last_members: list[dict[str, Any]] = field(default_factory=list)


class Bridge:
    """The contract's calls, answered by one agent over its RPC connection."""

    def __init__(self, node_id: str, rpc: SerfRPC, version: str) -> None:
        self.node_id = node_id
        self.rpc = rpc
        self.version = version
        self.state = _State()
        self.lock = threading.Lock()
        rpc.stream("*", self._on_event)

    @staticmethod
    def now_ms() -> int:
        return int(time.time() * 1000)

    # ---- what the agent says on its own --------------------------------------------------

    def _on_event(self, record: dict[str, Any]) -> None:
        at = self.now_ms()
        kind = str(record.get("Event", ""))
        with self.lock:
            if kind in _EVENT_STATUS:
                for member in record.get("Members") or []:
                    self._append({"at_ms": at, "kind": "member", "member": member.get("Name"),
                                  "status": _EVENT_STATUS[kind], "incarnation": 0,
                                  "serf_event": kind})
            elif kind == "user" and record.get("Name") == EVENT_NAME:
                self._user_event(record, at)

    def _append(self, event: dict[str, Any]) -> None:
        event["seq"] = len(self.state.events) + 1
        self.state.events.append(event)

    def _user_event(self, record: dict[str, Any], at: int) -> None:
        try:
            body = json.loads(bytes(record.get("Payload") or b"").decode("utf-8"))
            bid, origin = str(body["id"]), str(body["origin"])
        except (ValueError, KeyError, TypeError):
            return  # someone else's event under our name: not a contract broadcast
        if bid in self.state.received:
            return  # Serf may hand an event over twice; the first receipt counts
        self.state.received[bid] = {"id": bid, "origin": origin,
                                    "payload": body.get("payload"), "at_ms": at}
        self._append({"at_ms": at, "kind": "broadcast", "id": bid, "origin": origin,
                      "serf_ltime": record.get("LTime")})

    # ---- the contract --------------------------------------------------------------------

    def node(self) -> dict[str, Any]:
        return {"id": self.node_id, "impl": "serf", "version": self.version,
                "capabilities": list(CAPABILITIES), "ready": self.state.ready}

    def members(self) -> dict[str, Any]:
        if self.state.left:
            return {"members": self.state.last_members}
        try:
            body = self.rpc.call("members")
        except RPCError as exc:
            raise ContractError(503, "agent_unavailable", str(exc)) from None
        members = [{"id": str(m.get("Name")), "address": _address(m),
                    "status": member_status(str(m.get("Status"))), "incarnation": 0}
                   for m in (body or {}).get("Members") or []]
        with self.lock:
            self.state.last_members = members
        return {"members": members}

    def join(self, seeds: list[str]) -> tuple[int, dict[str, Any]]:
        try:
            body = self.rpc.call("join", {"Existing": seeds, "Replay": False}, timeout_s=15.0)
        except RPCError as exc:
            return 503, {"error": "join_failed", "message": str(exc)}
        joined = int((body or {}).get("Num", 0))
        if joined < 1:
            return 503, {"error": "join_failed", "message": "no seed answered"}
        self.state.ready = True
        return 200, {"joined": True, "contacted": joined}

    def leave(self) -> dict[str, Any]:
        self.members()  # the last view, answered after the agent has gone
        try:
            self.rpc.call("leave", timeout_s=30.0)
        except RPCError as exc:
            raise ContractError(503, "agent_unavailable", str(exc)) from None
        with self.lock:
            self.state.left = True
            self.state.last_members = [
                {**m, "status": "left"} if m["id"] == self.node_id else m
                for m in self.state.last_members]
        return {"leaving": True}

    def broadcast(self, body: dict[str, Any]) -> dict[str, Any]:
        bid = body.get("id")
        if not isinstance(bid, str) or not bid:
            raise ContractError(400, "bad_request", "id must be a non-empty string")
        if "payload" not in body:
            raise ContractError(400, "bad_request", "payload is required")
        payload = json.dumps({"id": bid, "origin": self.node_id, "payload": body["payload"]},
                             separators=(",", ":")).encode("utf-8")
        try:
            self.rpc.call("event", {"Name": EVENT_NAME, "Payload": payload,
                                    "Coalesce": False})
        except RPCError as exc:
            # Serf refuses an event over its size limit (512 bytes of name and payload).
            raise ContractError(400, "rejected_by_serf", str(exc)) from None
        return {"id": bid}

    def broadcasts(self) -> dict[str, Any]:
        with self.lock:
            return {"received": list(self.state.received.values())}

    def events(self, after: int) -> dict[str, Any]:
        with self.lock:
            events = [e for e in self.state.events if e["seq"] > after]
        following = events[-1]["seq"] if events else max(0, after)
        return {"events": events, "next": following}


_NOT_CLAIMED = ("/v1/kv", "/v1/crdt", "/v1/metrics", "/v1/keyring")
# The methods the control API answers, on any path (others get aiohttp's 405).
_METHODS = ("GET", "POST", "PUT", "DELETE")


def _json_object(raw: bytes) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise ContractError(400, "bad_json", "the body is not JSON") from None
    if not isinstance(body, dict):
        raise ContractError(400, "bad_json", "the body must be a JSON object")
    return body


def handle(bridge: Bridge, method: str, target: str, raw_body: bytes) -> tuple[int, Any]:
    """(status, JSON body) of one contract call to ``target`` (path and query, as the
    request line has them). Blocks on the agent's RPC: the server runs it on a worker
    thread."""
    url = urlsplit(target)
    path = url.path.rstrip("/") or "/"
    try:
        body = _json_object(raw_body) if method in ("POST", "PUT", "DELETE") else {}
        return _route(bridge, method, path, url.query, body)
    except ContractError as exc:
        return exc.status, {"error": exc.error, "message": exc.message}


def _route(bridge: Bridge, method: str, path: str, query: str,
           body: dict[str, Any]) -> tuple[int, Any]:
    if (method, path) == ("GET", "/v1/node"):
        return 200, bridge.node()
    if (method, path) == ("GET", "/v1/members"):
        return 200, bridge.members()
    if (method, path) == ("POST", "/v1/join"):
        seeds = body.get("seeds")
        if not isinstance(seeds, list) or not all(isinstance(s, str) for s in seeds):
            raise ContractError(400, "bad_request", "seeds must be a list of HOST:PORT")
        return bridge.join(seeds)
    if (method, path) == ("POST", "/v1/leave"):
        return 202, bridge.leave()
    if (method, path) == ("POST", "/v1/broadcast"):
        return 202, bridge.broadcast(body)
    if (method, path) == ("GET", "/v1/broadcasts"):
        return 200, bridge.broadcasts()
    if (method, path) == ("GET", "/v1/events"):
        query_args = dict(parse_qsl(query))
        try:
            after = int(query_args.get("after", "0"))
        except ValueError:
            raise ContractError(400, "bad_request", "after must be an integer") from None
        return 200, bridge.events(after)
    if path.startswith(_NOT_CLAIMED):
        raise ContractError(501, "not_implemented",
                            f"Serf has no {path.split('/')[2]} (not claimed)")
    raise ContractError(404, "not_found", f"no route {method} {path}")


def build_app(bridge: Bridge) -> web.Application:
    """The control API: every call goes to :func:`handle`, on the loop's executor, so a
    call waiting on the agent holds up neither the loop nor the other calls."""

    async def call(request: web.Request) -> web.Response:
        raw = await request.read()
        loop = asyncio.get_running_loop()
        status, body = await loop.run_in_executor(None, handle, bridge, request.method,
                                                  request.raw_path, raw)
        return web.json_response(body, status=status)

    app = web.Application()
    for method in _METHODS:
        app.router.add_route(method, "/{path:.*}", call)
    return app
