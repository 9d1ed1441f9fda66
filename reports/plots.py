"""Figures of a run as inline SVG text: no plotting library, nothing fetched, so the HTML
report opens offline and renders the same everywhere.

Every figure is a function from the history's index (the one the checkers judged, so the
figures show exactly what was judged) to an SVG string, or ``None`` when the history has
nothing to draw.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from html import escape

from gossipcert.harness.judging.bounds import derived_parameters
from gossipcert.harness.judging.index import HistoryIndex
from gossipcert.harness.workloads.broadcast import broadcast_latencies
from gossipcert.reports.axes import fault_windows, nice_range, svg_document, tick_label

__all__ = [
    "time_ticks",
    "broadcast_spread_svg",
    "fault_timeline_svg",
    "latency_histogram_svg",
    "member_views_svg",
    "serf_model_fraction",
]

WIDTH, HEIGHT = 720, 260
MARGIN = {"left": 60, "right": 20, "top": 28, "bottom": 40}
COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]
STATUS_COLOURS = {
    "alive": "#2ca02c",
    "suspect": "#ffbf00",
    "dead": "#d62728",
    "left": "#7f7f7f",
    "absent": "#bbbbbb",
}
FAULT_COLOURS = {
    "partition": "#9467bd",
    "kill": "#d62728",
    "restart": "#ff7f0e",
    "pause": "#8c564b",
    "loss": "#17becf",
    "latency": "#e377c2",
}


def serf_model_fraction(rounds: float, n: int, fanout: float, loss: float = 0.0) -> float:
    """Serf's convergence model (docs/protocol-notes.md): ``I(r)/n = 1 / (1 + (n+1) e^(-b n r))``
    with ``b = (f/n)(1 - loss)/2``."""
    b = (fanout / max(n, 1)) * (1.0 - loss) / 2.0
    return 1.0 / (1.0 + (n + 1) * math.exp(-b * n * rounds))


class _Frame:
    """Axes mapping data to pixels inside the standard margins; both ranges are widened to
    whole 1/2/5 steps so every tick is a round number (``integer_y``: a count axis, whose
    ticks are whole numbers)."""

    def __init__(
        self,
        x0: float,
        x1: float,
        y0: float,
        y1: float,
        height: int = HEIGHT,
        integer_y: bool = False,
        yticks: int = 4,
    ) -> None:
        self.x0, self.x1, self.xticks = nice_range(x0, x1, 5)
        self.y0, self.y1, self.yticks = nice_range(y0, y1, yticks, integer=integer_y)
        self.height = height
        self.w = WIDTH - MARGIN["left"] - MARGIN["right"]
        self.h = height - MARGIN["top"] - MARGIN["bottom"]

    def x(self, v: float) -> float:
        return MARGIN["left"] + (v - self.x0) / (self.x1 - self.x0) * self.w

    def y(self, v: float) -> float:
        return MARGIN["top"] + self.h - (v - self.y0) / (self.y1 - self.y0) * self.h

    def axes(self, title: str, xlabel: str, ylabel: str) -> list[str]:
        left, top, bottom = MARGIN["left"], MARGIN["top"], MARGIN["top"] + self.h
        out = [
            f'<text x="{WIDTH / 2:.0f}" y="16" text-anchor="middle" class="title">'
            f"{escape(title)}</text>",
            f'<line x1="{left}" y1="{bottom}" x2="{left + self.w}" y2="{bottom}" class="axis"/>',
            f'<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" class="axis"/>',
            f'<text x="{left + self.w / 2:.0f}" y="{self.height - 6}" text-anchor="middle">'
            f"{escape(xlabel)}</text>",
            f'<text x="14" y="{top + self.h / 2:.0f}" text-anchor="middle" '
            f'transform="rotate(-90 14 {top + self.h / 2:.0f})">{escape(ylabel)}</text>',
        ]
        xstep = _step(self.xticks)
        for v in self.xticks:
            out.append(
                f'<text x="{self.x(v):.1f}" y="{bottom + 14}" text-anchor="middle" '
                f'class="tick">{tick_label(v, xstep)}</text>'
            )
        ystep = _step(self.yticks)
        for v in self.yticks:
            out.append(
                f'<text x="{left - 6}" y="{self.y(v) + 4:.1f}" text-anchor="end" '
                f'class="tick">{tick_label(v, ystep)}</text>'
            )
        return out


def _step(ticks: Sequence[float]) -> float:
    return ticks[1] - ticks[0] if len(ticks) > 1 else 1.0


def time_ticks(t0: float, t1: float, x: Callable[[float], float], y: float) -> list[str]:
    """Round tick labels in seconds for an axis from ``t0`` to ``t1`` seconds."""
    _, _, ticks = nice_range(t0, t1, 6)
    step = _step(ticks)
    return [
        f'<text x="{x(v):.1f}" y="{y}" text-anchor="middle" class="tick">'
        f"{tick_label(v, step)}</text>"
        for v in ticks
        if t0 - 1e-9 <= v <= t1 + 1e-9
    ]


def _svg(body: Sequence[str], label: str, height: int = HEIGHT) -> str:
    return svg_document(body, label, WIDTH, height)


def _legend(
    items: Sequence[tuple[str, str]], x: float, y: float, across: bool = False
) -> list[str]:
    """Swatches stacked at ``(x, y)``, or in one row from there when ``across``."""
    out = []
    for i, (name, colour) in enumerate(items):
        yy = y if across else y + i * 14
        xx = x + i * 80 if across else x
        out.append(f'<rect x="{xx}" y="{yy - 9}" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text x="{xx + 14}" y="{yy}" class="tick">{escape(name)}</text>')
    return out


def broadcast_spread_svg(index: HistoryIndex) -> str | None:
    """Fraction of members holding each broadcast over time, against Serf's model."""
    samples = broadcast_latencies(index)
    if not samples:
        return None
    n = len(index.nodes)
    params = derived_parameters(index.timing, n)
    round_ms = params["gossip_interval_ms"]
    by_id: dict[str, list[float]] = {}
    for s in samples:
        by_id.setdefault(s["broadcast"], []).append(s["latency_ms"])
    horizon = max(max(v) for v in by_id.values()) * 1.2 + round_ms
    frame = _Frame(0, horizon, 0, 1)
    body = frame.axes(
        "Spread of each broadcast vs. Serf's convergence model",
        "ms since the broadcast call",
        "fraction of members",
    )
    legend: list[tuple[str, str]] = []
    for i, (bid, lats) in enumerate(sorted(by_id.items())[: len(COLOURS) - 1]):
        colour = COLOURS[i % len(COLOURS)]
        others = max(n - 1, 1)
        points = [(0.0, 1.0 / n)]
        for k, lat in enumerate(sorted(lats), start=1):
            points.append((lat, points[-1][1]))
            points.append((lat, (1 + k * (n - 1) / others) / n))
        points.append((horizon, points[-1][1]))
        path = " ".join(f"{frame.x(x):.1f},{frame.y(y):.1f}" for x, y in points)
        body.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        legend.append((f"broadcast {bid}", colour))
    model = [
        (t, serf_model_fraction(t / round_ms, n, params["fanout"]))
        for t in (horizon * i / 100 for i in range(101))
    ]
    path = " ".join(f"{frame.x(x):.1f},{frame.y(y):.1f}" for x, y in model)
    body.append(
        f'<polyline points="{path}" fill="none" stroke="#000" stroke-dasharray="5,4" '
        'stroke-width="1.5"/>'
    )
    legend.append((f"model, round {round_ms:.0f} ms, fanout {params['fanout']:.0f}", "#000"))
    body += _legend(legend, WIDTH - 250, MARGIN["top"] + 45)
    return _svg(body, "broadcast-spread")


def latency_histogram_svg(index: HistoryIndex, bins: int = 20) -> str | None:
    """Histogram of every (broadcast, member) latency, node-side receive times."""
    values = [s["latency_ms"] for s in broadcast_latencies(index)]
    if not values:
        return None
    _, top, _ = nice_range(0, max(values) or 1.0, 5)
    width = top / bins
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, int(v / width))] += 1
    frame = _Frame(0, top, 0, max(counts), integer_y=True)
    body = frame.axes("Broadcast latency histogram", "latency (ms)", "deliveries")
    for i, c in enumerate(counts):
        if c:
            x0, x1 = frame.x(i * width), frame.x((i + 1) * width)
            body.append(
                f'<rect x="{x0:.1f}" y="{frame.y(c):.1f}" width="{max(1.0, x1 - x0 - 1):.1f}" '
                f'height="{frame.y(0) - frame.y(c):.1f}" fill="{COLOURS[0]}"/>'
            )
    return _svg(body, "latency-histogram")


def member_views_svg(index: HistoryIndex) -> str | None:
    """Each member's view of each killed node over time, fault windows shaded."""
    if not index.kills:
        return None
    victim = str(index.kills[0].node)
    observers = [n for n in index.nodes if n != victim]
    lane = 22
    height = MARGIN["top"] + MARGIN["bottom"] + lane * len(observers) + 10
    t0 = max(index.begin_ms, index.kills[0].time_ms - 2000)
    frame = _Frame(0, index.end_ms - t0, 0, 1, height)
    frame.x0, frame.x1 = 0.0, max(1.0, index.end_ms - t0)
    kill_s = (index.kills[0].time_ms - index.begin_ms) / 1000
    body = [
        f'<text x="{WIDTH / 2:.0f}" y="16" text-anchor="middle" class="title">'
        f"Each member's view of {escape(victim)} (killed at {kill_s:.1f} s)</text>"
    ]
    for f in index.faults:
        if f.op in ("kill", "restart") and f.time_ms >= t0:
            x = frame.x(f.time_ms - t0)
            body.append(
                f'<line x1="{x:.1f}" y1="{MARGIN["top"]}" x2="{x:.1f}" '
                f'y2="{MARGIN["top"] + lane * len(observers)}" stroke="{FAULT_COLOURS[f.op]}" '
                'stroke-width="2"/>'
            )
    for row, observer in enumerate(observers):
        y = MARGIN["top"] + row * lane
        body.append(
            f'<text x="{MARGIN["left"] - 6}" y="{y + 15}" text-anchor="end">{observer}</text>'
        )
        line = index.timeline(observer, victim)
        points = list(zip(line.times, line.statuses, strict=True))
        for i, (t, status) in enumerate(points):
            end = points[i + 1][0] if i + 1 < len(points) else index.end_ms
            if end < t0:
                continue
            x0, x1 = frame.x(max(0.0, t - t0)), frame.x(end - t0)
            body.append(
                f'<rect x="{x0:.1f}" y="{y + 3}" width="{max(1.0, x1 - x0):.1f}" '
                f'height="{lane - 6}" fill="{STATUS_COLOURS.get(status, "#999")}">'
                f"<title>{status}</title></rect>"
            )
    for start, end, kind, _nodes in fault_windows(index):
        if end < t0:
            continue
        x0, x1 = frame.x(max(0.0, start - t0)), frame.x(end - t0)
        body.append(
            f'<rect x="{x0:.1f}" y="{MARGIN["top"]}" width="{max(1.0, x1 - x0):.1f}" '
            f'height="{lane * len(observers)}" fill="{FAULT_COLOURS.get(kind, "#999")}" '
            f'opacity="0.35"><title>{kind}</title></rect>'
        )
    bottom = MARGIN["top"] + lane * len(observers)
    offset = (t0 - index.begin_ms) / 1000
    body += time_ticks(
        offset,
        offset + frame.x1 / 1000,
        lambda v: frame.x((v - offset) * 1000),
        bottom + 14,
    )
    body.append(
        f'<text x="{WIDTH / 2:.0f}" y="{height - 6}" text-anchor="middle">'
        "seconds since the run's start</text>"
    )
    body += _legend(
        [(s, c) for s, c in STATUS_COLOURS.items()] + [("partition", FAULT_COLOURS["partition"])],
        MARGIN["left"],
        height + 8,
        across=True,
    )
    return _svg(body, "member-views", height + 16)


def fault_timeline_svg(
    index: HistoryIndex, phases: Mapping[str, Sequence[tuple[float, float]]] | None = None
) -> str | None:
    """The fault schedule and the workload phases as a timeline from the run's start."""
    rows: list[tuple[str, float, float, str]] = []
    for name, spans in sorted((phases or index.phases).items()):
        rows += [(f"phase {name}", s, e, "#1f77b4") for s, e in spans]
    for start, end, kind, _nodes in fault_windows(index):
        rows.append((kind, start, end, FAULT_COLOURS.get(kind, "#999")))
    for f in index.faults:
        if f.op not in ("partition", "heal", "pause", "resume", "loss", "latency"):
            label = f"{f.op} {f.node or ''}".strip()
            rows.append((label, f.time_ms, f.time_ms, FAULT_COLOURS.get(f.op, "#444")))
    if not rows:
        return None
    labels = sorted({r[0] for r in rows})
    lane = 20
    height = MARGIN["top"] + MARGIN["bottom"] + lane * len(labels)
    t0 = index.begin_ms
    frame = _Frame(0, index.end_ms - t0, 0, 1, height)
    frame.x0, frame.x1 = 0.0, max(1.0, index.end_ms - t0)
    body = [
        f'<text x="{WIDTH / 2:.0f}" y="16" text-anchor="middle" class="title">'
        "Fault schedule and workload phases</text>"
    ]
    for label, start, end, colour in rows:
        y = MARGIN["top"] + labels.index(label) * lane
        x0, x1 = frame.x(start - t0), frame.x(end - t0)
        body.append(
            f'<rect x="{x0:.1f}" y="{y + 3}" width="{max(3.0, x1 - x0):.1f}" height="{lane - 6}" '
            f'fill="{colour}"><title>{escape(label)}</title></rect>'
        )
    for i, label in enumerate(labels):
        y = MARGIN["top"] + i * lane + 14
        body.append(
            f'<text x="{MARGIN["left"] + 2}" y="{y}" class="tick" fill="#333" stroke="#fff" '
            f'stroke-width="3" style="paint-order:stroke">{escape(label)}</text>'
        )
    bottom = MARGIN["top"] + lane * len(labels)
    body += time_ticks(0, frame.x1 / 1000, lambda v: frame.x(v * 1000), bottom + 14)
    body.append(
        f'<text x="{WIDTH / 2:.0f}" y="{height - 4}" text-anchor="middle">'
        "seconds since the run's start</text>"
    )
    return _svg(body, "fault-timeline", height + 12)
