"""What every figure shares: axis ticks a person reads at a glance (steps of 1, 2 or 5
times a power of ten, integer ticks only on axes that count things: a histogram never
shows 0.5 deliveries), the SVG element around a figure, and the fault windows figures
shade."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from gossipcert.harness.judging.index import HistoryIndex

__all__ = ["fault_windows", "log_ticks", "nice_range", "nice_step", "svg_document",
           "tick_label"]


def svg_document(body: Sequence[str], label: str, width: float, height: float) -> str:
    """One inline figure; ``data-figure`` names it for the tests and the browser check."""
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'width="{width:.0f}" height="{height:.0f}" role="img" aria-label="{escape(label)}" '
        f'data-figure="{escape(label)}">' + "".join(body) + "</svg>"
    )


def nice_step(span: float, target: int = 5, integer: bool = False) -> float:
    """The 1/2/5 x 10^k step that cuts ``span`` into about ``target`` parts (at least 1
    when ``integer``)."""
    if not math.isfinite(span) or span <= 0:
        return 1.0
    raw = span / max(target, 1)
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1.0, 2.0, 5.0, 10.0) if m * magnitude >= raw * 0.999)
    return max(1.0, round(step)) if integer else step


def nice_range(
    lo: float, hi: float, target: int = 5, integer: bool = False
) -> tuple[float, float, list[float]]:
    """``[lo, hi]`` widened to whole steps, and the ticks on it: the axis starts and ends
    on a tick, so no label is an odd number like 78.93."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        lo, hi = 0.0, 1.0
    if hi <= lo:
        hi = lo + (1.0 if integer or lo == 0 else abs(lo) * 0.1)
    step = nice_step(hi - lo, target, integer)
    start = math.floor(lo / step + 1e-9) * step
    end = math.ceil(hi / step - 1e-9) * step
    count = int(round((end - start) / step))
    ticks = [_clean(start + i * step) for i in range(count + 1)]
    return ticks[0], ticks[-1], ticks


def log_ticks(lo: float, hi: float) -> tuple[float, float, list[float]]:
    """Decades covering ``[lo, hi]`` (both > 0) for a log axis."""
    lo = max(lo, 1e-3)
    hi = max(hi, lo * 10)
    a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    ticks = [10.0**k for k in range(a, b + 1)]
    return ticks[0], ticks[-1], ticks


def tick_label(value: float, step: float) -> str:
    """``value`` with as many decimals as ``step`` needs (none for whole steps)."""
    if step >= 1 or step <= 0:
        text = f"{value:.0f}"
    else:
        text = f"{value:.{min(6, max(0, -math.floor(math.log10(step) + 1e-9)))}f}"
    return "0" if text in ("-0", "-0.0", "-0.00") else text


def _clean(value: float) -> float:
    """Rounds away float noise (0.30000000000000004) so labels print cleanly."""
    return float(f"{value:.10g}")


def fault_windows(index: HistoryIndex) -> list[tuple[float, float, str, frozenset[str]]]:
    """Every fault that holds for a while, as (start, end, kind, nodes it touches):
    partitions and cuts to their heal, loss and latency to the next heal, a pause to
    its node's resume."""
    out: list[tuple[float, float, str, frozenset[str]]] = []
    for cut in index.cuts:
        touched = set(cut.group) | {n for link in cut.links for n in link}
        out.append((cut.start, min(cut.end, index.end_ms), "partition", frozenset(touched)))
    for i, f in enumerate(index.faults):
        if f.op in ("loss", "latency"):
            end = next((g.time_ms for g in index.faults[i + 1 :] if g.op == "heal"), index.end_ms)
            links = f.args.get("links") or []
            touched = {str(n) for link in links for n in link} or set(index.nodes)
            out.append((f.time_ms, end, f.op, frozenset(touched)))
        elif f.op == "pause" and f.node is not None:
            end = next(
                (
                    g.time_ms
                    for g in index.faults[i + 1 :]
                    if g.op in ("resume", "kill", "restart") and g.node == f.node
                ),
                index.end_ms,
            )
            out.append((f.time_ms, end, "pause", frozenset({str(f.node)})))
    return out
