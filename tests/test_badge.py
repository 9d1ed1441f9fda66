"""badge.svg: the verdict in its colour, the contract and what was certified, as valid SVG
that report.html shows and links and report.md points to."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from gossipcert.reports.badge import VERDICT_COLOURS, render_badge
from gossipcert.reports.markdown import render_markdown

SVG = "{http://www.w3.org/2000/svg}"


def report(verdict: str, certified: list[str], contract: str = "v1") -> dict[str, Any]:
    return {"implementation": "x", "verdict": verdict,
            "certificate": {"contract": contract, "capabilities_certified": certified}}


def segments(svg: str) -> list[tuple[str, str]]:
    """(text, fill) of each segment, left to right, from the parsed SVG."""
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    fills = [r.get("fill") for r in root.iter(f"{SVG}rect") if r.get("x") is not None]
    # Each text is drawn twice (its shadow first); the second is the visible one.
    texts = [t.text for t in root.iter(f"{SVG}text") if t.get("aria-hidden") is None]
    assert len(fills) == len(texts) == 3
    widths = [int(r.get("width") or 0) for r in root.iter(f"{SVG}rect") if r.get("x")]
    assert int(root.get("width") or 0) == sum(widths)
    return [(str(text), str(fill)) for text, fill in zip(texts, fills, strict=True)]


def test_a_pass_badge_names_the_contract_and_the_certified_capabilities() -> None:
    svg = render_badge(report("pass", ["membership", "broadcast"]))
    assert segments(svg) == [
        ("gossipcert v1", "#555"),
        ("PASS", VERDICT_COLOURS["pass"]),
        ("membership · broadcast", "#007ec6"),
    ]
    title = ET.fromstring(svg).find(f"{SVG}title")
    assert title is not None and title.text == "gossipcert v1 | PASS | membership · broadcast"


def test_a_fail_badge_is_red_and_says_when_nothing_was_certified() -> None:
    assert segments(render_badge(report("fail", []))) == [
        ("gossipcert v1", "#555"), ("FAIL", "#e05d44"), ("none certified", "#007ec6")]
    assert segments(render_badge(report("incomplete", ["kv"])))[1] == ("INCOMPLETE", "#dfb317")


def test_text_from_the_report_is_escaped() -> None:
    """A capability or contract name is data: markup in it stays text."""
    svg = render_badge(report("pass", ['<script>&"'], contract="v1<"))
    assert "<script>" not in svg
    texts = [text for text, _ in segments(svg)]
    assert texts == ["gossipcert v1<", "PASS", '<script>&"']


def test_the_reports_show_and_name_the_badge() -> None:
    from gossipcert.harness.judging.index import HistoryIndex
    from gossipcert.reports.html import render_html

    data = {**report("pass", ["membership"]), "requirements": [], "run": {}}
    page = render_html(data, HistoryIndex.build([]))
    assert '<a href="badge.svg"><svg xmlns="http://www.w3.org/2000/svg"' in page
    assert "![gossipcert PASS](badge.svg)" in render_markdown(data)
