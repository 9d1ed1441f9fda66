"""What a run command prints: ``--json``, ``-q``/``-v``, and the live progress line (drawn
in place on a terminal, plain lines elsewhere)."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import select
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from gossipcert.harness.commands import cli
from gossipcert.harness.commands.cli import main
from gossipcert.harness.manifest import load_manifest
from gossipcert.harness.run.certify import CertifyResult
from gossipcert.harness.run.pipeline import Progress, simulate
from gossipcert.harness.run.progress import ERASE, NORMAL, VERBOSE, Console
from gossipcert.harness.workloads.scenario import load_scenario, schedule
from gossipcert.specs import spec_path

REPO = Path(__file__).resolve().parent.parent
COMPLIANCE = REPO / "compliance"
STEP = re.compile(r"default: step (\d+)/(\d+): [a-z-]+, \d+ s elapsed"
                  r"(, (about|at least) \d+ s left)?")


# ---- --json, -q, -v --------------------------------------------------------------------


def _canned(monkeypatch: pytest.MonkeyPatch, name: str = "reference") -> None:
    """certify answers with a committed report, as if it had just run."""
    report = json.loads((COMPLIANCE / name / "report.json").read_text())

    def certify(opts: Any) -> CertifyResult:
        opts.progress("a progress line")
        return CertifyResult(exit_code=0 if report["verdict"] == "pass" else 1,
                             report_dir=COMPLIANCE / name, report=report)

    monkeypatch.setattr("gossipcert.harness.run.certify.certify", certify)


def validate_result(document: dict[str, Any]) -> None:
    """``document`` against specs/cli-result.schema.json, its certificate against the
    report's own schema."""
    schema = json.loads(spec_path("cli-result.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(document, schema)
    report_schema = json.loads(spec_path("report.schema.json").read_text())
    if document["certificate"] is not None:
        jsonschema.validate(document["certificate"],
                            report_schema["properties"]["certificate"])


@pytest.mark.parametrize("name", ["reference", "maelstrom-noretry"])
def test_json_is_one_document_on_stdout(monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str], name: str) -> None:
    _canned(monkeypatch, name)
    code = main(["certify", "--json"])
    out, err = capsys.readouterr()
    document = json.loads(out)
    validate_result(document)
    assert document["exit_code"] == code and document["verdict"] in ("pass", "fail")
    assert Path(document["reports"]["json"]).is_file()
    assert "a progress line" in err


def test_quiet_prints_the_verdict_alone_and_verbose_the_evidence(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _canned(monkeypatch)
    main(["certify", "-q"])
    assert capsys.readouterr() == ("verdict: PASS\n", "")
    main(["certify", "-q", "--json"])
    out, err = capsys.readouterr()
    assert json.loads(out)["verdict"] == "pass" and err == ""
    main(["certify"])
    normal = capsys.readouterr().out
    main(["certify", "-v"])
    verbose = capsys.readouterr().out
    assert "verdict: PASS" in normal and "worst" not in normal
    assert len(verbose.splitlines()) > len(normal.splitlines()) and "worst" in verbose
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["certify", "-q", "-v"])


def test_replay_json_in_simulation_and_quiet(tmp_path: Path) -> None:
    """A replay in the simulator writes no report: its document holds the replay's own
    verdicts; -q prints the verdict line alone."""
    from test_replay_file import IMPLS, valid, write

    core = f"{IMPLS / 'acks_unkept_writes' / 'defect.py'}:installed"
    path = write(tmp_path, valid(implementation=str(IMPLS / "acks_unkept_writes"), core=core))
    command = [sys.executable, "-m", "gossipcert.harness", "replay", str(path), "--sim"]
    result = subprocess.run([*command, "--json"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    document = json.loads(result.stdout)
    validate_result(document)
    assert document["verdict"] == "fail" and document["report_dir"] is None
    assert {"id": "KV-NO-LOST-WRITE", "status": "fail"}.items() <= next(
        r for r in document["requirements"] if r["id"] == "KV-NO-LOST-WRITE").items()
    quiet = subprocess.run([*command, "-q"], capture_output=True, text=True, timeout=120)
    assert quiet.returncode == 1 and quiet.stdout == "verdict: FAIL (a MUST still fails)\n"


# ---- the live progress line --------------------------------------------------------------


def _simulated_default(console: Console) -> None:
    """The default scenario on 3 simulated reference cores, its progress to ``console``
    the way certify sends it (through the timed sink)."""
    timing = dict(load_manifest("reference").timing)
    ops = schedule(load_scenario("default"), ["n1", "n2", "n3"], 1, timing)
    try:
        simulate(ops, ["n1", "n2", "n3"], timing=timing, scenario="default",
                 progress=Progress(console))
    finally:
        console.close()


def test_on_a_terminal_the_step_line_is_redrawn_in_place_and_cleared() -> None:
    """Through a pseudo-terminal: each step redraws one line (back to its start, cleared
    to its end), every other line is printed on a cleared line, nothing is left drawn."""
    master, slave = pty.openpty()
    stream = os.fdopen(slave, "w", buffering=1)
    chunks: list[bytes] = []
    try:
        console = Console(NORMAL, stream)
        assert console.live
        _simulated_default(console)
        stream.flush()
        while True:
            ready, _, _ = select.select([master], [], [], 0.2)
            if not ready:
                break
            chunks.append(os.read(master, 65536))
    finally:
        stream.close()
        os.close(master)
    text = b"".join(chunks).decode().replace("\r\n", "\n")
    drawn = [part for part in text.split(ERASE) if part]
    steps = [STEP.match(part) for part in drawn]
    assert sum(m is not None for m in steps) > 5, text[:2000]
    numbers = [int(m.group(1)) for m in steps if m is not None]
    assert numbers == sorted(numbers)
    assert any(m is not None and m.group(3) for m in steps)  # a remaining time was shown
    for part in drawn:  # printed lines, then at most the live line: never on one line
        *printed, tail = part.split("\n")
        assert not tail or STEP.fullmatch(tail), part
        assert not any(STEP.search(line) for line in printed), part
    assert text.endswith(ERASE) or text.endswith("\n")
    assert not STEP.search(text.rsplit(ERASE, 1)[-1])


def test_off_a_terminal_steps_are_plain_lines() -> None:
    """Not a terminal: no carriage return, no escape, at most one line per step (a CI
    log); -v prints every step as it begins."""
    for verbosity in (NORMAL, VERBOSE):
        out = io.StringIO()
        console = Console(verbosity, out)
        assert not console.live
        _simulated_default(console)
        text = out.getvalue()
        assert "\r" not in text and "\x1b" not in text
        lines = [line for line in text.splitlines() if STEP.fullmatch(line)]
        numbers = [int(STEP.fullmatch(line).group(1)) for line in lines]  # type: ignore[union-attr]
        assert numbers and len(numbers) == len(set(numbers))
        if verbosity == VERBOSE:
            assert len(numbers) > 20


def test_an_interrupted_run_leaves_no_live_line_drawn() -> None:
    """Ctrl-C inside a step: the interpreter tells the console its steps are over, and
    the terminal's last write erases the line (nothing left half-drawn)."""
    from gossipcert.harness.history import History
    from gossipcert.harness.workloads.interpreter import Execution

    class Driver:
        node_ids = ["n1"]
        capabilities: list[str] = []
        history = History()

        def clock(self) -> float:
            return 0.0

    class Interrupted:
        kind, needs = "wait", None
        ms = 5000

        def to_json(self) -> dict[str, Any]:
            return {"op": "wait", "ms": self.ms}

        def run(self, x: Any) -> None:
            raise KeyboardInterrupt

    out = io.StringIO()
    console = Console(NORMAL, out, live=True)
    execution = Execution(Driver(), [], dict(load_manifest("reference").timing),  # type: ignore[arg-type]
                          progress=Progress(console),
                          on_step=lambda status: console.step("default", status))
    with pytest.raises(KeyboardInterrupt):
        try:
            execution.run([Interrupted()])  # type: ignore[list-item]
        finally:
            console.close()
    text = out.getvalue()
    assert STEP.fullmatch(text.split(ERASE)[0]), text  # drawn: step 1/1, about 5 s left
    assert "about 5 s left" in text and text.endswith(ERASE)
