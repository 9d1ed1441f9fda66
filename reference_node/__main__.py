"""`python -m reference_node`: run one gossip node with its control API.

Start-up failures (bad flag, address in use) print one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from typing import NoReturn

from aiohttp import web

from reference_node.control import build_app
from reference_node.core.config import NodeConfig
from reference_node.core.node import Node
from reference_node.metrics import Metrics
from reference_node.runtime import GossipRuntime, now_ms, split_address

PROG = "reference_node"
# memberlist's LAN profile (REFERENCE.md).
LAN = NodeConfig(node_id="-", gossip_address="-")


class StartupError(Exception):
    """Reported as one line on stderr, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        _fail(message)


def _fail(message: str) -> NoReturn:
    print(f"{PROG}: {message}", file=sys.stderr)
    sys.exit(2)


def _address(text: str) -> str:
    try:
        split_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return text


def _route(text: str) -> tuple[str, str]:
    peer, sep, address = text.partition("=")
    if not sep or not peer:
        raise argparse.ArgumentTypeError(f"expected PEER_ID=HOST:PORT, got {text!r}")
    return peer, _address(address)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="gossipcert reference gossip node")
    parser.add_argument("--id", required=True, help="node id")
    parser.add_argument("--gossip", required=True, type=_address, help="gossip HOST:PORT")
    parser.add_argument("--control", required=True, type=_address, help="control HOST:PORT")
    parser.add_argument("--advertise", type=_address, help="gossip address told to peers")
    parser.add_argument("--seed", action="append", default=[], type=_address)
    parser.add_argument(
        "--route",
        action="append",
        default=[],
        type=_route,
        help="PEER_ID=HOST:PORT dial override (repeatable)",
    )
    ints = {
        "--probe-interval-ms": LAN.probe_interval_ms,
        "--probe-timeout-ms": LAN.probe_timeout_ms,
        "--indirect-checks": LAN.indirect_checks,
        "--suspicion-mult": LAN.suspicion_mult,
        "--suspicion-max-timeout-mult": LAN.suspicion_max_timeout_mult,
        "--gossip-interval-ms": LAN.gossip_interval_ms,
        "--fanout": LAN.fanout,
        "--retransmit-mult": LAN.retransmit_mult,
        "--push-pull-interval-ms": LAN.push_pull_interval_ms,
    }
    for flag, default in ints.items():
        parser.add_argument(flag, type=int, default=default)
    parser.add_argument("--rng-seed", type=int, default=None)
    parser.add_argument("--log-level", default="WARNING")
    return parser


def _config(args: argparse.Namespace, gossip_address: str) -> NodeConfig:
    return NodeConfig(
        node_id=args.id,
        gossip_address=gossip_address,
        probe_interval_ms=args.probe_interval_ms,
        probe_timeout_ms=args.probe_timeout_ms,
        indirect_checks=args.indirect_checks,
        suspicion_mult=args.suspicion_mult,
        suspicion_max_timeout_mult=args.suspicion_max_timeout_mult,
        gossip_interval_ms=args.gossip_interval_ms,
        fanout=args.fanout,
        retransmit_mult=args.retransmit_mult,
        push_pull_interval_ms=args.push_pull_interval_ms,
        # Seeding from the id alone would make every run probe in the same order.
        rng_seed=args.rng_seed if args.rng_seed is not None else int.from_bytes(os.urandom(8)),
    )


def _reason(exc: OSError) -> str:
    if exc.errno:
        return os.strerror(exc.errno).lower()
    return str(exc) or type(exc).__name__


async def serve(args: argparse.Namespace) -> int:
    runtime = GossipRuntime(dict(args.route), Metrics())
    gossip_host, gossip_port = split_address(args.gossip)
    try:
        bound = await runtime.listen(gossip_host, gossip_port)
    except OSError as exc:
        raise StartupError(f"cannot listen on {args.gossip} (gossip): {_reason(exc)}") from exc
    try:
        node = Node(_config(args, args.advertise or bound), now_ms())
    except ValueError as exc:
        await runtime.close()
        raise StartupError(str(exc)) from exc
    runtime.start(node)
    if args.seed:
        runtime.call(lambda now: node.join(args.seed, now))

    runner = web.AppRunner(build_app(runtime), access_log=None, handle_signals=False)
    await runner.setup()
    control_host, control_port = split_address(args.control)
    try:
        await web.TCPSite(runner, control_host, control_port).start()
    except OSError as exc:
        await runner.cleanup()
        await runtime.close()
        raise StartupError(f"cannot listen on {args.control} (control): {_reason(exc)}") from exc

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await runtime.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = getattr(logging, str(args.log_level).upper(), None)
    if not isinstance(level, int):
        _fail(f"unknown log level {args.log_level!r}")
    logging.basicConfig(
        level=level, format=f"%(created).3f {PROG} {args.id}: %(levelname)s %(message)s"
    )
    try:
        _config(args, args.gossip)  # validate the timing flags before binding anything
    except ValueError as exc:
        _fail(str(exc))
    try:
        return asyncio.run(serve(args))
    except StartupError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
