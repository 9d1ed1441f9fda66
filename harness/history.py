"""The history of a run: every operation, response, fault and node-side event, timestamped.

A history is the only input of the checkers, so everything a verdict needs is in it.
It is a list of :class:`Entry`, stored as JSON lines (``history.jsonl``) in the run dir.

Entry types
-----------
``meta``    first entry, ``op="run"``; ``args``: ``implementation`` (name), ``seed``,
            ``nodes`` (list of ids), ``timing`` (the manifest's timing parameters, see
            :mod:`harness.manifest`), ``conflict_policy`` (``lww``/``mv``),
            ``capabilities`` (list of str).
``invoke``  the harness calls a node; ``call`` pairs it with its completion.
``ok``      the call succeeded; ``result`` holds the response body.
``fail``    the call certainly did not take effect (e.g. 4xx, connection refused).
``info``    outcome unknown (timeout): checkers treat it as maybe-happened.
``fault``   a fault applied by the harness (``op``: see Faults below).
``event``   something a node observed, read from ``GET /v1/events``; ``node`` is the
            observer, ``time_ms`` is the node's own ``at_ms``, ``op`` is the event kind
            (``member``/``broadcast``) and ``args`` the whole event object plus
            ``polled_ms``, when the harness read it (the event cannot be later).
``step``    an operation of the sequence the run executed (:mod:`harness.workloads.operations`),
            written as it begins: ``op`` is its kind, ``args`` its JSON form. The calls,
            faults and phases it causes follow it; checkers judge those, and a replay
            takes the steps.
``phase``   a window of the workload: ``op`` names it, ``args.edge`` is ``start``/``end``.
            ``host-lag`` phases are not workload: each is a stall of the harness's own
            host beyond the probe timeout (``args.lag_ms``), which makes the run's timing
            failures inconclusive (:mod:`harness.drivers.hostlag`).

Operations (``invoke``/``ok``/``fail``/``info``), with ``node`` the node called
-----------------------------------------------------------------------------
``start``      node process started and ready; ``ok`` when ``GET /v1/node`` says ready.
``broadcast``  ``args``: ``{id, payload}``.
``put``        ``args``: ``{key, value}``; ``result``: ``{context, timestamp?}``
               (``timestamp`` = ``[wall_ms, logical]`` when the IUT reports it).
``members``    a read of ``GET /v1/members``; ``args.round`` groups reads taken together;
               ``result``: ``{members: [...]}``.
``kv``         a read of ``GET /v1/kv``; ``args.round``; ``result``: ``{digest, entries}``.
``broadcasts`` a read of ``GET /v1/broadcasts``; ``result``: ``{received: [...]}``.
``join``       ``args``: ``{seeds}`` (after a restart: the live peers' dial addresses).
``leave``      ``POST /v1/leave``.
``get``        ``GET /v1/kv/{key}``; ``args``: ``{key}``; ``result``: ``{key, values,
               context}``. Under ``mv`` the context names what the client saw: a later
               ``put``/``delete`` carrying it supersedes exactly these values.
``delete``     ``args``: ``{key, context?}``; ``result``: ``{timestamp?}``.
``crdt``       ``POST /v1/crdt/{name}``; ``args``: ``{name, type, op, value}`` (``type``
               g-counter / pn-counter / or-set / lww-register; ``op`` increment /
               decrement / add / remove / set); ``result``: ``{timestamp?}``.
``crdt_read``  ``GET /v1/crdt/{name}``; ``args``: ``{name, round?}``; ``result``:
               ``{type, value}``.
``metrics``    ``GET /v1/metrics``; ``args.round`` groups reads taken together; ``result``:
               the counters (``messages_sent``, ...). Rounds at both ends of a quiet phase
               give the background rate; rounds right before and after the workload give
               messages per operation.
``traffic``    what the fault planes counted each live member sending (not the node's own
               word): no ``node``, one reading covers the cluster; ``args.round``;
               ``result``: ``{plane, unit, nodes: {id: {messages, bytes, scope}}, links?}``.
               ``plane: "link"`` (unit ``chunks``: reads from the sender's socket by the
               proxies of its links, ``scope: "link"``; ``links``: ``{"a->b":
               {connections, up_chunks, up_bytes, down_chunks, down_bytes}}``) or
               ``"packet"`` (unit ``packets``: iptables counters, UDP datagrams and TCP
               segments with PSH; ``scope: "netns"``, all the node's namespace sends but
               its control API's answers; ``"cgroup"``, all its processes send but to
               127.0.0.1; or ``"gossip-port"``, only packets from its gossip address
               and port, which misses TCP connections it opens). Counters
               only grow while a node lives; readings at both ends of a quiet phase give
               each node's real send rate. Absent when no plane can count (a real
               Toxiproxy, no iptables). A reading taken by a watch loop (at most once a
               second, for the report's message-flow figure) has ``args.periodic: true``
               and no ``round``; checkers that difference readings use the rounds only.

``put`` may also carry ``args.context`` (the context a ``get`` returned; ``mv``), and
``start`` may carry ``args.key: "wrong"`` for a node launched with a wrong gossip key
(it must be kept out: ``SEC-WRONG-KEY``). Such a node is not a member: its id is not in
the meta's ``nodes``, its ``start`` is ``ok`` once ``GET /v1/node`` answers (it cannot
report ready through a join), and the ``put``/``broadcast`` calls made on it are attempts
to inject state that no member may receive. A ``stop`` fault ends it.

Faults
------
Each is recorded once the fault is confirmed in effect (toxics read back, iptables chain
listed, ``/proc`` state), at the time it took effect. ``plane`` is ``link`` (Toxiproxy
API) or ``packet`` (iptables); ``links`` are directed ``[src, dst]`` pairs.

``kill``       ``node`` killed with SIGKILL; ``args``: ``{signal: "KILL"}``.
``partition``  ``args``: ``{groups: [[ids], ...], links, plane, shape?}``; every link
               between groups is cut in both directions, and no other (a ``bridge``
               node is in no group: it keeps both sides).
``cut``        ``args``: ``{links, plane, shape?}``: exactly these directed links drop
               everything (one-way cuts, a majorities ring); a pair is separated while
               either of its directions is cut.
``loss``       ``args``: ``{links, probability, plane, protocols?}``: each packet on these
               links dropped with that probability. ``plane: "packet"``: TCP segments
               and UDP datagrams alike; ``plane: "link"`` (a node that routes its
               datagrams through the link plane) with ``protocols: ["udp"]``: each
               link's UDP proxy drops datagrams, its TCP stream passes whole.
``latency``    ``args``: ``{links, latency_ms, jitter_ms, plane: "link"}``.
``heal``       every cut, loss and latency restored, on both planes; after link-plane
               loss, ``args.datagrams_lost``: ``{plane: "link", links, datagrams,
               dropped}``, what the lossy links' UDP proxies received and dropped
               while the loss held.
``pause``      ``node`` frozen with SIGSTOP (``args.signal: "STOP"``); it answers nothing
               until ``resume``.
``resume``     ``node`` continued (``args.signal: "CONT"``).
``restart``    ``node`` started again with the same identity, argv and data dir;
               ``args``: ``{was_running, signal}`` (``KILL`` when it was running: the
               restart ends that life). The new life is the ``start`` operation that
               follows; a ``join`` through the live peers comes after it.
``stop``       a wrong-key node (``start`` with ``args.key: "wrong"``) killed with
               SIGKILL; ``args``: ``{signal: "KILL", key: "wrong"}``. Not a ``kill``: it
               was never a member, so no member has anything to detect.
``leave``      ``node`` asked to leave gracefully (the ``leave`` operation precedes it);
               ``args.confirmed``: the node then reported itself ``left``.

Phases
------
``quiet``      no fault and no workload: no live member may be suspected.
``writes``     the key/value workload; at its end writes stop.
``partition``  from the partition (or cut) fault to the heal; ``args``: ``shape``,
               ``links``, ``groups`` (when groups describe the cut).
``latency``    a latency storm; ``args``: ``links``, ``latency_ms``, ``jitter_ms``.
``lossy``      packet loss; ``args``: ``links``, ``probability``.
``paused``     optional, around a ``pause``/``resume``; ``args``: ``node``. Without it the
               checkers take the window from the faults themselves.
``wrong-key``  a wrong-key node's life, from its start to its ``stop``; ``args``: ``node``
               (and ``seed``, the member whose address it was given, at the start).

``time_ms`` is wall-clock milliseconds since the epoch (same host clock as the nodes'
``at_ms``, so node-side and harness-side times compare directly).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ENTRY_TYPES = frozenset({"meta", "invoke", "ok", "fail", "info", "fault", "event", "phase",
                         "step"})


@dataclass(frozen=True)
class Entry:
    """One line of a history."""

    index: int
    time_ms: float
    type: str
    op: str
    node: str | None = None
    call: int | None = None
    args: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Entry:
        return cls(
            index=int(data["index"]),
            time_ms=float(data["time_ms"]),
            type=str(data["type"]),
            op=str(data["op"]),
            node=data.get("node"),
            call=data.get("call"),
            args=dict(data.get("args") or {}),
            result=data.get("result"),
        )


def now_ms() -> float:
    return time.time() * 1000.0


class History:
    """An append-only, thread-safe history, optionally mirrored to a JSON-lines file."""

    def __init__(self, path: Path | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        # ``clock`` stamps entries given no time: the wall clock, or a simulator's virtual
        # one, so everything a simulated run records shares its time line.
        self.clock: Callable[[], float] = clock or now_ms
        self._entries: list[Entry] = []
        self._lock = threading.Lock()
        self._next_call = 0
        self._file = path.open("w", encoding="utf-8") if path is not None else None

    def append(
        self,
        type: str,
        op: str,
        *,
        node: str | None = None,
        call: int | None = None,
        args: dict[str, Any] | None = None,
        result: dict[str, Any] | None = None,
        time_ms: float | None = None,
    ) -> Entry:
        if type not in ENTRY_TYPES:
            raise ValueError(f"unknown history entry type {type!r}")
        with self._lock:
            entry = Entry(
                index=len(self._entries),
                time_ms=self.clock() if time_ms is None else time_ms,
                type=type,
                op=op,
                node=node,
                call=call,
                args=dict(args or {}),
                result=result,
            )
            self._entries.append(entry)
            if self._file is not None:
                self._file.write(entry.to_json() + "\n")
                self._file.flush()
            return entry

    def new_call(self) -> int:
        with self._lock:
            self._next_call += 1
            return self._next_call

    def entries(self) -> list[Entry]:
        with self._lock:
            return list(self._entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries())

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def load_history(path: Path) -> list[Entry]:
    with path.open(encoding="utf-8") as f:
        return [Entry.from_dict(json.loads(line)) for line in f if line.strip()]


def build(entries: Iterable[dict[str, Any]]) -> list[Entry]:
    """Build a history from plain dicts (index filled in): handy for synthetic histories."""
    out: list[Entry] = []
    for i, raw in enumerate(entries):
        data = {"index": i, **raw}
        out.append(Entry.from_dict(data))
    return out
