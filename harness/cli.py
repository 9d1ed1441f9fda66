"""The ``gossipcert`` command line."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from harness.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, GossipcertError


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gossipcert",
        description="Certify gossip implementations for convergence, failure detection "
                    "and conflict resolution under real faults.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    cert = sub.add_parser("certify", help="run the certification scenario and write a report")
    cert.add_argument("--impl", default="reference",
                      help="'reference' or the path of an implementation manifest (YAML)")
    cert.add_argument("--backend", default="process", choices=["process"],
                      help="where nodes run (default: local processes)")
    cert.add_argument("--nodes", type=_positive_int, default=5, help="cluster size (default 5)")
    cert.add_argument("--seed", type=int, default=None,
                      help="seed of every random choice in the run (default: random, reported)")
    cert.add_argument("--report-dir", type=Path, default=None,
                      help="where the report and logs go (default: gossipcert-runs/<stamp>...)")
    cert.add_argument("--base-port", type=_port, default=None,
                      help="fixed ports: gossip on BASE, control on BASE+1 of each node's "
                           "address (default: free ports)")
    cert.add_argument("--toxiproxy-url", default=None,
                      help="use this Toxiproxy (or compatible) server instead of starting ours")
    cert.add_argument("--quiet-s", type=float, default=3.0,
                      help="length of the quiet phase in seconds (default 3)")
    cert.add_argument("--partition-s", type=float, default=None,
                      help="how long the partition holds (default: from the timing)")

    tox = sub.add_parser("toxiproxy", help="the Toxiproxy-compatible link plane server")
    tox_sub = tox.add_subparsers(dest="toxiproxy_command", required=True, metavar="COMMAND")
    serve = tox_sub.add_parser("serve", help="serve the Toxiproxy HTTP API")
    serve.add_argument("--listen", default="127.0.0.1:8474", help="HOST:PORT of the API")
    return parser


def _raise_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "certify":
            return _certify(args)
        if args.command == "toxiproxy":
            from chaos.toxiproxy import serve

            return serve(args.listen)
    except GossipcertError as exc:
        print(f"gossipcert: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("gossipcert: interrupted; everything the run started was stopped",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_BAD_INPUT


def _certify(args: argparse.Namespace) -> int:
    from harness.certify import CertifyOptions, certify, print_progress

    signal.signal(signal.SIGTERM, _raise_on_sigterm)
    result = certify(CertifyOptions(
        impl=args.impl,
        backend=args.backend,
        nodes=args.nodes,
        seed=args.seed,
        report_dir=args.report_dir,
        base_port=args.base_port,
        toxiproxy_url=args.toxiproxy_url,
        quiet_s=args.quiet_s,
        partition_s=args.partition_s,
        progress=print_progress,
    ))
    report = result.report
    for req in report["requirements"]:
        measured = req.get("measured")
        bound = req.get("bound")
        unit = req.get("unit", "")
        figure = "" if measured is None else f"  measured {measured} vs bound {bound} {unit}"
        print(f"{req['status'].upper():>14}  {req['id']:<22} {req['level']:<6}{figure}")
    print(f"verdict: {report['verdict'].upper()}")
    print(f"report: {result.report_dir / 'report.md'} (and report.json)")
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
