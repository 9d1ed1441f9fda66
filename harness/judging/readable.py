"""How a person reads a measured value against its bound: ms in seconds once large, a
count as a bare number, and the margin between them ("1.7 s of 13.2 s bound (13%)").

Shared by the reports and the command line, so both say the same thing."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["margin_text", "quantity"]


def _number(value: float) -> str:
    return f"{value:.0f}" if value.is_integer() else f"{value:.1f}"


def quantity(value: Any, unit: str) -> str:
    """A measured value or bound as a person reads it: ms in seconds once large."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return f"{value} {unit}".strip()
    if unit == "ms":
        return f"{value / 1000:.1f} s" if abs(value) >= 1000 else f"{value:.0f} ms"
    if unit == "count":  # "3", not "3 count"
        return _number(float(value))
    return f"{_number(float(value))} {unit}".strip()


def margin_text(req: Mapping[str, Any]) -> str:
    """Measured against bound with the margin between them, e.g. ``1.7 s of 13.2 s
    bound (13%)``; the ratio is left out when the bound is zero (a count of none)."""
    unit = str(req.get("unit") or "")
    measured, bound = req.get("measured"), req.get("bound")
    if measured is None and bound is None:
        return "-"
    if measured is None:
        return f"- (bound {quantity(bound, unit)})"
    if bound is None:
        return quantity(measured, unit)
    text = f"{quantity(measured, unit)} of {quantity(bound, unit)} bound"
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool)
                  for v in (measured, bound))
    if not numbers:
        return f"{quantity(measured, unit)} (bound {quantity(bound, unit)})"
    if float(bound) <= 0:  # a count that must stay at none: no ratio to give
        return f"{quantity(measured, unit)} (at most {quantity(bound, unit)})"
    ratio = float(measured) / float(bound)
    share = "<1%" if 0 < ratio < 0.005 else f"{ratio:.0%}"
    return text + f" ({share})"
