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
``fault``   a fault applied by the harness (``op``: ``kill``, ``partition``, ``heal``).
``event``   something a node observed, read from ``GET /v1/events``; ``node`` is the
            observer, ``time_ms`` is the node's own ``at_ms``, ``op`` is the event kind
            (``member``/``broadcast``) and ``args`` the whole event object.
``phase``   a window of the workload: ``op`` names it, ``args.edge`` is ``start``/``end``.

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

Faults
------
``kill``       ``node`` killed with SIGKILL; ``args``: ``{signal: "KILL"}``.
``partition``  ``args``: ``{groups: [[ids], [ids]]}``; every link between groups is cut
               in both directions.
``heal``       every cut link restored.

Phases
------
``quiet``      no fault and no workload: no live member may be suspected.
``writes``     the key/value workload; at its end writes stop.
``partition``  from the partition fault to the heal.

``time_ms`` is wall-clock milliseconds since the epoch (same host clock as the nodes'
``at_ms``, so node-side and harness-side times compare directly).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ENTRY_TYPES = frozenset({"meta", "invoke", "ok", "fail", "info", "fault", "event", "phase"})


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

    def __init__(self, path: Path | None = None) -> None:
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
                time_ms=now_ms() if time_ms is None else time_ms,
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
