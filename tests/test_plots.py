"""The report's figures: round ticks, integer count axes, and what each picture must show
(drawn from hand-built histories)."""

from __future__ import annotations

import re
from html import escape
from pathlib import Path
from typing import Any

import pytest
from gossipcert.harness.history import build
from gossipcert.harness.judging.index import HistoryIndex
from gossipcert.harness.workloads.failure_detection import check_failure_detection
from gossipcert.reports.axes import fault_windows, nice_range, nice_step, tick_label
from gossipcert.reports.html import render_html
from gossipcert.reports.plots import fault_timeline_svg, latency_histogram_svg
from gossipcert.reports.timeline import (
    failure_evidence_html,
    focus_of,
    message_flow_svg,
    node_timeline_svg,
    op_latency_svg,
)
from test_checkers import CATALOGUE, Hist, check, killed_n3


def _labels(svg: str, css: str = "tick") -> list[str]:
    return re.findall(rf'class="{css}"[^>]*>([^<]*)</text>', svg)


@pytest.mark.parametrize(
    ("lo", "hi", "ticks"),
    [
        (0, 78.93, [0, 20, 40, 60, 80]),
        (0, 2260.8, [0, 500, 1000, 1500, 2000, 2500]),
        (0, 1, [0, 0.2, 0.4, 0.6, 0.8, 1.0]),
        (3.2, 9.7, [2, 4, 6, 8, 10]),
    ],
)
def test_ticks_are_round_steps(lo: float, hi: float, ticks: list[float]) -> None:
    start, end, found = nice_range(lo, hi, 5)
    assert found == pytest.approx(ticks)
    assert (start, end) == (found[0], found[-1])


def test_steps_are_one_two_five_times_a_power_of_ten() -> None:
    for span in (0.013, 0.7, 3, 17, 99, 4321, 1e6):
        step = nice_step(span)
        mantissa = step / 10 ** int(f"{step:e}".split("e")[1])
        assert round(mantissa, 6) in (1.0, 2.0, 5.0), (span, step)


def test_count_axes_have_integer_ticks_only() -> None:
    for hi in (1, 2, 3, 7):
        _, _, ticks = nice_range(0, hi, 4, integer=True)
        assert all(float(t).is_integer() for t in ticks), (hi, ticks)
    assert tick_label(0.30000000000000004, 0.1) == "0.3"
    assert tick_label(2500.0, 500) == "2500"


def test_histogram_never_shows_half_a_delivery() -> None:
    h = Hist().start_all()
    h.op("broadcast", "n1", 2000, 2005, args={"id": "b1", "payload": "x"})
    h.delivered("n2", "b1", 2010).delivered("n3", "b1", 2097)
    svg = latency_histogram_svg(HistoryIndex.build(h.until(5000).build()))
    assert svg is not None
    counts = [t for t in _labels(svg) if t and t.replace(".", "").isdigit()]
    assert "0.5" not in counts and "1" in counts
    assert not any(re.fullmatch(r"\d+\.\d\d", t) for t in counts), counts


def test_fault_timeline_counts_seconds_from_the_run_start() -> None:
    index = HistoryIndex.build(killed_n3(13000, 14000).build())
    svg = fault_timeline_svg(index)
    assert svg is not None and "seconds since the run's start" in svg
    assert set(_labels(svg)) >= {"0", "10", "20", "30", "40"}


def _fd_failure() -> tuple[HistoryIndex, dict[str, Any]]:
    """n3 killed at 10 s; n1 marks it dead at 13 s, n2 only at 25 s (bound 11.85 s)."""
    h = killed_n3(13000, 25000)
    h.members_read("n1", 11000, {"n2": "alive", "n3": "suspect"})
    h.members_read("n2", 11000, {"n1": "alive", "n3": "alive"})
    h.op("put", "n1", 12000, 12010).op("put", "n2", 12000, 12400, "fail")
    h.op("kv", "n2", 14000, None)
    entries = h.build()
    verdict = check(check_failure_detection, "FD-DETECT", entries)
    assert verdict.status == "fail"
    return HistoryIndex.build(entries), verdict.to_dict()


def test_fd_detect_failure_shows_the_kill_the_views_and_the_bound() -> None:
    index, requirement = _fd_failure()
    details = requirement["evidence"]["details"]
    assert details["window_ms"][0] == 10000.0  # the window opens at the kill
    focus = focus_of(requirement, index)
    assert focus is not None and focus.subject == "n3"
    assert focus.bound_lines == [pytest.approx(10000 + 11850)]
    svg = node_timeline_svg(index, focus)
    assert svg is not None
    for node in ("n1", "n2", "n3"):  # one lane per node
        assert f">{node}</text>" in svg
    assert ">kill 10.0 s</text>" in svg  # the kill mark, from the run's start (0)
    assert "bound 21.9 s" in svg and 'class="bound"' in svg  # kill + bound
    assert "view of n3" in svg and ">dead</text>" in svg and ">suspect</text>" in svg
    assert "dead +15.0 s" in svg  # n2's late detection, measured from the kill
    assert "put fail" in svg and "kv info" in svg  # operations coloured by outcome
    assert 'fill="#d62728" opacity="0.8"' in svg and 'fill="#ff9900" opacity="0.8"' in svg


def test_the_failing_requirement_gets_its_picture_next_to_its_evidence() -> None:
    index, requirement = _fd_failure()
    report = {"requirements": [requirement]}
    section = failure_evidence_html(report, index)
    assert section.startswith("<h2>Evidence of failures</h2>")
    assert 'data-figure="failure-FD-DETECT"' in section
    assert escape(requirement["evidence"]["summary"]) in section
    assert "No message flow" in section  # no plane counted: said in one line
    assert failure_evidence_html({"requirements": [{**requirement, "status": "pass"}]},
                                 index) == ""


def test_a_suite_draws_each_failure_from_the_scenario_that_judged_it() -> None:
    index, requirement = _fd_failure()
    other = HistoryIndex.build(Hist().start_all().all_alive(1500).until(3000).build())
    report = {"requirements": [{**requirement, "scenario": "crash-restart"}]}
    section = failure_evidence_html(report, other, {"crash-restart": index})
    assert ">kill 10.0 s</text>" in section and "scenario crash-restart" in section
    page = render_html(
        {"verdict": "fail", "requirements": [{**requirement, "scenario": "crash-restart"}],
         "run": {}, "certificate": {}},
        other,
        {"crash-restart": index},
    )
    assert "<script" not in page and not re.search(r'(src|href)\s*=\s*"(https?:)?//', page)
    # A failure's picture comes first, before the table of every requirement.
    assert page.index("Evidence of failures") < page.index("<h2>Requirements</h2>")


def _traffic(h: Hist, at: float, links: dict[str, int], **args: Any) -> None:
    result = {
        "plane": "link",
        "unit": "chunks",
        "nodes": {n: {"messages": 0, "bytes": 0, "scope": "link"} for n in h.nodes},
        "links": {k: {"up_chunks": v, "up_datagrams": 0} for k, v in links.items()},
    }
    call = next(h.calls)
    h.rows.append({"time_ms": at, "type": "invoke", "op": "traffic", "call": call, "args": args})
    h.rows.append({"time_ms": at + 2, "type": "ok", "op": "traffic", "call": call,
                   "args": args, "result": result})


def test_message_flow_draws_an_arrow_per_counted_link() -> None:
    h = Hist().start_all()
    _traffic(h, 2000, {"n1->n2": 0, "n2->n1": 0, "n1->n3": 5}, round=1)
    _traffic(h, 3000, {"n1->n2": 7, "n2->n1": 3, "n1->n3": 5}, periodic=True)
    index = HistoryIndex.build(h.until(4000).build())
    svg, caption = message_flow_svg(index)
    assert svg is not None
    arrows = dict(re.findall(r'data-link="([^"]+)">\s*<title>[^:]*: (\d+) chunks', svg))
    assert arrows == {"n1->n2": "7", "n2->n1": "3"}  # n1->n3 carried nothing in between
    assert escape("link plane's proxies") in svg  # what the counts are, on the figure
    assert "1 interval(s)" in caption and "10 chunks in all" in caption
    # A window between two other readings: nothing encloses it.
    assert message_flow_svg(index, (3500, 3600))[0] is None


def test_message_flow_says_so_when_no_plane_counted() -> None:
    index = HistoryIndex.build(killed_n3(13000, 14000).build())
    svg, caption = message_flow_svg(index)
    assert svg is None and caption.startswith("No message flow")


def test_periodic_traffic_readings_leave_timing_traffic_alone() -> None:
    from gossipcert.harness.workloads.failure_detection import traffic_windows

    h = Hist().start_all()
    h.phase("quiet", 1500, 5000)
    _traffic(h, 1600, {"n1->n2": 0}, round=1)
    _traffic(h, 2600, {"n1->n2": 4}, periodic=True)
    _traffic(h, 4900, {"n1->n2": 9}, round=2)
    windows, _ = traffic_windows(HistoryIndex.build(h.until(6000).build()))
    assert [(a.args.get("round"), b.args.get("round")) for a, b in windows] == [(1, 2)]


def test_latency_plot_places_each_operation_by_invoke_time() -> None:
    h = Hist().start_all()
    h.op("put", "n1", 2000, 2010).op("put", "n2", 3000, 5000).op("get", "n3", 4000, 4100, "fail")
    h.op("kv", "n1", 4500, None).fault("partition", 2500, groups=[["n1"], ["n2", "n3"]])
    h.fault("heal", 3500)
    svg = op_latency_svg(HistoryIndex.build(h.until(6000).build()))
    assert svg is not None and "(log scale)" in svg  # 10 ms to 2 s: a wide spread
    assert svg.count("<circle") >= 2 + 3  # two puts ok, the starts left out; legend dots
    assert "get fail" in svg and "kv timeout" in svg
    assert 'fill="#9467bd" opacity="0.15"' in svg  # the partition shaded
    assert {"10", "100", "1000"} <= set(_labels(svg))  # decades on the log axis


def test_timeline_and_focus_need_a_time_inside_the_run() -> None:
    index = HistoryIndex.build(killed_n3(13000, 14000).build())
    assert focus_of({"id": "X", "evidence": {"details": {"key": "k"}}}, index) is None
    svg = node_timeline_svg(index)
    assert svg is not None and 'data-figure="node-timeline"' in svg
    assert CATALOGUE["FD-DETECT"].unit == "ms"
    assert node_timeline_svg(HistoryIndex.build(build([]))) is None


def test_a_suite_report_draws_the_failure_from_its_own_scenario_run(tmp_path: Path) -> None:
    """The suite's report.html: FD-DETECT failed in the second scenario run, so its
    picture shows that run's kill, not the first run's history."""
    from gossipcert.harness.judging.verdict import load_catalogue
    from gossipcert.harness.run.pipeline import (
        PublishedRun,
        judge,
        write_reports,
        write_suite_report,
    )

    catalogue = load_catalogue()
    first = Hist().start_all().all_alive(1500).until(6000)
    failing = killed_n3(13000, 25000)
    runs = []
    for name, h in (("default", first), ("crash-restart", failing)):
        h.rows[0]["args"]["scenario"] = name
        entries = h.build()
        index, verdicts = judge(entries, catalogue)
        run_dir = tmp_path / "scenarios" / name
        report = write_reports(run_dir, entries, index, verdicts, catalogue=catalogue,
                               mode="suite", run_info={"nodes": list(h.nodes)})
        runs.append(PublishedRun(name, run_dir, report, verdicts, entries, index))
    suite = write_suite_report(tmp_path, runs, catalogue=catalogue,
                               run_info={"nodes": ["n1", "n2", "n3"]})
    fd = next(r for r in suite["requirements"] if r["id"] == "FD-DETECT")
    assert (fd["status"], fd["scenario"]) == ("fail", "crash-restart")
    html = (tmp_path / "report.html").read_text()
    start = html.index('data-figure="failure-FD-DETECT"')
    svg = html[start : html.index("</svg>", start)]
    assert ">kill 10.0 s</text>" in svg and "view of n3" in svg


def test_a_false_positive_is_marked_where_it_was_reported() -> None:
    """FD-NO-FALSE-POSITIVE's window (details.window_ms) spans its false positives, and
    the timeline marks the observer's report of the live member."""
    from gossipcert.harness.workloads.failure_detection import check_no_false_positive

    h = Hist().start_all().all_alive(1500).phase("quiet", 5000, 10000)
    h.member("n2", "n1", "suspect", 7000).member("n2", "n1", "alive", 7400)
    entries = h.until(12000).build()
    verdict = check(check_no_false_positive, "FD-NO-FALSE-POSITIVE", entries)
    assert verdict.status == "fail" and verdict.details["window_ms"] == [7000, 7000]
    index = HistoryIndex.build(entries)
    focus = focus_of(verdict.to_dict(), index)
    assert focus is not None and focus.subject == "n1" and focus.bound_lines == []
    svg = node_timeline_svg(index, focus)
    assert svg is not None and "view of n1" in svg and ">suspect</text>" in svg


def test_figures_shade_each_fault_window_once_and_a_pause_until_its_own_resume() -> None:
    """One reading of fault windows (reports/axes.py) for every figure: a loss window is a
    shaded row, not also a point; a pause ends at its own node's resume, not another's."""
    h = killed_n3(13000, 14000)
    h.fault("loss", 20000, probability=0.2).fault("heal", 24000)
    h.fault("pause", 26000, "n1").fault("pause", 27000, "n2")
    h.fault("resume", 28000, "n2").fault("resume", 31000, "n1")
    index = HistoryIndex.build(h.until(35000).build())
    svg = fault_timeline_svg(index)
    assert svg is not None
    assert svg.count(">loss</text>") == 1  # one row: the window, no point beside it
    windows = {(k, s, e) for s, e, k, _ in fault_windows(index)}
    assert ("loss", 20000, 24000) in windows
    assert ("pause", 26000, 31000) in windows and ("pause", 27000, 28000) in windows
