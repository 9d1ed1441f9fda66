"""The ``gossipcert`` command line."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from gossipcert.harness.drivers.backends import BACKENDS, backends_help
from gossipcert.harness.errors import (
    EXIT_BAD_INPUT,
    EXIT_HARNESS_ERROR,
    EXIT_INTERRUPTED,
    EXIT_UNAVAILABLE,
    USER_ERRORS,
    describe,
)
from gossipcert.harness.judging.index import DEFAULT_CLOCK_SKEW_MS
from gossipcert.harness.judging.readable import margin_text
from gossipcert.harness.profiles import DEFAULT_PROFILE, profile_names
from gossipcert.harness.run.progress import NORMAL, QUIET, VERBOSE, Console
from gossipcert.specs import gossipcert_version

if TYPE_CHECKING:
    from gossipcert.harness.run.explore import ExploreResult


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def _port(text: str) -> int:
    value = _positive_int(text)
    if value > 65534:
        raise argparse.ArgumentTypeError(f"not a usable port: {text!r}")
    return value


def _output_arguments(command: argparse.ArgumentParser, json_help: str | None) -> None:
    """How much a run command says: progress (stderr) and, with ``--json``, one JSON
    document in place of its result lines (stdout)."""
    loud = command.add_mutually_exclusive_group()
    loud.add_argument("-q", "--quiet", dest="verbosity", action="store_const", const=QUIET,
                      default=NORMAL,
                      help="no progress: only the final verdict line (nothing with --json) "
                           "and errors")
    loud.add_argument("-v", "--verbose", dest="verbosity", action="store_const",
                      const=VERBOSE,
                      help="more detail: each step as it begins, each requirement's evidence")
    if json_help is not None:
        command.add_argument("--json", action="store_true", help=json_help)


JSON_HELP = ("print one JSON document on stdout and nothing else: the verdict, the "
             "certificate, the report paths, the exit code and every requirement "
             "(specs/cli-result.schema.json); progress stays on stderr")


def _run_arguments(command: argparse.ArgumentParser, report_dir_help: str) -> None:
    """The options of every command that starts a cluster of an implementation."""
    command.add_argument("--impl", default="reference",
                         help="'reference', 'serf', 'serf-local', 'maelstrom:PATH' (a "
                              "Maelstrom node binary) or the path of an implementation "
                              "manifest (YAML) or of its folder")
    command.add_argument("--workload", default=None, metavar="broadcast|g-counter",
                         help="with --impl maelstrom:PATH: the Maelstrom workload the node "
                              "implements (default: broadcast)")
    command.add_argument("--backend", default="process", choices=list(BACKENDS),
                         help=backends_help("process"))
    command.add_argument("--nodes", type=_positive_int, default=5,
                         help="cluster size (default 5)")
    command.add_argument("--seed", type=int, default=None,
                         help="seed of every random choice in the run (default: random, "
                              "reported)")
    command.add_argument("--report-dir", type=Path, default=None,
                         help=f"{report_dir_help} (default: gossipcert-runs/<stamp>...)")
    command.add_argument("--base-port", type=_port, default=None,
                         help="fixed ports: gossip on BASE, control on BASE+1 of each node's "
                              "address (default: free ports)")
    command.add_argument("--toxiproxy-url", default=None,
                         help="use this Toxiproxy (or compatible) server instead of starting "
                              "ours")
    command.add_argument("--profile", default=DEFAULT_PROFILE, choices=profile_names(),
                         help="timing profile (memberlist's defaults): declared timing slower "
                              "than it is judged at its ceiling, and the report says so "
                              f"(default: {DEFAULT_PROFILE})")
    command.add_argument("--clock-skew-ms", type=float, default=DEFAULT_CLOCK_SKEW_MS,
                         help="how far node clocks may be from the harness's: an LWW "
                              "timestamp outside its call by more is a clock violation "
                              f"(default: {DEFAULT_CLOCK_SKEW_MS:g})")
    _output_arguments(command, JSON_HELP)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gossipcert",
        description="Certify gossip implementations for convergence, failure detection "
                    "and conflict resolution under real faults.",
        epilog="Linux only: on another platform every command but 'report', "
               "'scenarios' and 'compare' exits 5 with one line saying so.",
    )
    parser.add_argument("--version", action="version",
                        version=f"gossipcert {gossipcert_version()}",
                        help="print the installed version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    cert = sub.add_parser(
        "certify",
        help="certify an implementation: every scenario its claimed requirements need, "
             "merged into one report",
        description="Exit codes: 0 PASS (every claimed MUST exercised and passed), 1 FAIL "
                    "(a MUST failed), 2 bad input, 3 INCOMPLETE (no MUST failed, but one "
                    "was untested or could not be judged), 4 ERROR (the harness's own parts "
                    "failed mid-run; a partial report), 5 nothing can run on this machine (its "
                    "backend is missing), 130 interrupted. A scenario needing a fault plane "
                    "this machine lacks is skipped, its requirements untested.",
    )
    _run_arguments(cert, "where the report and logs go")
    cert.add_argument("--scenario", default=None,
                      help="run this one scenario only: a shipped scenario name (see "
                           "'gossipcert scenarios') or the path of a scenario file (YAML) "
                           "(default: the whole suite)")
    cert.add_argument("--quick", action="store_true",
                      help="run the default scenario alone (about 15 s at 5 nodes); the "
                           "report lists the requirements it leaves untested")
    cert.add_argument("--quiet-s", type=float, default=None,
                      help="length of every quiet phase in seconds (default: the scenario's)")
    cert.add_argument("--partition-s", type=float, default=None,
                      help="how long the partition holds (default: from the timing)")

    contract = sub.add_parser(
        "check-contract",
        help="check an implementation's control API against the contract (OpenAPI) on a "
             "small cluster, in seconds, before certifying it",
        description="Starts a small cluster, calls every endpoint of every declared "
                    "capability (and one of each undeclared capability, which must answer "
                    "501), and checks each response's status and body against "
                    "specs/control-api.yaml. Exit codes: 0 every response matches the "
                    "contract, 1 a response deviates (the table names the endpoint, the "
                    "field, what was expected and what came back), 2 bad input (a bad "
                    "manifest, a node that will not start, a port in use), 4 the harness "
                    "failed, 5 the backend cannot run on this machine, 130 interrupted.",
    )
    contract.add_argument("--impl", default="reference",
                          help="'reference', 'serf', 'serf-local', 'maelstrom:PATH' or the "
                               "path of an implementation manifest (YAML) or of its folder")
    contract.add_argument("--workload", default=None, metavar="broadcast|g-counter",
                          help="with --impl maelstrom:PATH: the Maelstrom workload")
    contract.add_argument("--nodes", type=_positive_int, default=3,
                          help="cluster size (default 3)")
    contract.add_argument("--backend", default="process", choices=list(BACKENDS),
                          help=backends_help("process"))
    contract.add_argument("--json", action="store_true",
                          help="print the deviations as JSON")

    sub.add_parser("scenarios", help="list the shipped scenarios")

    comp = sub.add_parser(
        "compare",
        help="compare certification reports: one summary and one requirement matrix "
             "over several report directories (Markdown, HTML)",
        description="Reads DIR/report.json of each report directory, in the order given. "
                    "Without --markdown or --html, prints the Markdown on stdout. Links "
                    "to each report are relative to the file written. Exit codes: 0 "
                    "written, 2 a DIR holds no readable report.json or an output cannot be "
                    "written.",
    )
    comp.add_argument("dirs", type=Path, nargs="+", metavar="DIR",
                      help="a report directory (holding report.json) of a certify run")
    comp.add_argument("--markdown", type=Path, default=None, metavar="OUT.md",
                      help="write the Markdown page here")
    comp.add_argument("--html", type=Path, default=None, metavar="OUT.html",
                      help="write the HTML page (self-contained, status colours) here")

    rep = sub.add_parser("report", help="re-render a run's reports from its history")
    rep.add_argument("run_dir", type=Path, metavar="DIR",
                     help="a run directory holding history.jsonl")
    pub = sub.add_parser(
        "publish",
        help="copy a run's reports alone (each scenario's included, no histories or logs) "
             "into a directory to commit, attach or upload",
        description="Exit codes: 0 copied, 2 DIR holds no report.json.",
    )
    pub.add_argument("run_dir", type=Path, metavar="DIR", help="a run directory")
    pub.add_argument("out_dir", type=Path, metavar="OUT", help="where the reports go")
    explore = sub.add_parser(
        "explore",
        help="search for a violation with Hypothesis on one real cluster, shrink it there "
             "and save it as a replay file",
        description="Exit codes: 1 a violation was found (a MUST failed; the smallest "
                    "failing sequence is in replay.json), 0 none was found within the budget "
                    "(not a certificate), 2 bad input, 4 the harness failed mid-run, 5 the "
                    "backend cannot run on this machine, 130 interrupted. Only the faults "
                    "this machine offers are drawn.",
    )
    _run_arguments(explore, "where the report, replay file and logs go")
    explore.add_argument("--budget", default="10m",
                         help="wall time for searching and shrinking, e.g. 90s, 10m, 1h "
                              "(default: 10m)")
    explore.add_argument("--max-steps", type=_positive_int, default=12,
                         help="most choices drawn per sequence (default 12)")

    replay = sub.add_parser(
        "replay",
        help="replay a saved sequence (gossipcert-ops/1) on a fresh cluster or in the "
             "simulator, judged by the same checkers",
        description="Exit codes: 1 a MUST still fails, 0 none does, 2 the file cannot be "
                    "replayed, 4 the harness failed mid-run, 5 this machine lacks what the "
                    "sequence needs (its backend or a fault plane), 130 interrupted.",
    )
    replay.add_argument("schedule", type=Path, metavar="FILE",
                        help="a replay file (JSON), e.g. replay.json of an explore run")
    replay.add_argument("--impl", default=None,
                        help="the implementation to replay against (default: the one the "
                             "file records)")
    replay.add_argument("--backend", default=None, choices=list(BACKENDS),
                        help=backends_help("the file's backend"))
    replay.add_argument("--sim", action="store_true",
                        help="replay in the simulator of the reference core (or of the "
                             "seeded defect the file records as its core)")
    replay.add_argument("--report-dir", type=Path, default=None,
                        help="where a real replay's reports and logs go (default: "
                             "gossipcert-runs/<stamp>...)")
    replay.add_argument("--attempts", type=int, default=None, metavar="N",
                        help="fresh clusters to try before a real replay passes: it stops at "
                             "the first that fails a MUST (default 5; the simulator needs 1)")
    _output_arguments(replay, JSON_HELP)

    tox = sub.add_parser("toxiproxy", help="the Toxiproxy-compatible link plane server")
    tox_sub = tox.add_subparsers(dest="toxiproxy_command", required=True, metavar="COMMAND")
    serve = tox_sub.add_parser("serve", help="serve the Toxiproxy HTTP API")
    serve.add_argument("--listen", default="127.0.0.1:8474", help="HOST:PORT of the API")

    images = sub.add_parser("images", help="the Docker images the docker backend runs")
    images_sub = images.add_subparsers(dest="images_command", required=True, metavar="COMMAND")
    images_sub.add_parser("build", help="build the base, reference and harness images "
                                        "(cached by a hash of their inputs)")
    images_sub.add_parser("list", help="list the images gossipcert built")

    doctor = sub.add_parser(
        "doctor", help="which fault planes this machine offers, for which implementations",
        description="Exit codes: 0 this machine offers every fault plane and backend, 5 "
                    "something is missing (scenarios that need it are skipped, their "
                    "requirements untested), 2 bad input.")
    doctor.add_argument("--impl", action="append", default=[], metavar="IMPL",
                        help="also show this implementation (a name or a manifest path; "
                             "repeatable); the reference, and Serf when installed, always")
    doctor.add_argument("--json", action="store_true", help="print JSON for machines")

    clean = sub.add_parser("clean", help="remove what crashed runs left: containers, "
                                         "networks, processes")
    clean.add_argument("--images", action="store_true",
                       help="also remove every image gossipcert built")
    clean.add_argument("--all", action="store_true", dest="everything",
                       help="also remove what runs still going own")
    return parser


def _raise_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


# Commands that only read files: they work on any platform.
PORTABLE_COMMANDS = frozenset({"report", "scenarios", "compare", "publish"})


def not_linux() -> str | None:
    """Why this platform cannot run clusters, or None on Linux. Nodes live on 127.0.0.x
    addresses, the harness reads /proc, and the fault planes use iptables and cgroups."""
    if sys.platform.startswith("linux"):
        return None
    return (f"gossipcert runs clusters on Linux only (127.0.0.x node addresses, /proc, "
            f"iptables, cgroups), not on {sys.platform}; 'gossipcert report', 'compare' and "
            "'gossipcert scenarios' work here, and Docker on Linux runs the rest")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    reason = None if args.command in PORTABLE_COMMANDS else not_linux()
    if reason is not None:
        print(f"gossipcert: error: {reason}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    try:
        if args.command == "certify":
            return _certify(args)
        if args.command == "report":
            from gossipcert.harness.commands.rerender import rerender

            return rerender(args.run_dir, print_line=print)
        if args.command == "publish":
            from gossipcert.harness.run.publish import publish_report

            written = publish_report(args.run_dir, args.out_dir)
            print(f"published {len(written)} files to {args.out_dir}")
            return 0
        if args.command == "explore":
            return _explore(args)
        if args.command == "replay":
            return _replay(args)
        if args.command == "toxiproxy":
            from gossipcert.chaos.toxiproxy import serve

            return serve(args.listen)
        if args.command == "check-contract":
            return _check_contract(args)
        if args.command == "scenarios":
            return _scenarios()
        if args.command == "compare":
            from gossipcert.harness.commands.compare import compare

            return compare(args.dirs, markdown=args.markdown, html_out=args.html)
        if args.command == "images":
            return _images(args)
        if args.command == "clean":
            return _clean(args)
        if args.command == "doctor":
            from gossipcert.harness.commands.doctor import doctor

            return doctor(args.impl, as_json=args.json)
    except USER_ERRORS as exc:
        print(f"gossipcert: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("gossipcert: interrupted; everything the run started was stopped",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a defect of the harness itself: one line, never a traceback
        print(f"gossipcert: internal error: {describe(exc)} (traceback in "
              f"{_save_traceback()})", file=sys.stderr)
        return EXIT_HARNESS_ERROR
    return EXIT_BAD_INPUT


def _save_traceback() -> str:
    """Write the exception being handled to a file for a bug report; its path."""
    fd, path = tempfile.mkstemp(prefix="gossipcert-crash-", suffix=".log")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        traceback.print_exc(file=f)
    return path


def _impl(args: argparse.Namespace) -> str:
    """``--impl``, with ``--workload`` folded into a Maelstrom node's (the one string every
    later step, replay files included, names the implementation by)."""
    if args.workload is None:
        return str(args.impl)
    from gossipcert.harness.manifest import maelstrom_impl

    return maelstrom_impl(args.impl, args.workload)


def _certify(args: argparse.Namespace) -> int:
    from gossipcert.harness.run.certify import CertifyOptions, certify

    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    console = Console(args.verbosity)
    try:
        result = certify(CertifyOptions(
            impl=_impl(args),
            backend=args.backend,
            nodes=args.nodes,
            seed=args.seed,
            report_dir=args.report_dir,
            base_port=args.base_port,
            toxiproxy_url=args.toxiproxy_url,
            quiet_s=args.quiet_s,
            partition_s=args.partition_s,
            scenario=args.scenario,
            quick=args.quick,
            profile=args.profile,
            clock_skew_ms=args.clock_skew_ms,
            progress=console,
        ))
    finally:
        console.close()
    report = result.report
    failure = report.get("harness_error")
    if failure:
        print(f"gossipcert: error: the harness failed mid-run ({failure['message']}); the "
              f"partial report in {result.report_dir} certifies nothing", file=sys.stderr)
    if args.json:
        print(json.dumps(result_document("certify", report, result.report_dir,
                                         result.exit_code), indent=2))
        return result.exit_code
    if args.verbosity == QUIET:
        print(f"verdict: {report['verdict'].upper()}")
        return result.exit_code
    for req in report["requirements"]:
        figure = "" if req.get("measured") is None else f"  {margin_text(req)}"
        print(f"{req['status'].upper():>14}  {req['id']:<22} {req['level']:<6}{figure}")
        summary = (req.get("evidence") or {}).get("summary")
        if args.verbosity >= VERBOSE and summary and req["status"] != "not-claimed":
            print(f"{'':>16}{summary}")
    cert = report["certificate"]
    print(f"certified: {', '.join(cert['capabilities_certified']) or 'nothing'}; "
          f"not claimed: {', '.join(cert['capabilities_not_claimed']) or 'none'}; "
          f"scenarios run: {', '.join(cert['scenarios'])}")
    if cert["untested"]:
        print(f"untested: {', '.join(cert['untested'])}")
    from gossipcert.harness.run.report import preflight_lines

    for line in preflight_lines(report):
        print(f"not available here: {line}")
    print(f"verdict: {report['verdict'].upper()}")
    print(f"report: {result.report_dir / 'report.html'} "
          "(and report.md, report.json, report.junit.xml, badge.svg)")
    return result.exit_code


# The reports a run directory holds (harness.run.reporting writes them), by kind.
REPORT_FILES = {"html": "report.html", "markdown": "report.md", "json": "report.json",
                "junit": "report.junit.xml", "badge": "badge.svg"}


def result_document(command: str, report: Mapping[str, Any] | None, report_dir: Path | None,
                    exit_code: int, *, implementation: str | None = None,
                    verdicts: Sequence[Any] = (), summary: str | None = None,
                    replay_file: Path | None = None) -> dict[str, Any]:
    """What ``--json`` prints (specs/cli-result.schema.json): the verdict and certificate
    of the report, where it and its siblings were written, and every requirement's
    status with its measured value against its bound. Without a report (a replay in the
    simulator), the verdicts say it."""
    if report is not None:
        requirements = [
            {"id": r["id"], "level": r.get("level"), "status": r["status"],
             "measured": r.get("measured"), "bound": r.get("bound"), "unit": r.get("unit"),
             "scenario": r.get("scenario")}
            for r in report["requirements"]]
        verdict = report["verdict"]
    else:
        requirements = [
            {"id": v.id, "level": v.level, "status": v.status, "measured": v.measured,
             "bound": v.bound, "unit": v.unit, "scenario": v.scenario or None}
            for v in verdicts]
        verdict = "fail" if exit_code == 1 else "pass"
    return {
        "command": command,
        "gossipcert_version": gossipcert_version(),
        "implementation": (report or {}).get("implementation") or implementation,
        "verdict": verdict,
        "exit_code": exit_code,
        "seed": (report or {}).get("seed"),
        "certificate": (report or {}).get("certificate"),
        "report_dir": None if report_dir is None else str(report_dir),
        "reports": {} if report_dir is None else {
            kind: str(report_dir / name) for kind, name in REPORT_FILES.items()
            if (report_dir / name).exists()},
        "harness_error": ((report or {}).get("harness_error") or {}).get("message"),
        "summary": summary,
        "replay_file": None if replay_file is None else str(replay_file),
        "requirements": requirements,
    }


def _explore(args: argparse.Namespace) -> int:
    from gossipcert.harness.errors import GossipcertError
    from gossipcert.harness.manifest import maelstrom_workload
    from gossipcert.harness.run.explore import ExploreOptions, explore
    from gossipcert.harness.run.search import parse_budget

    impl = _impl(args)
    if maelstrom_workload(impl) == "g-counter":
        raise GossipcertError("explore writes each example to fresh CRDT names, and a Maelstrom "
                              "g-counter node keeps one counter for its life: certify it instead")
    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    console = Console(args.verbosity)
    try:
        result = explore(ExploreOptions(
            impl=impl,
            backend=args.backend,
            budget_s=parse_budget(args.budget),
            nodes=args.nodes,
            seed=args.seed,
            report_dir=args.report_dir,
            profile=args.profile,
            clock_skew_ms=args.clock_skew_ms,
            max_steps=args.max_steps,
            base_port=args.base_port,
            toxiproxy_url=args.toxiproxy_url,
            progress=console,
        ))
    finally:
        console.close()
    if args.json:
        print(json.dumps(result_document(
            "explore", result.report, result.report_dir if result.report else None,
            result.exit_code, implementation=impl, summary=result.summary,
            replay_file=result.replay_path), indent=2))
        return result.exit_code
    if args.verbosity == QUIET:
        print(result.summary)
        return result.exit_code
    return _explore_lines(result)


def _explore_lines(result: ExploreResult) -> int:
    """What explore found: the failing requirements and the smallest failing sequence."""
    print(result.summary)
    outcome = result.outcome
    if outcome.best is not None and result.replay_path is not None:
        for v in outcome.best.failed:
            print(f"{v.status.upper():>6}  {v.id:<20} {v.evidence}")
        print(f"minimal failing sequence ({len(outcome.best.run.ops)} operations):")
        for op in outcome.best.run.ops:
            print(f"  {op.describe()}")
        print(f"replay: gossipcert replay {result.replay_path}")
    if result.report is not None:
        print(f"report: {result.report_dir / 'report.html'} "
              "(and report.md, report.json, report.junit.xml, badge.svg)")
    return result.exit_code


def _replay(args: argparse.Namespace) -> int:
    from gossipcert.harness.run.replay import ReplayOptions, replay_outcome

    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    console = Console(args.verbosity)
    try:
        outcome = replay_outcome(args.schedule, ReplayOptions(
            impl=args.impl, backend=args.backend, sim=args.sim, report_dir=args.report_dir,
            attempts=args.attempts, progress=console))
    finally:
        console.close()
    if args.json:
        report_file = None if outcome.report_dir is None else outcome.report_dir / "report.json"
        report = (json.loads(report_file.read_text(encoding="utf-8"))
                  if report_file is not None and report_file.exists() else None)
        print(json.dumps(result_document(
            "replay", report, outcome.report_dir, outcome.exit_code,
            implementation=outcome.implementation, verdicts=outcome.verdicts,
            summary=outcome.lines[0], replay_file=args.schedule), indent=2))
        return outcome.exit_code
    for line in outcome.lines:  # -q keeps the verdict line only
        if args.verbosity > QUIET or line.startswith("verdict:"):
            print(line)
    return outcome.exit_code


def _check_contract(args: argparse.Namespace) -> int:
    import json

    from gossipcert.harness.run.contract_check import check_contract, deviation_table

    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    result = check_contract(_impl(args), nodes=args.nodes, backend=args.backend)
    if args.json:
        print(json.dumps(result.as_json(), indent=2))
    elif result.deviations:
        for line in deviation_table(result.deviations):
            print(line)
        print(f"check-contract: {len(result.deviations)} deviation(s) in {result.calls} "
              f"responses of {result.impl}")
    else:
        print(f"check-contract: all {result.calls} responses of {result.impl} match the "
              "contract")
    return result.exit_code


def _scenarios() -> int:
    from gossipcert.harness.workloads.scenario import load_scenario, shipped_scenarios

    for name in shipped_scenarios():
        scenario = load_scenario(name)
        kinds = ", ".join(dict.fromkeys(s["kind"] for s in scenario.steps))
        print(f"{name:<15} {len(scenario.steps):>2} steps ({kinds}); "
              f"at least {scenario.min_nodes} nodes")
    return 0


def _images(args: argparse.Namespace) -> int:
    import time

    from gossipcert.harness.drivers.images import (
        build_harness,
        build_reference,
        docker_client,
        project_images,
    )

    client = docker_client()
    if args.images_command == "list":
        for image in project_images(client):
            size = image.attrs.get("Size", 0) / 1e6
            print(f"{', '.join(image.tags) or image.short_id}  {size:.0f} MB")
        return 0
    t0 = time.monotonic()

    def progress(line: str) -> None:
        print(f"[{time.monotonic() - t0:6.1f}s] {line}", flush=True)

    print(build_reference(client, progress))
    print(build_harness(client, progress))
    return 0


def _clean(args: argparse.Namespace) -> int:
    from gossipcert.harness.drivers.clean import clean

    swept = clean(images=args.images, everything=args.everything)
    for name in swept.containers:
        print(f"container {name}")
    for name in swept.networks:
        print(f"network {name}")
    for pid in swept.processes:
        print(f"process {pid}")
    for tag in swept.images:
        print(f"image {tag}")
    print(f"gossipcert clean: {swept.summary()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
