"""Pictures of what happened in a run, as inline SVG drawn from its history index: a
timeline per node (operations, faults, member-status views, and a failing requirement's
window and bound), a message-flow diagram from the fault planes' traffic readings, and
the latency of every operation over time.

Every time axis counts seconds from the run's start (``HistoryIndex.begin_ms``, its
first entry), the origin every report uses, so a time read on a figure matches the
fault table and the evidence text.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

from gossipcert.harness.judging.index import INF, HistoryIndex, PairedOp
from gossipcert.harness.judging.readable import quantity
from gossipcert.reports.axes import (
    fault_windows,
    log_ticks,
    nice_range,
    svg_document,
    tick_label,
)

__all__ = [
    "Focus",
    "failure_evidence_html",
    "focus_of",
    "message_flow_svg",
    "node_timeline_svg",
    "op_latency_svg",
    "overview_figures",
]

WIDTH = 1040
LEFT, RIGHT, TOP = 70, 24, 34
OUTCOME_COLOURS = {"ok": "#3a8f3a", "fail": "#d62728", "info": "#ff9900"}
STATUS_COLOURS = {
    "alive": "#a6dba0",
    "suspect": "#ffbf00",
    "dead": "#d62728",
    "left": "#7f7f7f",
    "absent": "#bbbbbb",
}
WINDOW_COLOURS = {
    "partition": "#9467bd",
    "cut": "#9467bd",
    "pause": "#8c564b",
    "loss": "#17becf",
    "latency": "#e377c2",
}
MARK_COLOURS = {"kill": "#d62728", "restart": "#ff7f0e", "stop": "#555", "leave": "#1f77b4"}
KIND_COLOURS = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#7f7f7f",
]
# Detail keys naming when a requirement's clock started (the kill, the heal, ...).
_FROM_KEYS = (
    "kill_ms",
    "heal_ms",
    "ready_ms",
    "sent_ms",
    "leave_ms",
    "writes_stopped_ms",
    "last_write_ms",
    "counted_from_ms",
)
# Detail keys naming when something was observed (a mark on the observer's lane).
_SEEN_KEYS = ("seen_ms", "at_ms", "dead_ms", "converged_ms", "received_ms")


@dataclass(frozen=True)
class Mark:
    """Something a failing requirement's evidence names on one node's lane."""

    node: str | None
    time_ms: float
    label: str


@dataclass(frozen=True)
class Focus:
    """The part of a run a failing (or erroring) requirement is about, in epoch ms: its
    window, the times its clock started (each with its bound after it), the subject
    whose view matters (a killed node, a member) and the observations the evidence names."""

    requirement: str
    status: str
    start_ms: float
    end_ms: float
    bound_ms: float | None = None
    origins: tuple[float, ...] = ()
    origin_names: tuple[str, ...] = ()
    subject: str | None = None
    marks: tuple[Mark, ...] = ()
    measured: str = ""

    @property
    def bound_lines(self) -> list[float]:
        if self.bound_ms is None:
            return []
        return sorted({t + self.bound_ms for t in self.origins})


@dataclass
class _Axis:
    """Seconds since the run's start -> pixels, over ``[t0, t1]`` epoch ms."""

    index: HistoryIndex
    t0: float
    t1: float
    ticks: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        begin = self.index.begin_ms
        lo, hi, self.ticks = nice_range((self.t0 - begin) / 1000, (self.t1 - begin) / 1000, 8)
        self.t0, self.t1 = begin + lo * 1000, begin + hi * 1000

    def x(self, t: float) -> float:
        t = min(max(t, self.t0), self.t1)
        return LEFT + (t - self.t0) / max(1.0, self.t1 - self.t0) * (WIDTH - LEFT - RIGHT)

    def rel(self, t: float) -> str:
        return f"{(t - self.index.begin_ms) / 1000:.1f} s"

    def draw(self, top: float, bottom: float) -> list[str]:
        step = self.ticks[1] - self.ticks[0] if len(self.ticks) > 1 else 1.0
        out = [f'<line x1="{LEFT}" y1="{bottom}" x2="{WIDTH - RIGHT}" y2="{bottom}" class="axis"/>']
        for v in self.ticks:
            x = self.x(self.index.begin_ms + v * 1000)
            out.append(
                f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}" stroke="#eee"/>'
                f'<text x="{x:.1f}" y="{bottom + 14}" text-anchor="middle" class="tick">'
                f"{tick_label(v, step)}</text>"
            )
        out.append(
            f'<text x="{(LEFT + WIDTH - RIGHT) / 2:.0f}" y="{bottom + 30}" '
            "text-anchor=\"middle\">seconds since the run's start</text>"
        )
        return out


def _svg(body: Sequence[str], label: str, height: float) -> str:
    return svg_document(body, label, WIDTH, height)


def _title(text: str) -> str:
    return (
        f'<text x="{WIDTH / 2:.0f}" y="18" text-anchor="middle" class="title">'
        f"{escape(text)}</text>"
    )


def _legend(items: Sequence[tuple[str, str, str]], y: float) -> tuple[list[str], float]:
    """Swatches (label, colour, shape) laid out in rows across the figure; returns the
    elements and the height used."""
    out: list[str] = []
    x, row = float(LEFT), 0
    for label, colour, shape in items:
        width = 24 + 6.2 * len(label)
        if x + width > WIDTH - RIGHT:
            x, row = float(LEFT), row + 1
        yy = y + row * 16
        if shape == "line":
            out.append(
                f'<line x1="{x}" y1="{yy - 4}" x2="{x + 14}" y2="{yy - 4}" stroke="{colour}" '
                'stroke-width="2" stroke-dasharray="5,3"/>'
            )
        elif shape == "mark":
            out.append(
                f'<line x1="{x + 6}" y1="{yy - 10}" x2="{x + 6}" y2="{yy + 2}" '
                f'stroke="{colour}" stroke-width="3"/>'
            )
        elif shape == "dot":
            out.append(f'<circle cx="{x + 6}" cy="{yy - 4}" r="4" fill="{colour}"/>')
        else:
            opacity = ' opacity="0.35"' if shape == "shade" else ""
            out.append(
                f'<rect x="{x}" y="{yy - 10}" width="12" height="10" fill="{colour}"{opacity}/>'
            )
        out.append(f'<text x="{x + 17}" y="{yy}" class="tick">{escape(label)}</text>')
        x += width
    return out, (row + 1) * 16


# --------------------------------------------------------------------------- windows




# --------------------------------------------------------------------------- focus


def _records(details: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The observation records of a verdict's details (its worst, late, never, false
    positives, ...): every dict at the top two levels."""
    out: list[Mapping[str, Any]] = []
    for value in details.values():
        if isinstance(value, Mapping):
            out.append(value)
        elif isinstance(value, list):
            out += [v for v in value if isinstance(v, Mapping)]
    return out


def _time(value: Any, index: HistoryIndex) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        t = float(value)
        if index.begin_ms - 1 <= t <= index.end_ms + 60_000:
            return t
    return None


def focus_of(requirement: Mapping[str, Any], index: HistoryIndex) -> Focus | None:
    """What to mark for a failing or erroring requirement: its ``details.window_ms``
    (or the span of the times its evidence names), the times its clock started with its
    bound after each (when the bound is a time), and each observation it names. None when
    the evidence names no time inside this run."""
    details = (requirement.get("evidence") or {}).get("details") or {}
    records = _records(details)
    origins: dict[float, str] = {}
    marks: list[Mark] = []
    subject: str | None = None
    for rec in records:
        node = rec.get("observer") or rec.get("member") or rec.get("node")
        node = str(node) if node is not None else None
        subject = subject or _str(rec.get("killed")) or (
            _str(rec.get("member")) if rec.get("observer") else None
        )
        start = None
        for key in _FROM_KEYS:
            t = _time(rec.get(key), index)
            if t is not None:
                origins[t] = key.removesuffix("_ms").replace("_", " ")
                start = t
                break
        about = _str(rec.get("killed")) or (
            _str(rec.get("member")) if rec.get("observer") else None
        )
        for key in _SEEN_KEYS:
            t = _time(rec.get(key), index)
            if t is not None:
                said = index.timeline(node, about).status_at(t) if node and about else None
                label = str(rec.get("status") or said or key.removesuffix("_ms"))
                if start is not None:
                    label += f" +{(t - start) / 1000:.1f} s"
                marks.append(Mark(node, t, label))
        least = rec.get("at_least_ms")
        if start is not None and isinstance(least, int | float) and node is not None:
            marks.append(Mark(node, start + float(least), f"not seen by +{least / 1000:.1f} s"))
    window = details.get("window_ms")
    times = sorted(set(origins) | {m.time_ms for m in marks})
    if isinstance(window, list) and len(window) == 2:
        w0, w1 = _time(window[0], index), _time(window[1], index)
        if w0 is not None and w1 is not None:
            times = sorted([*times, w0, w1])
    if not times:
        return None
    bound = requirement.get("bound")
    timed = requirement.get("unit") == "ms" and isinstance(bound, int | float)
    measured = requirement.get("measured")
    unit = str(requirement.get("unit") or "")
    text = ""
    if isinstance(measured, int | float):
        text = f"measured {quantity(float(measured), unit)}"
        if isinstance(bound, int | float):
            text += f", bound {quantity(float(bound), unit)}"
    seen: set[tuple[str | None, float]] = set()
    unique = []
    for m in sorted(marks, key=lambda m: m.time_ms):
        if (m.node, round(m.time_ms)) not in seen:
            seen.add((m.node, round(m.time_ms)))
            unique.append(m)
    return Focus(
        requirement=str(requirement.get("id")),
        status=str(requirement.get("status")),
        start_ms=times[0],
        end_ms=times[-1],
        bound_ms=float(bound) if timed and isinstance(bound, int | float) else None,
        origins=tuple(sorted(origins)),
        origin_names=tuple(origins[t] for t in sorted(origins)),
        subject=subject,
        marks=tuple(unique[:40]),
        measured=text,
    )


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


# --------------------------------------------------------------------------- timeline


def node_timeline_svg(index: HistoryIndex, focus: Focus | None = None) -> str | None:
    """One lane per node on a shared time axis: the harness's operations on it (invoke
    to completion, coloured by outcome), the faults that touched it (shaded windows;
    kills and restarts as marks), its view of every other member (a strip per member,
    coloured by the status it reported), and, with ``focus``, the failing requirement's
    window, the start of its clock, its bound and the observations its evidence names."""
    nodes = list(index.nodes)
    if not nodes or index.end_ms <= index.begin_ms:
        return None
    t0, t1 = index.begin_ms, index.end_ms
    if focus is not None:
        ends = [focus.end_ms, *focus.bound_lines]
        t0 = max(index.begin_ms, focus.start_ms - 2000)
        t1 = min(index.end_ms, max(ends) + 2000)
        if t1 <= t0:
            t0, t1 = index.begin_ms, index.end_ms
    axis = _Axis(index, t0, t1)
    subject = focus.subject if focus is not None else None
    lanes: dict[str, tuple[float, float]] = {}
    y = TOP + (16 if focus is not None else 0)
    body: list[str] = []
    title = "Timeline per node: operations, faults and each node's view of the others"
    if focus is not None:
        title = f"{focus.requirement} ({focus.status.upper()}): " + (
            f"each member's view of {focus.subject}" if focus.subject else "what happened"
        )
    body.append(_title(title))
    if focus is not None and focus.measured:
        body.append(
            f'<text x="{WIDTH / 2:.0f}" y="34" text-anchor="middle" class="tick">'
            f"{escape(focus.measured)}</text>"
        )
    layout: list[tuple[str, float, float, list[str]]] = []
    for node in nodes:
        others = [n for n in nodes if n != node]
        strips = sum(12 if o == subject else 4 for o in others)
        height = 6 + 12 + 4 + strips + 8
        layout.append((node, y, height, others))
        lanes[node] = (y, y + height)
        y += height
    bottom = y
    top = layout[0][1]
    # lane backgrounds: grey while the node lives
    for node, ly, lh, _ in layout:
        body.append(
            f'<rect x="{LEFT}" y="{ly + 1:.1f}" width="{WIDTH - LEFT - RIGHT}" '
            f'height="{lh - 2:.1f}" fill="#fafafa" stroke="#e4e4e4"/>'
        )
        for life in index.lives.get(node, []):
            a, b = life.ready, min(life.end, index.end_ms)
            if b < axis.t0 or a > axis.t1:
                continue
            body.append(
                f'<rect x="{axis.x(a):.1f}" y="{ly + 1:.1f}" '
                f'width="{max(1.0, axis.x(b) - axis.x(a)):.1f}" height="{lh - 2:.1f}" '
                'fill="#f0f0f0"><title>'
                f"{escape(node)} up {axis.rel(a)} to "
                f"{axis.rel(b) if life.end != INF else 'the end'}</title></rect>"
            )
        body.append(
            f'<text x="{LEFT - 8}" y="{ly + 15:.1f}" text-anchor="end" '
            f'style="font-weight:600">{escape(node)}</text>'
        )
    body += axis.draw(top, bottom)
    # fault windows
    for start, end, kind, touched in fault_windows(index):
        if end < axis.t0 or start > axis.t1:
            continue
        for node in touched:
            if node not in lanes:
                continue
            ly0, ly1 = lanes[node]
            body.append(
                f'<rect x="{axis.x(start):.1f}" y="{ly0 + 1:.1f}" '
                f'width="{max(2.0, axis.x(end) - axis.x(start)):.1f}" '
                f'height="{ly1 - ly0 - 2:.1f}" fill="{WINDOW_COLOURS.get(kind, "#999")}" '
                f'opacity="0.22"><title>{escape(kind)} {axis.rel(start)} to '
                f"{axis.rel(end)}</title></rect>"
            )
    # operations and views
    by_node: dict[str, list[PairedOp]] = {}
    for op_list in index.ops.values():
        for op in op_list:
            if op.node is not None:
                by_node.setdefault(str(op.node), []).append(op)
    mark_y = {node: ly + 11 for node, ly, _lh, _ in layout}  # the ops row, or the subject's
    for node, ly, _lh, others in layout:
        oy = ly + 6
        # Calls that succeeded, one path per lane (a run makes thousands of reads: one
        # element each would make the page heavy); failures and timeouts one by one,
        # each saying what it was.
        bars: list[str] = []
        for op in by_node.get(node, []):
            end = op.completed if op.completed != INF else index.end_ms
            if end < axis.t0 or op.invoked > axis.t1:
                continue
            x0 = axis.x(op.invoked)
            width = max(1.2, axis.x(end) - x0)
            if op.outcome == "ok":
                bars.append(f"M{x0:.1f} {oy:.1f}h{width:.1f}v10h{-width:.1f}z")
                continue
            body.append(
                f'<rect x="{x0:.1f}" y="{oy:.1f}" width="{width:.1f}" '
                f'height="10" fill="{OUTCOME_COLOURS.get(op.outcome, "#999")}" '
                f'opacity="0.8"><title>{escape(op.op)} {escape(op.outcome)} '
                f"{axis.rel(op.invoked)} +{(end - op.invoked):.0f} ms</title></rect>"
            )
        if bars:
            body.append(
                f'<path d="{"".join(bars)}" fill="{OUTCOME_COLOURS["ok"]}" opacity="0.8">'
                f"<title>{escape(node)}: calls answered ok</title></path>"
            )
        sy = oy + 16
        for other in others:
            h = 12 if other == subject else 4
            body += _view_strip(index, axis, node, other, sy, h, other == subject)
            if other == subject:
                mark_y[node] = sy + h / 2
            sy += h
    # kills, restarts, stops, leaves
    for f in index.faults:
        if f.op in MARK_COLOURS and f.node in lanes and axis.t0 <= f.time_ms <= axis.t1:
            ly0, ly1 = lanes[str(f.node)]
            x = axis.x(f.time_ms)
            body.append(
                f'<line x1="{x:.1f}" y1="{ly0:.1f}" x2="{x:.1f}" y2="{ly1:.1f}" '
                f'stroke="{MARK_COLOURS[f.op]}" stroke-width="3"><title>{escape(f.op)} '
                f"{escape(str(f.node))} at {axis.rel(f.time_ms)}</title></line>"
                f'<text x="{x + 4:.1f}" y="{ly1 - 4:.1f}" class="tick" '
                f'fill="{MARK_COLOURS[f.op]}">{escape(f.op)} {axis.rel(f.time_ms)}</text>'
            )
    if focus is not None:
        body += _focus_marks(focus, axis, lanes, mark_y, top, bottom)
    items: list[tuple[str, str, str]] = [
        ("operation ok", OUTCOME_COLOURS["ok"], "box"),
        ("fail", OUTCOME_COLOURS["fail"], "box"),
        ("timeout (info)", OUTCOME_COLOURS["info"], "box"),
    ]
    items += [(f"view: {s}", c, "box") for s, c in STATUS_COLOURS.items()]
    items += [(k, WINDOW_COLOURS[k], "shade") for k in ("partition", "pause", "loss", "latency")]
    items += [(k, MARK_COLOURS[k], "mark") for k in ("kill", "restart")]
    if focus is not None:
        items += [("window judged", "#d62728", "shade"), ("bound", "#d62728", "line"),
                  ("observation", "#000", "dot")]
    legend, used = _legend(items, bottom + 52)
    body += legend
    label = "node-timeline" if focus is None else f"failure-{focus.requirement}"
    return _svg(body, label, bottom + 52 + used)


def _view_strip(
    index: HistoryIndex, axis: _Axis, observer: str, subject: str, y: float, h: float,
    labelled: bool
) -> list[str]:
    line = index.timeline(observer, subject)
    out: list[str] = []
    labels: list[str] = []
    points = list(zip(line.times, line.statuses, strict=True))
    # Runs of one status as one rectangle: reads repeat a status many times over.
    runs: list[tuple[float, str]] = []
    for t, status in points:
        if not runs or runs[-1][1] != status:
            runs.append((t, status))
    points = runs
    previous: str | None = None
    for i, (t, status) in enumerate(points):
        end = points[i + 1][0] if i + 1 < len(points) else index.end_ms
        if end < axis.t0 or t > axis.t1:
            previous = status
            continue
        x0, x1 = axis.x(t), axis.x(end)
        out.append(
            f'<rect x="{x0:.1f}" y="{y:.1f}" width="{max(1.0, x1 - x0):.1f}" height="{h - 1}" '
            f'fill="{STATUS_COLOURS.get(status, "#999")}"><title>{escape(observer)} saw '
            f"{escape(subject)} {escape(status)} at {axis.rel(t)}</title></rect>"
        )
        if labelled and status != previous and axis.t0 <= t <= axis.t1:
            labels.append(
                f'<text x="{x0 + 7:.1f}" y="{y + h - 3:.1f}" class="small">'
                f"{escape(status)}</text>"
            )
        previous = status
    out += labels
    if labelled:
        out.append(
            f'<text x="{LEFT - 8}" y="{y + h - 2:.1f}" text-anchor="end" class="small">'
            f"view of {escape(subject)}</text>"
        )
    return out


def _focus_marks(
    focus: Focus, axis: _Axis, lanes: Mapping[str, tuple[float, float]],
    mark_y: Mapping[str, float], top: float, bottom: float
) -> list[str]:
    out: list[str] = []
    x0, x1 = axis.x(focus.start_ms), axis.x(focus.end_ms)
    out.append(
        f'<rect x="{x0:.1f}" y="{top - 14:.1f}" width="{max(2.0, x1 - x0):.1f}" '
        f'height="{bottom - top + 14:.1f}" fill="#d62728" opacity="0.06" stroke="#d62728" '
        f'stroke-opacity="0.5"><title>{escape(focus.requirement)} window '
        f"{axis.rel(focus.start_ms)} to {axis.rel(focus.end_ms)}</title></rect>"
    )
    for t, name in list(zip(focus.origins, focus.origin_names, strict=True))[:4]:
        x = axis.x(t)
        out.append(
            f'<line x1="{x:.1f}" y1="{top - 14:.1f}" x2="{x:.1f}" y2="{bottom:.1f}" '
            'stroke="#000" stroke-width="1"/>'
            f'<text x="{x - 3:.1f}" y="{top - 4:.1f}" text-anchor="end" class="tick">'
            f"{escape(name)} {axis.rel(t)}</text>"
        )
    for t in focus.bound_lines[:4]:
        x = axis.x(t)
        out.append(
            f'<line x1="{x:.1f}" y1="{top - 14:.1f}" x2="{x:.1f}" y2="{bottom:.1f}" '
            'stroke="#d62728" stroke-width="2" stroke-dasharray="6,4" class="bound"/>'
            f'<text x="{x + 3:.1f}" y="{top - 4:.1f}" class="tick" fill="#d62728">'
            f"bound {axis.rel(t)}</text>"
        )
    labelled_until: dict[str, float] = {}  # per lane: where the last label ends
    for mark in focus.marks:
        if mark.node not in lanes or not axis.t0 <= mark.time_ms <= axis.t1:
            continue
        x, yy = axis.x(mark.time_ms), mark_y[str(mark.node)]
        out.append(
            f'<path d="M{x:.1f},{yy - 6:.1f} L{x + 5:.1f},{yy:.1f} L{x:.1f},{yy + 6:.1f} '
            f'L{x - 5:.1f},{yy:.1f} Z" fill="#000" stroke="#fff" stroke-width="0.8">'
            f"<title>{escape(mark.label)} at {axis.rel(mark.time_ms)}</title></path>"
        )
        if abs(x - labelled_until.get(str(mark.node), -1e9)) < 12 + 6 * len(mark.label):
            continue  # a label is already there: the diamond's tooltip tells
        text_x = x - 8 if x - 8 - 6 * len(mark.label) > LEFT else x + 8
        anchor = "start" if text_x > x else "end"
        out.append(
            f'<text x="{text_x:.1f}" y="{yy + 4:.1f}" text-anchor="{anchor}" class="small" '
            f'style="font-weight:600;paint-order:stroke" stroke="#fff" stroke-width="3">'
            f"{escape(mark.label)}</text>"
        )
        labelled_until[str(mark.node)] = x
    return out


# --------------------------------------------------------------------------- flow


def _readings(index: HistoryIndex) -> list[PairedOp]:
    return [
        r
        for r in index.ops.get("traffic", [])
        if r.outcome == "ok" and isinstance(r.result, Mapping) and r.completed != INF
    ]


def _link_counts(result: Mapping[str, Any]) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for name, counters in (result.get("links") or {}).items():
        if "->" not in str(name) or not isinstance(counters, Mapping):
            continue
        a, b = str(name).split("->", 1)
        out[(a, b)] = float(counters.get("up_chunks") or 0) + float(
            counters.get("up_datagrams") or 0
        )
    return out


def _node_counts(result: Mapping[str, Any]) -> dict[str, float]:
    return {
        str(n): float(c.get("messages") or 0)
        for n, c in (result.get("nodes") or {}).items()
        if isinstance(c, Mapping)
    }


MAX_BANDS = 8


def _thin(readings: list[PairedOp], most: int) -> list[PairedOp]:
    """At most ``most`` readings, evenly spread, the first and last kept: counters only
    grow, so the difference of any two still says what passed between them."""
    if len(readings) <= most:
        return readings
    step = (len(readings) - 1) / (most - 1)
    return [readings[round(i * step)] for i in range(most)]


def message_flow_svg(
    index: HistoryIndex, window: tuple[float, float] | None = None
) -> tuple[str | None, str]:
    """Who sent how much to whom between consecutive traffic readings (Maelstrom's
    message diagram: nodes as columns, time downwards, an arrow per link whose width and
    label give what the planes counted in that interval). With ``window``, only the
    intervals overlapping it. Returns the figure (None when there is nothing to draw) and
    one line saying what it counts or why it is empty."""
    readings = _readings(index)
    if len(readings) < 2:
        return None, (
            "No message flow: no fault plane counted this run's traffic (fewer than two "
            "traffic readings)."
        )
    if window is not None:
        inside = [
            i for i, r in enumerate(readings)
            if r.completed >= window[0] and r.invoked <= window[1]
        ]
        if inside:  # the readings in the window and one either side of it
            readings = readings[max(0, inside[0] - 1) : inside[-1] + 2]
    readings = _thin(readings, MAX_BANDS + 1)
    intervals = []
    for before, after in zip(readings, readings[1:], strict=False):
        if not isinstance(before.result, Mapping) or not isinstance(after.result, Mapping):
            continue
        t0, t1 = before.completed, after.invoked
        if window is not None and (t1 < window[0] or t0 > window[1]):
            continue
        intervals.append((t0, t1, before.result, after.result))
    if not intervals:
        return None, (
            "No message flow for this window: no two traffic readings enclose it (the "
            "planes are read at the ends of quiet phases and around workloads)."
        )
    plane = str(intervals[0][3].get("plane") or "?")
    unit = str(intervals[0][3].get("unit") or "messages")
    nodes = list(index.nodes)
    col = (WIDTH - LEFT - RIGHT) / max(1, len(nodes))
    xs = {n: LEFT + col * (i + 0.5) for i, n in enumerate(nodes)}
    band = 170.0 if len(intervals) <= 3 else 120.0
    top = TOP + 28
    bottom = top + band * len(intervals)
    body = [_title("Message flow between traffic readings (time downwards)")]
    for n, x in xs.items():
        body.append(
            f'<text x="{x:.1f}" y="{top - 10}" text-anchor="middle" '
            f'style="font-weight:600">{escape(n)}</text>'
            f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}" stroke="#999"/>'
        )
    body.append(
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" markerUnits="userSpaceOnUse" orient="auto"><path '
        'd="M0,0 L10,5 L0,10 z" fill="#333"/></marker></defs>'
    )
    total = 0.0
    for i, (t0, t1, first, second) in enumerate(intervals):
        y0 = top + i * band
        y1 = y0 + band
        rel0 = (t0 - index.begin_ms) / 1000
        rel1 = (t1 - index.begin_ms) / 1000
        body.append(
            f'<line x1="{LEFT - 60}" y1="{y0:.1f}" x2="{WIDTH - RIGHT}" y2="{y0:.1f}" '
            'stroke="#ddd"/>'
            f'<text x="4" y="{y0 + 14:.1f}" class="tick">{rel0:.1f} s</text>'
            f'<text x="4" y="{y1 - 4:.1f}" class="tick">{rel1:.1f} s</text>'
        )
        for start, end, kind, _touched in fault_windows(index):
            if start < t1 and end > t0:
                body.append(
                    f'<text x="{WIDTH - RIGHT}" y="{y0 + 14:.1f}" text-anchor="end" '
                    f'class="tick" fill="{WINDOW_COLOURS.get(kind, "#999")}">{escape(kind)} '
                    f"{(start - index.begin_ms) / 1000:.1f}-{(end - index.begin_ms) / 1000:.1f} s"
                    "</text>"
                )
                break
        links_a, links_b = _link_counts(first), _link_counts(second)
        if links_b:
            deltas = {k: max(0.0, v - links_a.get(k, 0.0)) for k, v in links_b.items()}
            peak = max(deltas.values(), default=0.0) or 1.0
            pairs = sorted(k for k, v in deltas.items() if v > 0 and k[0] in xs and k[1] in xs)
            for j, (a, b) in enumerate(pairs):
                count = deltas[(a, b)]
                total += count
                cut = any(
                    c.start < t1 and c.end > t0 and c.separates(a, b, directed=True)
                    for c in index.cuts
                )
                frac = (j + 1) / (len(pairs) + 1)
                ya = y0 + 12 + frac * (band - 40)
                yb = ya + 22
                xa, xb = xs[a], xs[b]
                width = 0.7 + 2.3 * count / peak
                colour = "#d62728" if cut else "#1f77b4"
                body.append(
                    f'<line x1="{xa:.1f}" y1="{ya:.1f}" x2="{xb:.1f}" y2="{yb:.1f}" '
                    f'stroke="{colour}" stroke-width="{width:.1f}" opacity="0.75" '
                    f'marker-end="url(#arrow)" class="flow" data-link="{escape(a)}->{escape(b)}">'
                    f"<title>{escape(a)} -> {escape(b)}: {count:.0f} {escape(unit)}"
                    f"{' (link cut for part of it)' if cut else ''}</title></line>"
                    f'<text x="{(xa + xb) / 2:.1f}" y="{(ya + yb) / 2 - 3:.1f}" '
                    f'text-anchor="middle" class="small">{count:.0f}</text>'
                )
        else:
            sent_a, sent_b = _node_counts(first), _node_counts(second)
            for n, x in xs.items():
                if n in sent_b:
                    count = max(0.0, sent_b[n] - sent_a.get(n, 0.0))
                    total += count
                    body.append(
                        f'<rect x="{x - 30:.1f}" y="{y0 + band / 2 - 12:.1f}" width="60" '
                        'height="20" fill="#e8f1fa" stroke="#1f77b4"/>'
                        f'<text x="{x:.1f}" y="{y0 + band / 2 + 2:.1f}" text-anchor="middle" '
                        f'class="small">sent {count:.0f}</text>'
                    )
    if plane == "link":
        what = (
            "Counts: TCP chunks read and UDP datagrams relayed by the link plane's proxies "
            "on each directed link in the interval; red: a link cut for part of it."
        )
    elif plane == "packet":
        what = (
            f"Counts: iptables {unit} each node sent in the interval (the packet plane "
            "counts per node, not per link)."
        )
    else:
        what = f"Counts: {unit} the {plane} plane saw in the interval."
    body.append(f'<text x="{LEFT - 60}" y="{bottom + 18:.0f}" class="tick">{escape(what)}</text>')
    caption = (
        f"{len(intervals)} interval(s) between traffic readings, {total:.0f} {unit} in all "
        f"(what each arrow counts is said on the figure)."
    )
    return _svg(body, "message-flow", bottom + 30), caption


# --------------------------------------------------------------------------- latency


def op_latency_svg(index: HistoryIndex) -> str | None:
    """Each completed operation as a point: x its invoke time since the run's start, y
    its latency (log scale when the spread is wide), coloured by kind; a failure is a
    cross, a timeout a triangle on the top edge; fault windows shaded."""
    ops = [
        op
        for op_list in index.ops.values()
        for op in op_list
        if op.op not in ("start",) and op.invoked >= index.begin_ms
    ]
    if not ops:
        return None
    done = [op.completed - op.invoked for op in ops if op.completed != INF]
    positive = [v for v in done if v > 0] or [1.0]
    lo, hi = min(positive), max(positive)
    log = hi / max(lo, 1e-3) > 50
    if log:
        y0, y1, yt = log_ticks(max(lo, 0.1), hi)
    else:
        y0, y1, yt = nice_range(0, hi, 5)
    axis = _Axis(index, index.begin_ms, index.end_ms)
    top, height = TOP + 10, 230
    bottom = top + height

    def y(v: float) -> float:
        if log:
            v = max(v, y0)
            return bottom - (math.log10(v) - math.log10(y0)) / (
                math.log10(y1) - math.log10(y0)
            ) * height
        return bottom - (v - y0) / max(1e-9, y1 - y0) * height

    kinds = sorted({op.op for op in ops})
    colours = {k: KIND_COLOURS[i % len(KIND_COLOURS)] for i, k in enumerate(kinds)}
    body = [_title("Latency of every operation over time" + (" (log scale)" if log else ""))]
    for start, end, kind, _ in fault_windows(index):
        body.append(
            f'<rect x="{axis.x(start):.1f}" y="{top}" '
            f'width="{max(2.0, axis.x(end) - axis.x(start)):.1f}" '
            f'height="{height}" fill="{WINDOW_COLOURS.get(kind, "#999")}" opacity="0.15">'
            f"<title>{escape(kind)}</title></rect>"
        )
    for f in index.faults:
        if f.op in MARK_COLOURS:
            x = axis.x(f.time_ms)
            body.append(
                f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}" '
                f'stroke="{MARK_COLOURS[f.op]}" stroke-width="1.5"><title>{escape(f.op)} '
                f"{escape(str(f.node or ''))}</title></line>"
            )
    body += axis.draw(top, bottom)
    body.append(f'<line x1="{LEFT}" y1="{top}" x2="{LEFT}" y2="{bottom}" class="axis"/>')
    ystep = yt[1] - yt[0] if len(yt) > 1 else 1.0
    for v in yt:
        label = f"{v:g}" if log else tick_label(v, ystep)
        body.append(
            f'<text x="{LEFT - 6}" y="{y(v) + 4:.1f}" text-anchor="end" class="tick">'
            f"{label}</text>"
        )
    body.append(
        f'<text x="14" y="{top + height / 2:.0f}" text-anchor="middle" '
        f'transform="rotate(-90 14 {top + height / 2:.0f})">latency (ms)</text>'
    )
    for op in ops:
        x = axis.x(op.invoked)
        c = colours[op.op]
        if op.completed == INF or op.outcome == "info":
            yy = top + 4 if op.completed == INF else y(op.completed - op.invoked)
            body.append(
                f'<path d="M{x - 4:.1f},{yy + 3:.1f} L{x + 4:.1f},{yy + 3:.1f} '
                f'L{x:.1f},{yy - 4:.1f} Z" fill="{c}" stroke="#000" stroke-width="0.5">'
                f"<title>{escape(op.op)} timeout</title></path>"
            )
            continue
        yy = y(op.completed - op.invoked)
        if op.outcome == "fail":
            body.append(
                f'<path d="M{x - 3:.1f},{yy - 3:.1f} L{x + 3:.1f},{yy + 3:.1f} '
                f'M{x - 3:.1f},{yy + 3:.1f} L{x + 3:.1f},{yy - 3:.1f}" stroke="{c}" '
                f'stroke-width="1.8"><title>{escape(op.op)} fail</title></path>'
            )
        else:
            body.append(f'<circle cx="{x:.1f}" cy="{yy:.1f}" r="2" fill="{c}" opacity="0.7"/>')
    items = [(k, colours[k], "dot") for k in kinds]
    items += [("x: fail", "#000", "box"), ("triangle: timeout", OUTCOME_COLOURS["info"], "box")]
    items += [(k, WINDOW_COLOURS[k], "shade") for k in ("partition", "pause", "loss", "latency")]
    legend, used = _legend(items, bottom + 52)
    return _svg(body + legend, "op-latency", bottom + 56 + used)


# --------------------------------------------------------------------------- html


def _figure(svg: str | None, caption: str) -> str:
    if svg is None:
        return f'<p class="not-claimed">{escape(caption)}</p>'
    return f"<figure>{svg}<figcaption>{escape(caption)}</figcaption></figure>"


def failure_evidence_html(
    report: Mapping[str, Any],
    index: HistoryIndex,
    scenario_indexes: Mapping[str, HistoryIndex] | None = None,
) -> str:
    """The "Evidence of failures" section: per failing or erroring requirement, its
    evidence and its timeline (and message flow) drawn from the scenario run that judged
    it (``scenario_indexes``, a suite's), else from ``index``."""
    parts: list[str] = []
    for req in report.get("requirements") or []:
        if req.get("status") not in ("fail", "error"):
            continue
        scenario = str(req.get("scenario") or "")
        idx = (scenario_indexes or {}).get(scenario, index)
        focus = focus_of(req, idx)
        svg = node_timeline_svg(idx, focus)
        where = f" (scenario {scenario})" if scenario else ""
        parts.append(
            f'<h3 id="figure-{escape(str(req.get("id")))}">{escape(str(req.get("id")))} '
            f"{escape(str(req.get('status')).upper())}{escape(where)}</h3>"
            f"<p>{escape(str((req.get('evidence') or {}).get('summary') or ''))}</p>"
        )
        caption = (
            "Timeline of the failing window: the shaded red window is what the evidence is "
            "about, the black line where its clock starts (the kill, the heal, ...), the "
            "dashed red line its bound, diamonds the observations it names. Per node: its "
            "calls on the top row, below one strip per other member coloured by the status "
            "it reported (the thick one: the member the evidence is about)."
            if focus is not None
            else "The evidence names no time: the whole run's timeline."
        )
        parts.append(_figure(svg, caption))
        window = (focus.start_ms, max([focus.end_ms, *focus.bound_lines])) if focus else None
        flow, note = message_flow_svg(idx, window)
        parts.append(_figure(flow, note))
    if not parts:
        return ""
    return "<h2>Evidence of failures</h2>\n" + "\n".join(parts) + "\n"


def overview_figures(index: HistoryIndex) -> list[str]:
    """The run-wide figures this module adds to the report's Figures section."""
    flow, note = message_flow_svg(index)
    return [
        _figure(
            node_timeline_svg(index),
            "Per node: the top row holds the harness's calls to the node (invoke to "
            "completion, coloured by outcome); below it, one strip per other member, "
            "coloured by the status the node reported for it; grey background while the "
            "node is up; fault windows shaded, kills and restarts marked.",
        ),
        _figure(
            op_latency_svg(index),
            "Latency of every operation the harness made, by invoke time; fault windows "
            "shaded.",
        ),
        _figure(flow, note),
    ]

