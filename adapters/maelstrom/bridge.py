"""The v1 control contract for one Maelstrom node, run as this bridge's child.

A Maelstrom node speaks newline-delimited JSON envelopes ``{src, dest, body}`` on its
stdin and stdout. The bridge is its whole world:

* **its clients**: contract calls become Maelstrom requests from a client id of the
  bridge's own (``c<k>``), paired with their replies by ``msg_id``/``in_reply_to``;
* **its network**: an envelope to another node goes, as the node wrote it, over a TCP
  connection to that node's bridge through the dial address the harness gave
  (``--route``: one link-plane proxy per directed link, so every fault applies). A
  connection that breaks is dialled again; a message sent while it is down, or dropped
  by a fault, is lost: retrying is the node's business, and what is certified;
* **Maelstrom's seq-kv service** (:class:`SeqKV`), hosted by the bridge of the first node
  id in sorted order and reached by the others over the same links: while that node is
  cut off, killed or paused, the service is unreachable (or, after a restart, empty).

The bridge owns no protocol logic: what it reports is what the node replied. A Maelstrom
node tells no receive times, so a received broadcast's ``at_ms`` is null: the bridge's
clock when a ``read`` first showed the message (``observed_ms``) is only an observation,
and given as ``at_ms`` the harness would take it for the node's own time (trusted inside
its read's interval) and judge late a receipt that only its observation was. Without it
the harness judges from its reads, each an interval. Origin and payload are known only
for messages broadcast through this bridge (null otherwise: Maelstrom messages carry
neither).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from gossipcert.adapters.common import ContractError, die_with_parent

__all__ = [
    "CAPABILITIES",
    "DEFINITE",
    "ID_LIMIT",
    "SEQ_KV",
    "WORKLOADS",
    "Bridge",
    "ContractError",
    "NodeError",
    "SeqKV",
    "error_status",
    "full_topology",
    "kv_host",
    "parse_message_id",
]

SEQ_KV = "seq-kv"
WORKLOADS = ("broadcast", "g-counter")
# What a bridge serves per workload (the harness's manifest claims the same).
CAPABILITIES = {"broadcast": ["broadcast", "metrics"], "g-counter": ["crdt", "metrics"]}
# Maelstrom broadcast messages are integers; the harness sends ids below this.
ID_LIMIT = 2**31

# Maelstrom's error codes (its protocol doc). Definite ones say the operation certainly
# did not happen; the rest (timeout 0, crash 13, any unknown code) leave it unknown.
TIMEOUT, NODE_NOT_FOUND, NOT_SUPPORTED, TEMPORARILY_UNAVAILABLE = 0, 1, 10, 11
MALFORMED_REQUEST, CRASH, ABORT = 12, 13, 14
KEY_DOES_NOT_EXIST, KEY_ALREADY_EXISTS, PRECONDITION_FAILED, TXN_CONFLICT = 20, 21, 22, 30
DEFINITE = frozenset({NODE_NOT_FOUND, NOT_SUPPORTED, TEMPORARILY_UNAVAILABLE,
                      MALFORMED_REQUEST, ABORT, KEY_DOES_NOT_EXIST, KEY_ALREADY_EXISTS,
                      PRECONDITION_FAILED, TXN_CONFLICT})
_STATUS = {NODE_NOT_FOUND: 502, NOT_SUPPORTED: 501, TEMPORARILY_UNAVAILABLE: 503,
           MALFORMED_REQUEST: 400, ABORT: 409, KEY_DOES_NOT_EXIST: 404,
           KEY_ALREADY_EXISTS: 409, PRECONDITION_FAILED: 409, TXN_CONFLICT: 409}

LINE_LIMIT = 16 * 2**20  # longest envelope read from the node or a link
LINK_BUFFER_LIMIT = 2**20  # a link that cannot take more drops what the node sends


class NodeError(Exception):
    """The node answered a request with Maelstrom's ``error`` {code, text}."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"error {code}: {text}")
        self.code, self.text = code, text

    @property
    def definite(self) -> bool:
        return self.code in DEFINITE


class Unanswered(Exception):
    """No reply within the bridge's timeout: the outcome is unknown."""


def error_status(code: int) -> int:
    """The HTTP status of a definite Maelstrom error."""
    return _STATUS.get(code, 500)


def parse_message_id(value: Any) -> int:
    """A contract broadcast id as the integer a Maelstrom message is: a decimal string
    of an integer in [0, 2**31). Anything else is a :class:`ContractError` (400)."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        number = int(value)
        if number < ID_LIMIT:
            return number
    raise ContractError(400, "bad_request",
                        f"broadcast id {value!r}: Maelstrom messages are integers, so the id "
                        f"must be a decimal string of an integer in [0, {ID_LIMIT})")


def kv_host(node_ids: list[str]) -> str:
    """The node whose bridge hosts seq-kv: the first id in sorted order."""
    return sorted(node_ids)[0]


def full_topology(node_ids: list[str]) -> dict[str, list[str]]:
    """Every node a neighbour of every other (Maelstrom's ``total`` topology): the harness
    holds any node able to reach any other unless that very link is cut, so a topology
    that routed around nodes would turn one cut link into a partition the checkers do not
    know of."""
    return {n: [m for m in node_ids if m != n] for n in node_ids}


class SeqKV:
    """Maelstrom's ``seq-kv``: ``read``, ``write`` and ``cas`` (with
    ``create_if_not_exists``) on one map. A single copy answers in arrival order, so it
    is linearizable, which sequential consistency allows."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self._msg_id = 0

    @staticmethod
    def _key(body: Mapping[str, Any]) -> str:
        # Keys are JSON values; one key is one JSON text.
        return json.dumps(body.get("key"), sort_keys=True)

    def handle(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The reply body to one request body."""
        self._msg_id += 1
        reply = self._apply(body)
        reply["msg_id"] = self._msg_id
        if "msg_id" in body:
            reply["in_reply_to"] = body["msg_id"]
        return reply

    def _apply(self, body: Mapping[str, Any]) -> dict[str, Any]:
        kind = body.get("type")
        if "key" not in body and kind in ("read", "write", "cas"):
            return _error(MALFORMED_REQUEST, f"{kind} without a key")
        key = self._key(body)
        if kind == "read":
            if key not in self.data:
                return _error(KEY_DOES_NOT_EXIST, f"key {body['key']!r} does not exist")
            return {"type": "read_ok", "value": self.data[key]}
        if kind == "write":
            self.data[key] = body.get("value")
            return {"type": "write_ok"}
        if kind == "cas":
            if key not in self.data:
                if body.get("create_if_not_exists"):
                    self.data[key] = body.get("to")
                    return {"type": "cas_ok"}
                return _error(KEY_DOES_NOT_EXIST, f"key {body['key']!r} does not exist")
            if self.data[key] != body.get("from"):
                return _error(PRECONDITION_FAILED,
                              f"current value {self.data[key]!r} is not {body.get('from')!r}")
            self.data[key] = body.get("to")
            return {"type": "cas_ok"}
        return _error(NOT_SUPPORTED, f"seq-kv does not support {kind!r}")


def _error(code: int, text: str) -> dict[str, Any]:
    return {"type": "error", "code": code, "text": text}


def log(message: str) -> None:
    print(f"maelstrom bridge: {message}", file=sys.stderr, flush=True)


@dataclass
class Counters:
    """Envelopes the node sent to, and was handed from, other nodes and seq-kv."""

    messages_sent: int = 0
    messages_received: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    lost_link_down: int = 0  # sent while the connection to the peer was not up

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class Link:
    """The connection to one peer's bridge (through its dial address), dialled again
    whenever it breaks. It carries what is handed to it while it is up, and nothing is
    kept for later."""

    def __init__(self, peer: str, host: str, port: int) -> None:
        self.peer, self.host, self.port = peer, host, port
        self.writer: asyncio.StreamWriter | None = None

    def send(self, data: bytes) -> bool:
        writer = self.writer
        if writer is None or writer.is_closing():
            return False
        if writer.transport.get_write_buffer_size() > LINK_BUFFER_LIMIT:
            return False
        writer.write(data)
        return True

    async def run(self) -> None:
        delay = 0.05
        while True:
            opened = time.monotonic()
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.5)
                continue
            self.writer = writer
            try:
                while await reader.read(65536):  # nothing comes back; EOF ends it
                    pass
            except OSError:
                pass
            finally:
                self.writer = None
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
            # A connection that lived dials again at once; one that failed backs off.
            delay = 0.05 if time.monotonic() - opened > 1.0 else min(delay * 2, 0.5)
            await asyncio.sleep(delay)


@dataclass
class Bridge:
    """One node of a Maelstrom binary: its process, its links and its contract."""

    node_id: str
    routes: dict[str, tuple[str, int]]
    workload: str
    command: list[str]
    rpc_timeout_s: float = 5.0
    node_ids: list[str] = field(init=False)
    client_id: str = field(init=False)
    kv: SeqKV | None = field(init=False)
    counters: Counters = field(default_factory=Counters)
    ready: bool = False

    def __post_init__(self) -> None:
        if self.workload not in WORKLOADS:
            raise ValueError(f"unknown workload {self.workload!r}")
        self.node_ids = sorted({self.node_id, *self.routes})
        self.client_id = f"c{self.node_ids.index(self.node_id) + 1}"
        self.kv = SeqKV() if kv_host(self.node_ids) == self.node_id else None
        self.links = {peer: Link(peer, host, port) for peer, (host, port) in self.routes.items()}
        self.proc: asyncio.subprocess.Process | None = None
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._msg_id = 0
        self._tasks: list[asyncio.Task[None]] = []
        # Broadcasts: what this bridge was asked to send (origin, payload) and when a read
        # first showed each message.
        self._sent_here: dict[str, Any] = {}
        self._first_seen: dict[str, float] = {}
        self.counter_name: str | None = None  # the one CRDT name a g-counter node answers to

    # ---- the node process --------------------------------------------------------------

    async def spawn(self) -> None:
        """Start the node as a child that cannot outlive the bridge."""
        self.proc = await asyncio.create_subprocess_exec(
            *self.command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            preexec_fn=die_with_parent, limit=LINE_LIMIT,
        )
        self._tasks.append(asyncio.create_task(self._read_node()))

    async def stop_node(self, grace_s: float = 2.0) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), grace_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    async def handshake(self, timeout_s: float = 10.0) -> None:
        """``init`` (and ``topology`` for broadcast): the node is ready once it said ok."""
        await self.request({"type": "init", "node_id": self.node_id,
                            "node_ids": list(self.node_ids)}, "init_ok", timeout_s)
        if self.workload == "broadcast":
            await self.request({"type": "topology", "topology": full_topology(self.node_ids)},
                               "topology_ok", timeout_s)
        self.ready = True

    def start_links(self) -> None:
        self._tasks += [asyncio.create_task(link.run()) for link in self.links.values()]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.stop_node()

    def _to_node(self, envelope: Mapping[str, Any] | bytes) -> None:
        proc = self.proc
        if proc is None or proc.stdin is None or proc.stdin.is_closing():
            return
        data = envelope if isinstance(envelope, bytes) else json.dumps(envelope).encode() + b"\n"
        proc.stdin.write(data)

    async def _read_node(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        stdout = self.proc.stdout
        while True:
            try:
                line = await stdout.readline()
            except ValueError:  # longer than LINE_LIMIT: not a message
                log("dropped an over-long line from the node")
                continue
            if not line:
                return
            self.from_node(line)

    # ---- routing -----------------------------------------------------------------------

    def from_node(self, line: bytes) -> None:
        """One line the node wrote: a reply to the bridge, or a message for another node
        or for seq-kv, sent on as written."""
        try:
            envelope = json.loads(line)
            dest, body = envelope["dest"], envelope["body"]
            if not isinstance(body, dict):
                raise TypeError("body is not an object")
        except (ValueError, KeyError, TypeError) as exc:
            log(f"ignored a line from the node that is not a message ({exc}): {line[:200]!r}")
            return
        data = line if line.endswith(b"\n") else line + b"\n"
        if dest == self.client_id:
            reply_to = body.get("in_reply_to")
            future = self._pending.get(reply_to) if isinstance(reply_to, int) else None
            if future is not None and not future.done():
                future.set_result(body)
            return
        if dest == self.node_id:
            self._to_node(data)
            return
        if dest != SEQ_KV and dest not in self.links:
            log(f"dropped a message to unknown destination {dest!r}")
            return
        self.counters.messages_sent += 1
        self.counters.bytes_sent += len(data)
        if dest == SEQ_KV and self.kv is not None:
            self._serve_kv(envelope)
            return
        target = dest if dest != SEQ_KV else kv_host(self.node_ids)
        if not self.links[target].send(data):
            self.counters.lost_link_down += 1

    def from_link(self, line: bytes) -> None:
        """One line another bridge sent: a message for this node, or for seq-kv here."""
        if not line.endswith(b"\n"):
            return  # the tail of a connection that ended mid-message
        try:
            envelope = json.loads(line)
            dest = envelope["dest"]
        except (ValueError, KeyError, TypeError):
            return  # bytes a fault cut apart
        if dest == self.node_id:
            self.counters.messages_received += 1
            self.counters.bytes_received += len(line)
            self._to_node(line)
        elif dest == SEQ_KV and self.kv is not None:
            self._serve_kv(envelope)

    def _serve_kv(self, envelope: Mapping[str, Any]) -> None:
        assert self.kv is not None
        body = envelope.get("body")
        if not isinstance(body, dict):
            return
        reply = {"src": SEQ_KV, "dest": envelope.get("src"), "body": self.kv.handle(body)}
        data = json.dumps(reply).encode() + b"\n"
        src = envelope.get("src")
        if src == self.node_id:
            self.counters.messages_received += 1
            self.counters.bytes_received += len(data)
            self._to_node(data)
        elif isinstance(src, str) and src in self.links:
            self.links[src].send(data)

    async def serve_links(self, host: str, port: int) -> asyncio.Server:
        async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while True:
                    try:
                        line = await reader.readline()
                    except ValueError:
                        return  # over-long: drop the connection, the sender dials again
                    if not line:
                        return
                    self.from_link(line)
            except (OSError, asyncio.CancelledError):
                return  # a broken connection, or the bridge shutting down
            finally:
                writer.close()

        return await asyncio.start_server(one, host, port, limit=LINE_LIMIT)

    # ---- requests to the node ----------------------------------------------------------

    async def request(self, body: dict[str, Any], expect: str,
                      timeout_s: float | None = None) -> dict[str, Any]:
        """Send ``body`` from the bridge's client id and wait for the reply of type
        ``expect``; :class:`NodeError` for an ``error`` reply, :class:`Unanswered` for
        none in time, :class:`ContractError` (502) for any other."""
        self._msg_id += 1
        msg_id = self._msg_id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = future
        self._to_node({"src": self.client_id, "dest": self.node_id,
                       "body": {**body, "msg_id": msg_id}})
        wait = self.rpc_timeout_s if timeout_s is None else timeout_s
        try:
            reply = await asyncio.wait_for(future, wait)
        except TimeoutError:
            raise Unanswered(f"no reply to {body['type']} within {wait:g} s") from None
        finally:
            self._pending.pop(msg_id, None)
        if reply.get("type") == "error":
            code = reply.get("code")
            raise NodeError(code if isinstance(code, int) else -1, str(reply.get("text", "")))
        if reply.get("type") != expect:
            raise ContractError(502, "bad_reply",
                                f"the node answered {body['type']} with {reply.get('type')!r}, "
                                f"not {expect}")
        return reply

    async def _update(self, body: dict[str, Any], expect: str) -> dict[str, Any]:
        """A request that changes state. A definite error is an HTTP error (it did not
        happen); an unknown outcome is answered only after the request's timeout, so that
        the harness's client, which waits less, records it as unknown (the contract has
        no status for "maybe")."""
        started = time.monotonic()
        try:
            return await self.request(body, expect)
        except NodeError as exc:
            if exc.definite:
                raise ContractError(error_status(exc.code), "node_error",
                                    f"the node answered {body['type']} with {exc}") from None
            why = f"the node answered {body['type']} with {exc} (outcome unknown)"
        except Unanswered as exc:
            why = f"{exc} (outcome unknown)"
        await asyncio.sleep(max(0.0, self.rpc_timeout_s - (time.monotonic() - started)))
        raise ContractError(504, "outcome_unknown", why)

    async def _read(self, body: dict[str, Any], expect: str) -> dict[str, Any]:
        try:
            return await self.request(body, expect)
        except NodeError as exc:
            status = error_status(exc.code) if exc.definite else 504
            raise ContractError(status, "node_error",
                                f"the node answered {body['type']} with {exc}") from None
        except Unanswered as exc:
            raise ContractError(504, "timeout", str(exc)) from None

    # ---- the contract ------------------------------------------------------------------

    def node_info(self) -> dict[str, Any]:
        return {"id": self.node_id, "impl": f"maelstrom:{Path(self.command[0]).name}",
                "version": "maelstrom-protocol", "capabilities": CAPABILITIES[self.workload],
                "ready": self.ready}

    def _require(self, workload: str) -> None:
        if self.workload != workload:
            raise ContractError(501, "not_implemented",
                                f"a Maelstrom {self.workload} node has no {workload} operations")
        if not self.ready:
            raise ContractError(503, "not_ready", "the node has not answered init yet")

    async def broadcast(self, body: Any) -> None:
        self._require("broadcast")
        if not isinstance(body, dict) or "id" not in body:
            raise ContractError(400, "bad_request", "expected {id, payload}")
        message = parse_message_id(body["id"])
        await self._update({"type": "broadcast", "message": message}, "broadcast_ok")
        self._sent_here.setdefault(str(message), body.get("payload"))

    async def broadcasts(self) -> dict[str, Any]:
        self._require("broadcast")
        reply = await self._read({"type": "read"}, "read_ok")
        messages = reply.get("messages")
        if not isinstance(messages, list):
            raise ContractError(502, "bad_reply", "read_ok without a messages list")
        now_ms = time.time() * 1000.0
        received = []
        for message in messages:
            key = str(message)
            seen = self._first_seen.setdefault(key, now_ms)
            here = key in self._sent_here
            received.append({"id": key, "origin": self.node_id if here else None,
                             "payload": self._sent_here.get(key), "at_ms": None,
                             "observed_ms": seen})
        return {"received": received}

    def _counter(self, name: str) -> None:
        self._require("g-counter")
        if self.counter_name is None:
            self.counter_name = name
        elif name != self.counter_name:
            raise ContractError(404, "not_found",
                                f"a Maelstrom g-counter node keeps one counter, here named "
                                f"{self.counter_name!r}; there is no {name!r}")

    async def crdt_update(self, name: str, body: Any) -> None:
        if not isinstance(body, dict):
            raise ContractError(400, "bad_request", "expected {type, op, value}")
        if body.get("type") != "g-counter":
            self._require("g-counter")
            raise ContractError(501, "not_implemented",
                                f"a Maelstrom g-counter node has no {body.get('type')!r}")
        if body.get("op") != "increment":
            raise ContractError(400, "bad_request", "a g-counter only takes increment")
        delta = body.get("value", 1)
        if isinstance(delta, bool) or not isinstance(delta, int) or delta < 0:
            raise ContractError(400, "bad_request", f"increment by {delta!r}: not a count")
        self._counter(name)
        await self._update({"type": "add", "delta": delta}, "add_ok")

    async def crdt_read(self, name: str) -> dict[str, Any]:
        self._counter(name)
        reply = await self._read({"type": "read"}, "read_ok")
        return {"type": "g-counter", "value": reply.get("value")}

    def metrics(self) -> dict[str, Any]:
        return self.counters.as_dict()


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json_error(status: int, error: str, message: str) -> web.Response:
    return web.json_response({"error": error, "message": message}, status=status)


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise ContractError(400, "bad_request", "the body is not JSON") from None


def build_app(bridge: Bridge) -> web.Application:
    """The contract's routes; every capability the bridge does not serve answers 501."""

    async def node(request: web.Request) -> web.Response:
        return web.json_response(bridge.node_info())

    async def broadcast(request: web.Request) -> web.Response:
        await bridge.broadcast(await _body(request))
        return web.json_response({}, status=202)

    async def broadcasts(request: web.Request) -> web.Response:
        return web.json_response(await bridge.broadcasts())

    async def crdt_post(request: web.Request) -> web.Response:
        await bridge.crdt_update(request.match_info["name"], await _body(request))
        return web.json_response({})

    async def crdt_get(request: web.Request) -> web.Response:
        return web.json_response(await bridge.crdt_read(request.match_info["name"]))

    async def metrics(request: web.Request) -> web.Response:
        return web.json_response(bridge.metrics())

    async def other(request: web.Request) -> web.Response:
        if request.path.startswith("/v1/"):
            raise ContractError(501, "not_implemented",
                                f"{request.method} {request.path}: not served by the Maelstrom "
                                f"bridge ({bridge.workload} workload)")
        raise ContractError(404, "not_found", f"{request.method} {request.path}: no such call")

    @web.middleware
    async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ContractError as exc:
            return _json_error(exc.status, exc.error, exc.message)
        except web.HTTPException as exc:
            return _json_error(exc.status, exc.reason.lower().replace(" ", "_"),
                               f"{request.method} {request.path}: {exc.reason}")

    app = web.Application(middlewares=[errors])
    app.router.add_get("/v1/node", node)
    app.router.add_post("/v1/broadcast", broadcast)
    app.router.add_get("/v1/broadcasts", broadcasts)
    app.router.add_post("/v1/crdt/{name}", crdt_post)
    app.router.add_get("/v1/crdt/{name}", crdt_get)
    app.router.add_get("/v1/metrics", metrics)
    app.router.add_route("*", "/{path:.*}", other)
    return app


async def run(bridge: Bridge, gossip: tuple[str, int], control: tuple[str, int]) -> int:
    """Run one bridge until SIGTERM/SIGINT or its node exits: 0 on a signal, 1 when the
    node exited, 2 when it could not start (one line on stderr each time)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await bridge.spawn()
    except OSError as exc:
        log(f"cannot start {bridge.command[0]}: {exc.strerror or exc}")
        return 2
    runner = web.AppRunner(build_app(bridge), access_log=None, handle_signals=False)
    server: asyncio.Server | None = None
    try:
        try:
            server = await bridge.serve_links(*gossip)
            await runner.setup()
            await web.TCPSite(runner, *control).start()
        except OSError as exc:
            log(f"cannot listen: {exc.strerror or exc}")
            return 2
        bridge.start_links()
        assert bridge.proc is not None
        exited = asyncio.create_task(bridge.proc.wait())
        stopping = asyncio.create_task(stop.wait())
        handshake = asyncio.create_task(bridge.handshake())
        await asyncio.wait({handshake, exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not handshake.done():
            handshake.cancel()
            if stopping.done():
                return 0
            log(f"the node exited with code {bridge.proc.returncode} before answering init")
            return 2
        failed = handshake.exception()
        if failed is not None:
            log(f"the node did not complete init: {failed}")
            return 2
        await asyncio.wait({exited, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if exited.done():
            log(f"the node exited with code {bridge.proc.returncode}")
            return 1
        return 0
    finally:
        await bridge.close()
        if server is not None:
            server.close()
        await runner.cleanup()


def main_sync(bridge: Bridge, gossip: tuple[str, int], control: tuple[str, int]) -> int:
    return asyncio.run(run(bridge, gossip, control))


def node_command(path: str) -> list[str]:
    """The argv of a node binary, checked to be an executable file."""
    if not os.path.isfile(path) or not os.access(path, os.X_OK):
        raise ValueError(f"{path}: not an executable file")
    return [os.path.abspath(path)]
