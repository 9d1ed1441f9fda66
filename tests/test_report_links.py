"""Reports stand alone: no link in a published report directory points at a file the
directory does not hold (a suite's report links to each scenario's, which ship with it),
and every ``#anchor`` names an element of its page.

:func:`dangling_links` is the checker: it reads every ``.md`` (links and images) and every
``.html`` (``href`` and ``src``) under a directory.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from gossipcert.harness.commands.cli import main
from gossipcert.harness.drivers.backends import SIMULATION
from gossipcert.harness.judging.verdict import load_catalogue
from gossipcert.harness.manifest import load_manifest
from gossipcert.harness.profiles import judged_timing
from gossipcert.harness.run.pipeline import (
    PublishedRun,
    RunSpec,
    execute,
    node_ids,
    publish,
    write_suite_report,
)
from gossipcert.harness.workloads.scenario import load_scenario, schedule
from gossipcert.reports.markdown import render_markdown

REPO = Path(__file__).resolve().parent.parent
COMPLIANCE = REPO / "compliance"

_FENCE = re.compile(r"^```.*?^```", re.S | re.M)
_CODE = re.compile(r"`[^`\n]*`")
_MD_LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_EXTERNAL = ("http", "https", "mailto", "data")


class _Page(HTMLParser):
    """The links (href, src) and the anchors (id, a name) of one HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is None:
                continue
            if name in ("href", "src"):
                self.links.append(value)
            elif name == "id" or (tag == "a" and name == "name"):
                self.ids.add(value)


def _page(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def _md_links(path: Path) -> list[str]:
    text = _CODE.sub("", _FENCE.sub("", path.read_text(encoding="utf-8")))
    return _MD_LINK.findall(text)


def dangling_links(report_dir: Path) -> list[str]:
    """Every link in ``report_dir``'s Markdown and HTML files that does not resolve on
    disk (``file: target``): a missing file, or an ``#anchor`` its HTML page lacks.
    External links (http, https, mailto, data) are not followed."""
    found: list[str] = []
    pages: dict[Path, _Page] = {}
    files = sorted(p for p in Path(report_dir).rglob("*") if p.suffix in (".md", ".html"))
    for path in files:
        if path.suffix == ".html":
            pages[path] = _page(path)
            links = pages[path].links
        else:
            links = _md_links(path)
        for link in links:
            parts = urlsplit(link)
            if parts.scheme in _EXTERNAL:
                continue
            target = path if not parts.path else (path.parent / unquote(parts.path))
            if not target.exists():
                found.append(f"{path.relative_to(report_dir)}: {link}")
                continue
            if parts.fragment and target.suffix == ".html":
                page = pages.get(target.resolve()) or pages.setdefault(target.resolve(),
                                                                       _page(target))
                if unquote(parts.fragment) not in page.ids:
                    found.append(f"{path.relative_to(report_dir)}: {link} (no such anchor)")
    return found


def test_the_checker_finds_what_dangles(tmp_path: Path) -> None:
    """The checker itself, both ways: a missing file, image and anchor are found; links
    that resolve, external ones and links inside code are not."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "there.md").write_text("x")
    (tmp_path / "a.md").write_text(
        "[ok](sub/there.md) [web](https://example.org/x) ![gone](missing.svg)\n"
        "`[not a link](nowhere.md)`\n```\n[also not](nowhere.md)\n```\n[bad](sub/none.md)\n")
    (tmp_path / "b.html").write_text(
        '<p id="top"><a href="#top">up</a><a href="#nope">x</a><img src="gone.png">'
        '<a href="sub/there.md">ok</a><a href="b.html#top">self</a><a href="mailto:x@y">m</a>')
    assert sorted(dangling_links(tmp_path)) == [
        "a.md: missing.svg", "a.md: sub/none.md", "b.html: #nope (no such anchor)",
        "b.html: gone.png"]


def _simulated_suite(out: Path) -> dict[str, object]:
    """A suite of two scenario runs of the reference core in the simulator (each a real
    schedule, faults included), written the way certify writes one."""
    reference = load_manifest("reference")
    judged = judged_timing(reference.declared_timing)
    catalogue = load_catalogue()
    runs = []
    for name in ("default", "partitions"):
        run_dir = out / "scenarios" / name
        ops = schedule(load_scenario(name), node_ids(4), 1, reference.timing)
        spec = RunSpec(backend=SIMULATION, nodes=tuple(node_ids(4)), seed=1,
                       timing=reference.timing, ops=tuple(ops), scenario=name,
                       catalogue=tuple(catalogue), timing_profile=judged.describe(),
                       run_dir=run_dir)
        record = execute(spec)
        report = publish(record, run_dir, mode="suite")
        runs.append(PublishedRun(name, run_dir, report, record.verdicts, record.entries,
                                 record.index))
    return write_suite_report(out, runs, catalogue=catalogue,
                              run_info={"nodes": node_ids(4), "backend": SIMULATION})


def test_a_published_suite_has_no_dangling_link(tmp_path: Path) -> None:
    """A suite's run directory published: its report and every scenario's, no history,
    schedule or log, and every link of every report resolves inside it. The suite's own
    report lists every run's faults, each from its scenario run's start."""
    report = _simulated_suite(tmp_path / "run")
    assert (tmp_path / "run" / "scenarios" / "default" / "history.jsonl").is_file()
    assert main(["publish", str(tmp_path / "run"), str(tmp_path / "out")]) == 0
    out = tmp_path / "out"
    names = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert not [n for n in names if n.endswith((".jsonl", ".log")) or "schedule" in n]
    assert "scenarios/partitions/report.md" in names and "report.junit.xml" in names
    assert dangling_links(out) == []
    # The suite's report stands alone: its faults are every run's, with their scenario.
    faults = report["faults"]
    assert {f["scenario"] for f in faults} == {"default", "partitions"}
    starts = {r["scenario"]: r["started_at_ms"] for r in report["runs"]}
    md = (out / "report.md").read_text()
    assert "in each scenario's report" not in md
    first = min((f for f in faults if f["scenario"] == "partitions"),
                key=lambda f: f["time_ms"])
    at = f"{(first['time_ms'] - starts['partitions']) / 1000:.1f} s"
    assert f"| partitions | {at} | {first['op']} |" in md
    # A scenario's own report, moved with the suite's, still resolves.
    assert json.loads((out / "scenarios" / "default" / "report.json").read_text())["faults"]


def test_publishing_what_is_no_report_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["publish", str(tmp_path / "nothing"), str(tmp_path / "out")]) == 2
    assert "holds no report.json" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_report_links_to_nothing_left_behind(tmp_path: Path) -> None:
    """Published without its scenarios (an older layout), a suite's report dangles: the
    checker sees it, so the test above would catch a report linking outside its set."""
    _simulated_suite(tmp_path / "run")
    (tmp_path / "out").mkdir()
    for name in ("report.md", "report.html", "badge.svg"):
        (tmp_path / "out" / name).write_bytes((tmp_path / "run" / name).read_bytes())
    missing = dangling_links(tmp_path / "out")
    assert "report.md: scenarios/default/report.md" in missing
    assert "report.html: scenarios/default/report.html" in missing


@pytest.mark.parametrize("name", sorted(p.name for p in COMPLIANCE.iterdir() if p.is_dir()))
def test_committed_compliance_reports_have_no_dangling_link(name: str) -> None:
    """Every committed compliance report directory resolves every link it holds."""
    folder = COMPLIANCE / name
    report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    assert not report.get("runs") or (folder / "scenarios").is_dir(), name
    assert dangling_links(folder) == []


def test_every_claimed_capability_is_listed_in_the_certificate() -> None:
    """Serf's certificate lists failure-detection: a hand-built report of its claims
    (one capability failed, one not judged, one with no MUST requirement) names every
    declared capability in one list."""
    report = {
        "implementation": "serf", "verdict": "fail", "requirements": [], "faults": [],
        "run": {}, "seed": 1,
        "certificate": {
            "capabilities_declared": ["membership", "failure-detection", "broadcast",
                                      "events", "leave"],
            "capabilities_certified": ["membership", "leave"],
            "capabilities_failed": ["failure-detection"],
            "capabilities_not_judged": ["broadcast"],
            "capabilities_not_claimed": ["kv", "crdt", "encryption"],
            "timing_profile": {"name": "lan", "timing": {}},
        },
    }
    text = render_markdown(report)
    assert "- capabilities certified: membership, leave" in text
    assert "- capabilities failed: failure-detection" in text
    assert "broadcast" in text.split("capabilities not judged")[1].splitlines()[0]
    assert "- capabilities declared, no MUST requirement to certify: events" in text
    committed = (COMPLIANCE / "serf" / "report.md").read_text(encoding="utf-8")
    certificate = committed.split("## Run")[0]
    assert "failure-detection" in certificate


def test_the_compliance_summary_links_only_to_committed_reports() -> None:
    """``compliance/README.md`` (the table over the implementations) links to each
    committed report."""
    assert [link for link in dangling_links(COMPLIANCE) if link.startswith("README.md:")] == []
