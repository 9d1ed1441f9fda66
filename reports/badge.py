"""``badge.svg``: a shields-style badge of the verdict, for a README or a CI page.

Three segments: ``gossipcert`` with the contract version, the verdict in its colour, and
the capabilities the run certified (a capability is certified only when every MUST of it
was exercised and passed, so a FAIL or INCOMPLETE badge still names only what holds).
Plain SVG text with no script, font or link, so it renders wherever an image does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from gossipcert.harness.run.reporting import RunResults

__all__ = ["VERDICT_COLOURS", "render_badge", "write", "write_badge"]

# The colours shields.io uses for success, critical, important and inactive.
VERDICT_COLOURS = {
    "pass": "#4c1",
    "fail": "#e05d44",
    "incomplete": "#dfb317",
    "error": "#9f9f9f",
}
LABEL_COLOUR = "#555"
CAPABILITIES_COLOUR = "#007ec6"
NONE_CERTIFIED = "none certified"

# Widths (px) of Verdana at 11 px, the font the badge names, by character class; the
# text is also given ``textLength`` so any fallback font is fitted to the same box.
_NARROW = set("fijlrtI.,:;'|!() ")
_WIDE = set("mwMW@%")
_PAD = 6


def _text_width(text: str) -> int:
    width = 0.0
    for char in text:
        if char in _NARROW:
            width += 3.9
        elif char in _WIDE:
            width += 10.0
        elif char.isupper() or char.isdigit():
            width += 7.5
        else:
            width += 6.6
    return round(width)


def _segments(report: Mapping[str, Any]) -> list[tuple[str, str]]:
    cert = report.get("certificate") or {}
    contract = str(cert.get("contract") or "?")
    verdict = str(report.get("verdict") or "error")
    certified: Sequence[Any] = cert.get("capabilities_certified") or []
    return [
        (f"gossipcert {contract}", LABEL_COLOUR),
        (verdict.upper(), VERDICT_COLOURS.get(verdict, VERDICT_COLOURS["error"])),
        (" · ".join(str(c) for c in certified) or NONE_CERTIFIED, CAPABILITIES_COLOUR),
    ]


def render_badge(report: Mapping[str, Any]) -> str:
    """The SVG text of a report dict's badge."""
    segments = _segments(report)
    widths = [_text_width(text) + 2 * _PAD for text, _ in segments]
    total = sum(widths)
    title = " | ".join(text for text, _ in segments)
    rects: list[str] = []
    texts: list[str] = []
    x = 0
    for (text, colour), width in zip(segments, widths, strict=True):
        rects.append(f'<rect x="{x}" width="{width}" height="20" fill="{colour}"/>')
        middle = x + width / 2
        length = width - 2 * _PAD
        label = escape(text)
        texts.append(
            f'<text x="{middle:g}" y="15" fill="#010101" fill-opacity=".3" '
            f'textLength="{length}" aria-hidden="true">{label}</text>'
            f'<text x="{middle:g}" y="14" textLength="{length}">{label}</text>'
        )
        x += width
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" role="img" '
        f'aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>"
        '<linearGradient id="gcb-shine" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" '
        'stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient>'
        f'<clipPath id="gcb-round"><rect width="{total}" height="20" rx="3" fill="#fff"/>'
        "</clipPath>"
        f'<g clip-path="url(#gcb-round)">{"".join(rects)}'
        f'<rect width="{total}" height="20" fill="url(#gcb-shine)"/></g>'
        '<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,'
        f'sans-serif" font-size="11">{"".join(texts)}</g></svg>\n'
    )


def write_badge(path: Path | str, report: Mapping[str, Any]) -> Path:
    target = Path(path)
    target.write_text(render_badge(report), encoding="utf-8")
    return target


def write(results: RunResults) -> Path:
    """The ``badge`` report writer (entry point of ``gossipcert.reports``)."""
    return write_badge(results.report_dir / "badge.svg", results.report)
