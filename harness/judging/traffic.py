"""TIMING-TRAFFIC: the traffic the fault planes relayed against the timing the manifest
declares.

Every time bound of the catalogue derives from the declared timing, so a node that runs
slower than it declares gets bounds looser than it earns. The planes count what each node
sends (``traffic`` readings, see :mod:`harness.history`), independently of the node's own
word; readings at both ends of a quiet phase give each node's real send rate.

The rule is a floor, not an estimate. A failure detector with protocol period
``probe_interval_ms`` sends at least one message each period (a SWIM probe, a heartbeat),
acks and gossip besides. Lifeguard's local health awareness stretches a node's own
period by up to ``AwarenessMaxMultiplier`` = 8 (memberlist; REFERENCE.md), so a correct
node sends at least once every ``8 * probe_interval_ms``, and any window of length ``T``
holds at least ``floor(T / (8 * probe_interval_ms))`` of its sends. ``T`` is the shortest
span the two readings can bound (from the end of the first to the start of the second),
so the floor never asks for more than the counts can hold. A node below it is flagged.

What counts as one message depends on the plane: a read of the sender's socket by a link
proxy (TCP has no message boundaries; sends further apart than the relay's latency are
separate reads, sends together may be one), or a UDP datagram or a TCP segment carrying
PSH in the packet plane. Each undercounts a send only by merging sends made together,
and the floor asks for one send per eight periods. Packet counts of scope
``gossip-port`` (a process-backend node, told apart by its gossip socket) miss the TCP
connections the node opens itself, so a node below the floor there is left undetermined,
never failed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from gossipcert.harness.history import Entry
from gossipcert.harness.judging.checker import JudgingContext, checker, make_verdict
from gossipcert.harness.judging.index import HistoryIndex, PairedOp
from gossipcert.harness.judging.verdict import Requirement, Verdict

__all__ = ["AWARENESS_MAX_MULTIPLIER", "check_timing_traffic", "traffic_windows"]

# memberlist's AwarenessMaxMultiplier: the most Lifeguard stretches a node's own probe
# period (REFERENCE.md). A correct failure detector sends at least once per this many
# declared periods.
AWARENESS_MAX_MULTIPLIER = 8
# Counts whose plane sees everything the node sends; others can only show a floor is met.
_COMPLETE_SCOPES = ("link", "netns")
_SHOWN_LIMIT = 50


def _readings(index: HistoryIndex) -> list[PairedOp]:
    return [
        op
        for op in index.ops.get("traffic", [])
        if op.outcome == "ok" and isinstance(op.result, Mapping)
        and isinstance(op.result.get("nodes"), Mapping) and op.completed < math.inf
    ]


def traffic_windows(index: HistoryIndex) -> tuple[list[tuple[PairedOp, PairedOp]], list[str]]:
    """Pairs of consecutive readings that lie inside one quiet phase with no fault between
    them, and why other pairs were left out."""
    readings = _readings(index)
    windows: list[tuple[PairedOp, PairedOp]] = []
    skipped: list[str] = []
    for start, end in index.phases.get("quiet", []):
        inside = [r for r in readings if r.invoked >= start and r.completed <= end]
        for first, second in zip(inside, inside[1:], strict=False):
            faults = [f.op for f in index.faults if first.invoked <= f.time_ms <= second.completed]
            if faults:
                skipped.append(f"a fault ({', '.join(sorted(set(faults)))}) fell between the "
                               f"readings at {first.invoked:.0f} and {second.invoked:.0f} ms")
                continue
            windows.append((first, second))
    return windows, skipped


def _count(reading: PairedOp, node: str) -> Mapping[str, Any] | None:
    assert reading.result is not None
    found = reading.result["nodes"].get(node)
    if not isinstance(found, Mapping):
        return None
    if not isinstance(found.get("messages"), int | float):
        return None
    return found


def declared_probe_ms(history: Sequence[Entry]) -> float | None:
    """The probe interval the manifest itself declared (the meta's ``timing_profile``),
    None when the history does not say. The meta's ``timing`` may hold the profile's
    ceiling instead: a node declaring a slower period than the profile is judged at the
    ceiling for bounds, but runs, and may only be held to, what it declared."""
    meta = next((e for e in history if e.type == "meta"), None)
    profile = meta.args.get("timing_profile") if meta is not None else None
    declared = profile.get("declared") if isinstance(profile, Mapping) else None
    value = declared.get("probe_interval_ms") if isinstance(declared, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return float(value)


@checker
def check_timing_traffic(
    judging: JudgingContext, requirement: Requirement, bound: float
) -> Verdict:
    """TIMING-TRAFFIC: members whose relayed send rate in a quiet phase is below one
    message per ``AWARENESS_MAX_MULTIPLIER`` declared probe periods."""
    index = judging.index
    declared_ms = declared_probe_ms(index.entries)
    if not _readings(index):
        why = ("no traffic reading in the history: no fault plane could count what the "
               "nodes sent (a real Toxiproxy has no counters; the packet plane needs root)")
        return make_verdict(requirement, "untested", None, bound, why)
    windows, skipped = traffic_windows(index)
    if not windows:
        why = "no two traffic readings inside one quiet phase without a fault between them"
        if skipped:
            why += f" ({skipped[0]})"
        return make_verdict(requirement, "untested", None, bound, why)
    # The declared period when the meta records it, else the timing the run is judged
    # at (the manifest's own, or the profile's value for one it left out).
    judged_ms = judging.params["probe_interval_ms"]
    probe_ms = declared_ms if declared_ms is not None else judged_ms
    period_ms = AWARENESS_MAX_MULTIPLIER * probe_ms
    members = [n for n in index.nodes if n not in index.intruders]
    rows: list[dict[str, Any]] = []
    flagged: dict[str, dict[str, Any]] = {}
    undetermined: list[str] = []
    judged = 0
    short: list[float] = []
    for first, second in windows:
        span_ms = second.invoked - first.completed  # the least the counts can cover
        widest_ms = second.completed - first.invoked
        live = [n for n in members if index.live_through(n, first.invoked, second.completed)]
        floor = math.floor(span_ms / period_ms) if span_ms > 0 else 0
        if floor < 1 or len(live) < 2:
            short.append(span_ms)
        result = first.result or {}
        plane, unit = str(result.get("plane", "?")), str(result.get("unit", "messages"))
        for node in live:
            a, b = _count(first, node), _count(second, node)
            if a is None or b is None:
                continue
            messages = float(b["messages"]) - float(a["messages"])
            nbytes = float(b.get("bytes", 0)) - float(a.get("bytes", 0))
            if messages < 0:  # the counters restarted (a new namespace): no window here
                continue
            seconds = (span_ms + widest_ms) / 2000.0
            scope = str(b.get("scope", "?"))
            row: dict[str, Any] = {
                "node": node,
                "plane": plane,
                "unit": unit,
                "scope": scope,
                "window_ms": [round(first.completed), round(second.invoked)],
                "seconds": round(seconds, 2),
                "messages": int(messages),
                "bytes": int(nbytes),
                "messages_per_s": round(messages / seconds, 2) if seconds > 0 else None,
                "bytes_per_s": round(nbytes / seconds, 1) if seconds > 0 else None,
                "implied_period_ms": round(widest_ms / messages, 1) if messages else None,
                "declared_probe_interval_ms": probe_ms,
                "floor_messages": floor,
            }
            if floor < 1 or len(live) < 2:
                row["status"] = "too short to judge"
            elif messages >= floor:
                row["status"] = "pass"
                judged += 1
            elif scope not in _COMPLETE_SCOPES:
                row["status"] = "undetermined (the plane misses part of what it sends)"
                undetermined.append(node)
            else:
                row["status"] = "fail"
                judged += 1
                flagged.setdefault(node, row)
            rows.append(row)
    details: dict[str, Any] = {
        "declared_probe_interval_ms": probe_ms,
        "probe_interval_source": "declared" if declared_ms is not None else "judged timing",
        "awareness_max_multiplier": AWARENESS_MAX_MULTIPLIER,
        "rates": rows[:_SHOWN_LIMIT],
    }
    if skipped:
        details["skipped"] = skipped[:_SHOWN_LIMIT]
    if undetermined:
        details["undetermined"] = sorted(set(undetermined))
    if flagged:
        worst = sorted(flagged.values(), key=lambda r: r["messages"])
        details["flagged"] = worst[:_SHOWN_LIMIT]
        shown = "; ".join(_describe(r) for r in worst[:3])
        text = (f"{len(flagged)} node(s) sent fewer than one message per "
                f"{AWARENESS_MAX_MULTIPLIER} x {probe_ms:.0f} ms declared probe interval "
                f"in a quiet phase: {shown}")
        return make_verdict(requirement, "fail", len(flagged), bound, text, details)
    if judged == 0:
        if undetermined:
            why = (f"{len(set(undetermined))} node(s) below the floor on partial counts "
                   "(scope gossip-port), none judged")
        else:
            longest = max(short, default=0.0)
            why = (f"the quiet window ({longest:.0f} ms between readings) is shorter than "
                   f"{AWARENESS_MAX_MULTIPLIER} declared probe periods ({period_ms:.0f} ms)"
                   ", or fewer than two members were live: no floor to judge")
        return make_verdict(requirement, "untested", None, bound, why, details)
    passing = [r for r in rows if r["status"] == "pass"]
    slowest = min(passing, key=lambda r: r["messages_per_s"] or 0.0)
    text = (f"every member sent at least one message per {AWARENESS_MAX_MULTIPLIER} declared "
            f"probe periods ({period_ms:.0f} ms) in {len(windows)} quiet window(s); slowest "
            f"{_describe(slowest)}")
    if undetermined:
        text += f"; {len(set(undetermined))} undetermined on partial counts"
    return make_verdict(requirement, "pass", 0, bound, text, details)


def _describe(row: Mapping[str, Any]) -> str:
    implied = row.get("implied_period_ms")
    period = "no message" if implied is None else f"one per {implied:.0f} ms"
    return (f"{row['node']} {row['messages']} {row['unit']} / {row['bytes']} bytes in "
            f"{row['seconds']:.1f} s ({period}, declared probe "
            f"{row['declared_probe_interval_ms']:.0f} ms, floor {row['floor_messages']})")
