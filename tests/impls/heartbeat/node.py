"""A gossip node with heartbeat failure detection, written against the gossipcert control
contract v1 (specs/control-api.yaml). Standard library only; see README.md.

Run: python node.py --id n1 --gossip 127.0.0.2:7000 --control 127.0.0.2:7001 [--seed H:P]...
[--route PEER=H:P]...
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import math
import os
import random
import sys
import threading
import time
from typing import Any
from urllib.parse import unquote, urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from heartbeat_state import (  # noqa: E402
    ALIVE,
    CRDT_OPS,
    CRDT_TYPES,
    DEAD,
    LEFT,
    CrdtError,
    Entry,
    KvStore,
    Member,
    crdt_apply,
    crdt_merge,
    crdt_new,
    crdt_valid,
    crdt_value,
    digest_of,
    newer,
    parse_entry,
    parse_member,
    retransmit_limit,
    suspicion_ms,
)

IMPL = "heartbeat"
VERSION = "0.1.0"
CAPABILITIES = ["membership", "failure-detection", "broadcast", "kv", "leave", "crdt"]
DEFECTS = ("no-tombstones", "eager-fd", "drops-writes", "g-set", "silent-leave",
           "one-hop-broadcast", "refuses-leave", "left-turns-dead", "drops-live-peers",
           "mangles-relays", "spins-slow-fd", "writes-fail", "remove-wins", "lying-digest",
           "dark-after-suspicion")
LEFT_TURNS_DEAD_S = 1.0  # the left-turns-dead defect: a left row reads dead after this
# The drops-live-peers defect: about once in this long a node forgets a live peer, and
# ignores rows about it for DROPPED_S (a reaper with a "recently removed" filter).
DROP_EVERY_S = 2.0
DROPPED_S = 1.0
SLOW_FD_FACTOR = 4  # the spins-slow-fd defect: a silent member is declared dead this late
LYING_DIGEST_S = 2.0  # the lying-digest defect: how long a served digest is cached
MAX_DATAGRAM = 60_000  # below the 65,507-byte UDP limit, with room for the envelope
JOIN_GRACE_S = 3.0  # ready without a seed's answer after this long (the seed may be down)
LEAVE_REPEATS = 3
# Routed links (--route): newline-delimited JSON over one TCP connection per peer.
STREAM_LIMIT = 4 * 1024 * 1024  # longest frame a gossip stream accepts
LINK_BUFFER_MAX = 1024 * 1024  # a link this far behind drops messages, as UDP would
LINK_PENDING_MAX = 64  # messages held while a link's connection opens
RECONNECT_S = 0.2  # a link whose connection failed or ended waits this long to redial
CONNECT_TIMEOUT_S = 2.0

REASONS = {200: "OK", 202: "Accepted", 400: "Bad Request", 404: "Not Found",
           405: "Method Not Allowed", 409: "Conflict", 500: "Internal Server Error",
           501: "Not Implemented", 503: "Service Unavailable"}


class HttpError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def split_addr(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host, int(port)


def parse_route(text: str) -> tuple[str, str]:
    peer, sep, addr = text.partition("=")
    if not sep or not peer or ":" not in addr:
        raise argparse.ArgumentTypeError(f"a route is PEER=HOST:PORT, not {text!r}")
    return peer, addr


def log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


class Gossip(asyncio.DatagramProtocol):
    def __init__(self, node: Node) -> None:
        self.node = node

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.node.receive(data)


class StreamLink:
    """The way to one routed address: a TCP connection carrying one JSON message per
    line, opened on the first send and opened again (after ``RECONNECT_S``) when it fails
    or the far end closes it. Sending never waits: a message that finds the link unable
    to take it (still connecting with a full queue, or too far behind) is dropped, which
    the protocol already tolerates, as it tolerates a lost datagram."""

    def __init__(self, addr: str) -> None:
        self.addr = addr
        self.writer: asyncio.StreamWriter | None = None
        self.pending: list[bytes] = []
        self.opening = False
        self.down_at = -math.inf
        self.task: asyncio.Task[None] | None = None

    def send(self, data: bytes) -> None:
        writer = self.writer
        if writer is not None and writer.is_closing():
            writer = self.writer = None
        if writer is not None:
            if writer.transport.get_write_buffer_size() <= LINK_BUFFER_MAX:
                writer.write(data)
            return
        if len(self.pending) < LINK_PENDING_MAX:
            self.pending.append(data)
        if not self.opening and time.monotonic() - self.down_at >= RECONNECT_S:
            self.opening = True
            self.task = asyncio.get_running_loop().create_task(self.run())  # keep a ref

    async def run(self) -> None:
        host, port = split_addr(self.addr)
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port),
                                                    CONNECT_TIMEOUT_S)
        except (TimeoutError, OSError):
            self.pending.clear()
            self.down_at = time.monotonic()
            self.opening = False
            return
        self.opening = False
        self.writer = writer
        for data in self.pending:
            writer.write(data)
        self.pending.clear()
        try:  # nothing comes back on this connection; reading only notices its end
            while await reader.read(65536):
                pass
        except OSError:
            pass
        if self.writer is writer:
            self.writer = None
        self.down_at = time.monotonic()
        writer.close()


class Node:
    def __init__(self, args: argparse.Namespace) -> None:
        self.id: str = args.id
        self.gossip_addr: str = args.gossip
        self.control_addr: str = args.control
        self.seeds: list[str] = list(args.seed)
        # Dial map: where to send what is meant for a peer (a link proxy of the harness).
        self.routes: dict[str, str] = dict(args.route)
        self.routed_addrs = set(self.routes.values())
        self.links: dict[str, StreamLink] = {}
        self.defect: str | None = args.defect
        # Without a graceful leave (--without-leave, a variant that does not declare it),
        # or declaring one and refusing it (the refuses-leave defect), leave answers 501.
        self.serves_leave = not args.without_leave and self.defect != "refuses-leave"
        self.capabilities = [c for c in CAPABILITIES
                             if c != "leave" or not args.without_leave]
        self.probe_s = args.probe_interval_ms / 1000.0
        self.probe_timeout_s = args.probe_timeout_ms / 1000.0
        self.suspicion_mult: float = args.suspicion_mult
        self.suspicion_max_mult: float = args.suspicion_max_timeout_mult
        self.gossip_s = args.gossip_interval_ms / 1000.0
        self.fanout: int = args.fanout
        self.retransmit_mult: float = args.retransmit_mult
        self.push_pull_s = args.push_pull_interval_ms / 1000.0

        self.rng = random.Random()
        self.boot_gen = int(time.time() * 1000)
        self.replica = f"{self.id}@{self.boot_gen}"
        now = time.monotonic()
        self.me = Member(self.id, self.gossip_addr, self.boot_gen, 0, ALIVE, now)
        self.members: dict[str, Member] = {self.id: self.me}
        self.kv = KvStore()
        self.broadcasts: dict[str, dict[str, Any]] = {}
        self.crdts: dict[str, tuple[str, dict[str, Any]]] = {}
        self.pending: list[list[Any]] = []  # [item, rounds left] riding on heartbeats
        self.last_sync: dict[str, float] = {}
        self.last_check = now
        self.last_micros = 0
        self.op_seq = 0
        self.puts = 0
        self.dark = False  # the dark-after-suspicion defect: members reads fail from now on
        self.served_digest: str | None = None  # the lying-digest defect's cached digest
        self.served_at = 0.0
        self.ready = not self.seeds
        self.left = False
        self.dropped: dict[str, float] = {}  # drops-live-peers: id -> ignored until
        self.welcomed = asyncio.Event()
        self._digest: str | None = None
        self.transport: asyncio.DatagramTransport | None = None

    # ------------------------------------------------------------------ helpers

    def stamp(self) -> tuple[int, str]:
        """A write stamp: wall-clock microseconds (every node shares the machine's clock,
        so a write begun after another completed gets a greater one), made strictly
        increasing locally, with the node id to break ties."""
        self.last_micros = max(time.time_ns() // 1000, self.last_micros + 1)
        return self.last_micros, self.id

    def cluster_size(self) -> int:
        return sum(1 for m in self.members.values() if m.status != LEFT)

    def fail_after_s(self) -> float:
        if self.defect == "eager-fd":
            return self.probe_s  # seeded defect: one missed heartbeat interval is death
        limit = self.probe_timeout_s + suspicion_ms(
            self.suspicion_mult, self.suspicion_max_mult, self.probe_s * 1000,
            self.cluster_size()) / 1000.0
        if self.defect == "spins-slow-fd":
            return SLOW_FD_FACTOR * limit  # seeded defect: detection far too late
        return limit

    def peers(self, *statuses: str) -> list[Member]:
        return [m for m in self.members.values() if m.id != self.id and m.status in statuses]

    def table(self) -> list[list[Any]]:
        return [m.wire() for m in self.members.values()]

    def dial(self, peer: Member) -> str:
        """Where to send what is meant for ``peer``: its route when the dial map has one,
        else the gossip address it advertises."""
        return self.routes.get(peer.id, peer.address)

    def dial_id(self, peer_id: str) -> str | None:
        if peer_id in self.routes:
            return self.routes[peer_id]
        m = self.members.get(peer_id)
        return m.address if m is not None else None

    def send(self, addr: str, msg: dict[str, Any]) -> None:
        """A routed address gets the message as one line on the TCP link to it; any other
        gets a datagram from the gossip socket, so its source port is ours."""
        data = json.dumps(msg, separators=(",", ":")).encode()  # never a raw newline
        if addr in self.routed_addrs:
            link = self.links.get(addr)
            if link is None:
                link = self.links[addr] = StreamLink(addr)
            link.send(data + b"\n")
            return
        if self.transport is None:
            return
        with contextlib.suppress(OSError, ValueError):
            self.transport.sendto(data, split_addr(addr))

    def send_items(self, addr: str, envelope: dict[str, Any], items: list[list[Any]]) -> None:
        """Send ``envelope`` with ``items`` split over as many datagrams as they need; the
        last datagram carries ``last: true``."""
        base = len(json.dumps(envelope, separators=(",", ":"))) + 32
        chunk: list[list[Any]] = []
        size = base
        for item in items:
            n = len(json.dumps(item, separators=(",", ":"))) + 1
            if chunk and size + n > MAX_DATAGRAM:
                self.send(addr, {**envelope, "u": chunk, "last": False})
                chunk, size = [], base
            chunk.append(item)
            size += n
        self.send(addr, {**envelope, "u": chunk, "last": True})

    # ------------------------------------------------------------------ replicated state

    def state_items(self) -> list[list[Any]]:
        items: list[list[Any]] = [["kv", k, e.wire()] for k, e in sorted(self.kv.entries.items())]
        if self.defect != "one-hop-broadcast":
            items += [["bc", b["id"], b["origin"], b["payload"]]
                      for _, b in sorted(self.broadcasts.items())]
        items += [["crdt", name, kind, st] for name, (kind, st) in sorted(self.crdts.items())]
        return items

    def digest(self) -> str:
        if self._digest is None:
            self._digest = digest_of(self.state_items())
        return self._digest

    def apply_item(self, item: Any) -> bool:
        """Merge one replicated item; True if it was new here."""
        if not isinstance(item, list) or not item:
            return False
        kind = item[0]
        changed = False
        if kind == "kv" and len(item) == 3 and isinstance(item[1], str):
            entry = parse_entry(item[2])
            if entry is not None:
                changed = self.kv.merge(item[1], entry)
        elif kind == "bc" and len(item) == 4 and isinstance(item[1], str):
            if item[1] not in self.broadcasts:
                payload = item[3]
                if self.defect == "mangles-relays" and item[2] != self.id:
                    payload = json.dumps(payload)  # seeded defect: a relay encodes it again
                self.broadcasts[item[1]] = {"id": item[1], "origin": item[2],
                                            "payload": payload, "at_ms": time.time() * 1000}
                changed = True
        elif kind == "crdt" and len(item) == 4 and isinstance(item[1], str):
            name, ctype, st = item[1], item[2], item[3]
            if crdt_valid(ctype, st):
                current = self.crdts.get(name)
                if current is None:
                    self.crdts[name] = (ctype, st)
                    changed = True
                elif current[0] == ctype:
                    merged = crdt_merge(ctype, current[1], st)
                    if merged != current[1]:
                        self.crdts[name] = (ctype, merged)
                        changed = True
        if changed:
            self._digest = None
        return changed

    def spread(self, items: list[list[Any]], exclude: str | None = None) -> None:
        """Flood new items: push them now to ``fanout`` random live peers and let them ride
        on the next ``retransmit_limit`` heartbeat rounds."""
        if not items:
            return
        targets = [m for m in self.peers(ALIVE) if m.id != exclude]
        for m in self.rng.sample(targets, min(self.fanout, len(targets))):
            self.send_items(self.dial(m), {"t": "upd", "from": self.id}, items)
        rounds = retransmit_limit(self.retransmit_mult, self.cluster_size())
        self.pending.extend([item, rounds] for item in items)

    # ------------------------------------------------------------------ membership

    def merge_rows(self, rows: Any) -> None:
        if not isinstance(rows, list):
            return
        now = time.monotonic()
        departed = False
        for row in rows:
            m = parse_member(row)
            if m is None:
                continue
            if m.id == self.id:
                self.about_me(m)
                continue
            if self.dropped.get(m.id, 0.0) > now:
                continue  # seeded defect: a peer it dropped is not learnt again yet
            local = self.members.get(m.id)
            if local is None:
                m.seen = now
                self.members[m.id] = m
                log(f"learned {m.id} ({m.status}, gen {m.gen})")
                departed |= m.status == LEFT
                continue
            how = newer(m, local)
            if how == "replace":
                if m.status != local.status or m.gen != local.gen:
                    log(f"{m.id}: {local.status}/{local.gen} -> {m.status}/{m.gen}")
                departed |= m.status == LEFT and local.status != LEFT
                local.gen, local.hb, local.status, local.address = m.gen, m.hb, m.status, m.address
                local.seen = now
            elif how == "beat":
                local.hb, local.seen = m.hb, now
        if departed and not self.left:
            self.gossip_to(self.fanout_targets())  # a departure travels at once

    def about_me(self, m: Member) -> None:
        """Someone's row about this node: refute a death (or a stale departure) with a new
        generation; anything else about us is old news."""
        if self.left:
            return
        if m.gen > self.me.gen or (m.gen == self.me.gen and m.status != ALIVE):
            self.me.gen = max(int(time.time() * 1000), m.gen + 1)
            self.me.hb = 0
            log(f"refuting {m.status} at gen {m.gen}: now gen {self.me.gen}")

    def check_stall(self, now: float) -> None:
        """Local health: if this process did not run for a while (a stall, SIGSTOP), the
        silence of the others in that time says nothing about them: shift their clocks."""
        gap = now - self.last_check
        if gap > 2 * self.probe_s:
            shift = gap - self.probe_s
            for m in self.members.values():
                if m.id != self.id:
                    m.seen = min(m.seen + shift, now)
            log(f"stalled {gap:.2f} s: heartbeat ages shifted")
        self.last_check = now

    def detect(self) -> None:
        now = time.monotonic()
        self.check_stall(now)
        limit = self.fail_after_s()
        live = self.peers(ALIVE)
        if (self.defect == "drops-live-peers" and live
                and self.rng.random() < self.probe_s / DROP_EVERY_S):
            gone = self.rng.choice(live)  # seeded defect: a live peer silently forgotten
            del self.members[gone.id]
            self.dropped[gone.id] = now + DROPPED_S
        for m in self.peers(ALIVE):
            if now - m.seen > limit:
                m.status = DEAD
                log(f"declared {m.id} dead (gen {m.gen}, hb {m.hb}, silent "
                    f"{now - m.seen:.2f} s)")

    def view_status(self, m: Member, now: float) -> str:
        if m.id == self.id:
            return LEFT if self.left else ALIVE
        if (m.status == ALIVE and self.defect != "eager-fd"
                and now - m.seen > self.probe_timeout_s):
            return "suspect"
        if (m.status == LEFT and self.defect == "left-turns-dead"
                and now - m.seen > LEFT_TURNS_DEAD_S):
            return DEAD  # seeded defect: a leaver's tombstone ages into a failure
        return m.status

    # ------------------------------------------------------------------ gossip rounds

    def fanout_targets(self) -> list[Member]:
        live = self.peers(ALIVE)
        targets = self.rng.sample(live, min(self.fanout, len(live)))
        dead = self.peers(DEAD)
        # Like Cassandra's gossiper, also try one unreachable member now and then, so
        # two sides that declared each other dead find each other after a partition.
        if dead and self.rng.random() < len(dead) / (len(live) + 1):
            targets.append(self.rng.choice(dead))
        return targets

    def gossip_to(self, targets: list[Member]) -> None:
        riding = [p[0] for p in self.pending]
        for p in self.pending:
            p[1] -= 1
        self.pending = [p for p in self.pending if p[1] > 0]
        envelope = {"t": "hb", "from": self.id, "m": self.table(), "d": self.digest()}
        for m in targets:
            self.send_items(self.dial(m), envelope, riding)

    async def heartbeat_loop(self) -> None:
        await asyncio.sleep(self.rng.random() * self.probe_s)
        while not self.left:
            self.me.hb += 1
            self.detect()
            await asyncio.sleep(self.probe_s)

    async def gossip_loop(self) -> None:
        await asyncio.sleep(self.rng.random() * self.gossip_s)
        while not self.left:
            self.gossip_to(self.fanout_targets())
            await asyncio.sleep(self.gossip_s)

    async def anti_entropy_loop(self) -> None:
        await asyncio.sleep(self.rng.random() * self.push_pull_s)
        while not self.left:
            live = self.peers(ALIVE)
            if live:
                self.start_sync(self.rng.choice(live))
            await asyncio.sleep(self.push_pull_s)

    def start_sync(self, peer: Member) -> None:
        self.last_sync[peer.id] = time.monotonic()
        self.send(self.dial(peer), {"t": "sync", "from": self.id, "m": self.table(),
                                 "d": self.digest()})

    async def join_loop(self) -> None:
        started = time.monotonic()
        while not self.welcomed.is_set() and not self.left:
            self.send_join(self.seeds)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.welcomed.wait(), 0.5)
            if time.monotonic() - started > JOIN_GRACE_S and not self.ready:
                log("no seed answered yet; ready anyway, still trying")
                self.ready = True
        self.ready = True

    def send_join(self, seeds: list[str]) -> None:
        for seed in seeds:
            self.send_items(seed, {"t": "join", "from": self.id, "m": [self.me.wire()]},
                            self.state_items())

    # ------------------------------------------------------------------ messages

    def receive(self, data: bytes) -> None:
        """One message, from a datagram or a line of a gossip stream."""
        try:
            msg = json.loads(data)
        except ValueError:
            return
        if isinstance(msg, dict):
            try:
                self.on_message(msg)
            except Exception as exc:  # a bad message must not stop the node
                log(f"dropped a message from {str(msg.get('from'))[:40]!r}: {exc!r}")

    async def serve_gossip(self, reader: asyncio.StreamReader,
                           writer: asyncio.StreamWriter) -> None:
        """A peer's link (through its proxy when routed): one message per line."""
        try:
            while line := await reader.readline():
                self.receive(line)
        except (OSError, ValueError):  # a reset, or a line beyond STREAM_LIMIT
            pass
        finally:
            writer.close()

    def on_message(self, msg: dict[str, Any]) -> None:
        """Senders are known by the id in the message, never by where it came from (a
        proxy's address when routed); answers go where we would dial the sender."""
        if self.left:
            return
        kind, sender = msg.get("t"), msg.get("from")
        if not isinstance(sender, str) or sender == self.id:
            return
        self.merge_rows(msg.get("m"))
        reply_to = self.dial_id(sender)
        if reply_to is None:  # no route and no row with its address: nowhere to answer
            reply_to = ""
        self.tell_if_dead(sender, msg.get("m"), reply_to)
        items = msg.get("u") if isinstance(msg.get("u"), list) else []
        assert isinstance(items, list)
        if kind in ("hb", "upd"):
            fresh = [it for it in items if self.apply_item(it)]
            if self.defect == "one-hop-broadcast":
                fresh = [it for it in fresh if it[0] != "bc"]
            self.spread(fresh, exclude=sender)
            if (kind == "hb" and msg.get("d") != self.digest()
                    and time.monotonic() - self.last_sync.get(sender, 0.0) > self.push_pull_s):
                peer = self.members.get(sender)
                if peer is not None and peer.status == ALIVE:
                    self.start_sync(peer)
        elif kind == "join":
            for it in items:
                self.apply_item(it)
            if reply_to:
                self.send_items(reply_to, {"t": "welcome", "from": self.id,
                                           "m": self.table()}, self.state_items())
        elif kind == "welcome":
            for it in items:
                self.apply_item(it)
            if msg.get("last"):
                self.welcomed.set()
                self.ready = True
        elif kind == "sync":
            self.last_sync[sender] = time.monotonic()
            if msg.get("d") != self.digest() and reply_to:
                self.send_items(reply_to, {"t": "state", "from": self.id, "m": self.table(),
                                           "d": self.digest(), "want": True},
                                self.state_items())
        elif kind == "state":
            for it in items:
                self.apply_item(it)
            if (msg.get("last") and msg.get("want") and msg.get("d") != self.digest()
                    and reply_to):
                self.send_items(reply_to, {"t": "state", "from": self.id, "m": self.table(),
                                           "d": self.digest(), "want": False},
                                self.state_items())

    def tell_if_dead(self, sender: str, rows: Any, reply_to: str) -> None:
        """A member we hold dead (or departed) still talks in its old life: tell it, so it
        refutes with a new generation."""
        local = self.members.get(sender)
        if (local is None or local.status == ALIVE or not isinstance(rows, list)
                or not reply_to):
            return
        for row in rows:
            m = parse_member(row)
            if m is not None and m.id == sender and m.status == ALIVE and m.gen <= local.gen:
                self.send(reply_to, {"t": "hb", "from": self.id, "m": [local.wire()],
                                     "d": self.digest()})
                return

    # ------------------------------------------------------------------ control API

    async def route(self, method: str, target: str, body: bytes) -> tuple[int, Any]:
        path = urlsplit(target).path
        parts = [unquote(p) for p in path.split("/")[1:]]
        if len(parts) < 2 or parts[0] != "v1":
            raise HttpError(404, "not_found", f"no such path {path}")
        res, rest = parts[1], parts[2:]
        data = self.parse_body(body) if method in ("POST", "PUT", "DELETE") else None
        if res == "node" and not rest:
            self.need(method, "GET")
            return 200, {"id": self.id, "impl": IMPL, "version": VERSION,
                         "capabilities": self.capabilities, "ready": self.ready}
        if res == "members" and not rest:
            self.need(method, "GET")
            return 200, {"members": self.members_view()}
        if res == "join" and not rest:
            self.need(method, "POST")
            return await self.api_join(data)
        if res == "leave" and not rest:
            self.need(method, "POST")
            if not self.serves_leave:
                raise HttpError(501, "not_implemented", "this node has no graceful leave")
            return self.api_leave()
        if res == "broadcast" and not rest:
            self.need(method, "POST")
            return self.api_broadcast(data)
        if res == "broadcasts" and not rest:
            self.need(method, "GET")
            return 200, {"received": sorted(self.broadcasts.values(),
                                            key=lambda b: b["at_ms"])}
        if res == "kv" and not rest:
            self.need(method, "GET")
            visible = self.kv.visible()
            digest = digest_of(visible)
            if self.defect == "lying-digest":
                # seeded defect: the digest served is cached for a while, stale meanwhile
                now = time.monotonic()
                if self.served_digest is None or now - self.served_at > LYING_DIGEST_S:
                    self.served_digest, self.served_at = digest, now
                digest = self.served_digest
            return 200, {"digest": digest,
                         "entries": {k: {"values": [v]} for k, v in visible.items()}}
        if res == "kv" and len(rest) == 1 and rest[0]:
            return self.api_key(method, rest[0], data)
        if res == "crdt" and len(rest) == 1 and rest[0]:
            return self.api_crdt(method, rest[0], data)
        if res in ("events", "metrics", "keyring") and not rest:
            raise HttpError(501, "not_implemented",
                            f"{res} is an optional extension this node does not offer")
        raise HttpError(404, "not_found", f"no such path {path}")

    @staticmethod
    def need(method: str, *allowed: str) -> None:
        if method not in allowed:
            raise HttpError(405, "method_not_allowed", f"{method} not allowed here")

    @staticmethod
    def parse_body(body: bytes) -> dict[str, Any]:
        if not body.strip():
            return {}
        try:
            data = json.loads(body)
        except ValueError:
            raise HttpError(400, "bad_request", "the body is not JSON") from None
        if not isinstance(data, dict):
            raise HttpError(400, "bad_request", "the body must be a JSON object")
        return data

    def members_view(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        self.check_stall(now)
        rows = [{"id": m.id, "address": m.address, "status": self.view_status(m, now),
                 "incarnation": m.gen} for m in sorted(self.members.values(), key=lambda m: m.id)]
        if self.defect == "dark-after-suspicion":
            # Seeded defect: once any peer has looked anything but alive, the member list
            # can no longer be served (a serialiser that chokes on a suspicion record).
            self.dark = self.dark or any(r["status"] != ALIVE for r in rows if r["id"] != self.id)
            if self.dark:
                raise HttpError(500, "internal", "seeded defect: members cannot be listed")
        return rows

    async def api_join(self, data: Any) -> tuple[int, Any]:
        seeds = data.get("seeds")
        if (not isinstance(seeds, list) or not seeds
                or not all(isinstance(s, str) and ":" in s for s in seeds)):
            raise HttpError(400, "bad_request", "seeds must be a non-empty list of host:port")
        self.welcomed.clear()
        for _ in range(3):
            self.send_join(seeds)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.welcomed.wait(), 0.5)
                break
        if not self.welcomed.is_set():
            raise HttpError(503, "join_failed", "no seed answered")
        self.ready = True
        return 200, {}

    def api_leave(self) -> tuple[int, Any]:
        if self.left:
            return 202, {}
        self.left = True
        self.me.status = LEFT
        log("leaving")
        if self.defect != "silent-leave":
            asyncio.get_running_loop().create_task(self.announce_leave())
        return 202, {}

    async def announce_leave(self) -> None:
        """Tell every member we know directly, a few times (datagrams get lost)."""
        for _ in range(LEAVE_REPEATS):
            for m in self.peers(ALIVE, DEAD):
                self.send(self.dial(m), {"t": "hb", "from": self.id, "m": [self.me.wire()],
                                      "d": ""})
            await asyncio.sleep(self.gossip_s)

    def api_broadcast(self, data: Any) -> tuple[int, Any]:
        bid = data.get("id")
        if not isinstance(bid, str) or not bid or "payload" not in data:
            raise HttpError(400, "bad_request", "a broadcast needs a string id and a payload")
        if bid not in self.broadcasts:
            item = ["bc", bid, self.id, data["payload"]]
            self.apply_item(item)
            if self.defect == "one-hop-broadcast":
                live = self.peers(ALIVE)
                for m in self.rng.sample(live, min(self.fanout, len(live))):
                    self.send(self.dial(m), {"t": "upd", "from": self.id, "u": [item]})
            else:
                self.spread([item])
        return 202, {}

    def api_key(self, method: str, key: str, data: Any) -> tuple[int, Any]:
        if method == "GET":
            entry = self.kv.get(key)
            if entry is None:
                raise HttpError(404, "not_found", f"no key {key!r}")
            return 200, {"key": key, "values": [entry.value], "context": {}}
        if method == "PUT":
            if "value" not in data:
                raise HttpError(400, "bad_request", "a put needs a value")
            self.puts += 1
            if self.defect == "writes-fail":
                raise HttpError(500, "internal", "seeded defect: every put fails")
            if self.defect == "drops-writes" and self.puts % 2 == 0:
                return 200, {"context": {}}  # seeded defect: acknowledged, never stored
            self.write(key, Entry(self.stamp(), data["value"]))
            return 200, {"context": {}}
        if method == "DELETE":
            if self.defect == "no-tombstones":
                self.kv.forget(key)  # seeded defect: no death certificate
                self._digest = None
                return 200, {}
            self.write(key, Entry(self.stamp(), None, deleted=True))
            return 200, {}
        raise HttpError(405, "method_not_allowed", f"{method} not allowed on a key")

    def write(self, key: str, entry: Entry) -> None:
        self.kv.merge(key, entry)
        self._digest = None
        self.spread([["kv", key, entry.wire()]])

    def api_crdt(self, method: str, name: str, data: Any) -> tuple[int, Any]:
        if method == "GET":
            found = self.crdts.get(name)
            if found is None:
                raise HttpError(404, "not_found", f"no CRDT {name!r}")
            return 200, {"type": found[0], "value": crdt_value(*found)}
        self.need(method, "POST")
        kind, op = data.get("type"), data.get("op")
        if kind not in CRDT_TYPES:
            raise HttpError(400, "bad_request", f"unknown CRDT type {kind!r}")
        if op not in CRDT_OPS[kind]:
            raise HttpError(400, "bad_request", f"{kind} has no operation {op!r}")
        if kind == "lww-register" and "value" not in data:
            raise HttpError(400, "bad_request", "set needs a value")
        found = self.crdts.get(name)
        if found is not None and found[0] != kind:
            raise HttpError(409, "type_conflict", f"{name!r} is a {found[0]}")
        self.op_seq += 1
        state = found[1] if found is not None else crdt_new(kind)
        try:
            state = crdt_apply(kind, state, op, data.get("value"), self.replica,
                               f"{self.replica}#{self.op_seq}", self.stamp(),
                               removes=self.defect != "g-set",
                               remove_wins=self.defect == "remove-wins")
        except CrdtError as exc:
            raise HttpError(400, "bad_request", str(exc)) from None
        self.crdts[name] = (kind, state)
        self._digest = None
        self.spread([["crdt", name, kind, state]])
        return 200, {}

    async def serve_http(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line.strip():
                    break
                method, target, version = line.decode("latin-1").split()
                headers: dict[str, str] = {}
                while True:
                    raw = await reader.readline()
                    if raw in (b"\r\n", b"\n", b""):
                        break
                    name, _, value = raw.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length") or 0)
                body = await reader.readexactly(length) if length else b""
                try:
                    status, payload = await self.route(method, target, body)
                except HttpError as exc:
                    status, payload = exc.status, {"error": exc.code, "message": exc.message}
                except Exception as exc:
                    log(f"control API error: {exc!r}")
                    status, payload = 500, {"error": "internal", "message": repr(exc)}
                out = json.dumps(payload).encode()
                writer.write(f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}\r\n"
                             f"Content-Type: application/json\r\n"
                             f"Content-Length: {len(out)}\r\n\r\n".encode() + out)
                await writer.drain()
                if headers.get("connection", "").lower() == "close" or version == "HTTP/1.0":
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()

    # ------------------------------------------------------------------ main

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        ghost, gport = split_addr(self.gossip_addr)
        transport, _ = await loop.create_datagram_endpoint(
            lambda: Gossip(self), local_addr=(ghost, gport))
        self.transport = transport
        if self.routes:  # the link proxies relay TCP: their upstream is our gossip address
            await asyncio.start_server(self.serve_gossip, ghost, gport, limit=STREAM_LIMIT)
        chost, cport = split_addr(self.control_addr)
        server = await asyncio.start_server(self.serve_http, chost, cport)
        log(f"{self.id} up: gossip {self.gossip_addr}, control {self.control_addr}, "
            f"gen {self.boot_gen}, {len(self.routes)} routes"
            + (f", DEFECT {self.defect}" if self.defect else ""))
        tasks = [loop.create_task(c) for c in (self.heartbeat_loop(), self.gossip_loop(),
                                               self.anti_entropy_loop())]
        if self.seeds:
            tasks.append(loop.create_task(self.join_loop()))
        async with server:
            await server.serve_forever()


def spin() -> None:
    """The spins-slow-fd defect's busy loop: a whole core, for as long as the node runs.
    Hashing a large block releases the GIL, so the node itself stays responsive."""
    block = bytes(1 << 20)
    while True:
        hashlib.sha256(block).digest()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="gossip node with heartbeat failure detection")
    p.add_argument("--id", required=True)
    p.add_argument("--gossip", required=True, help="host:port of the UDP gossip socket")
    p.add_argument("--control", required=True, help="host:port of the control API")
    p.add_argument("--seed", action="append", default=[], help="a seed's gossip host:port")
    p.add_argument("--route", action="append", default=[], type=parse_route,
                   metavar="PEER=HOST:PORT",
                   help="send everything meant for PEER to HOST:PORT, over TCP (a dial map)")
    p.add_argument("--probe-interval-ms", type=float, default=200,
                   help="heartbeat interval: the own counter goes up and peers are checked")
    p.add_argument("--probe-timeout-ms", type=float, default=1500,
                   help="a member whose heartbeat has not gone up for this long is suspect")
    p.add_argument("--suspicion-mult", type=float, default=5)
    p.add_argument("--suspicion-max-timeout-mult", type=float, default=1)
    p.add_argument("--gossip-interval-ms", type=float, default=200)
    p.add_argument("--fanout", type=lambda s: int(float(s)), default=3)
    p.add_argument("--retransmit-mult", type=float, default=2)
    p.add_argument("--push-pull-interval-ms", type=float, default=1000)
    p.add_argument("--defect", choices=DEFECTS, default=None,
                   help="run with one seeded bug (for the harness's own tests)")
    p.add_argument("--without-leave", action="store_true",
                   help="offer no graceful leave: POST /v1/leave answers 501 and the node "
                        "does not list the capability")
    args = p.parse_args(argv)
    if args.defect == "spins-slow-fd":
        threading.Thread(target=spin, name="spin", daemon=True).start()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(Node(args).run())


if __name__ == "__main__":
    main()
