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
from gossipcert.reference_node.api import split_address
from gossipcert.reference_node.control import build_app
from gossipcert.reference_node.core.codec import DecodeError
from gossipcert.reference_node.core.config import MODES, NodeConfig
from gossipcert.reference_node.core.keyring import Keyring, KeyringError, parse_key
from gossipcert.reference_node.core.node import Node
from gossipcert.reference_node.metrics import Metrics
from gossipcert.reference_node.persist import (
    DataDir,
    PersistError,
    load_keyring_file,
    restore_node,
)
from gossipcert.reference_node.runtime import GossipRuntime, now_ms

PROG = "reference_node"
# memberlist's LAN profile (specs/timing-profiles.yaml).
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
        help="PEER_ID=HOST:PORT dial override over TCP (repeatable)",
    )
    parser.add_argument(
        "--udp-route",
        action="append",
        default=[],
        type=_route,
        help="PEER_ID=HOST:PORT where that peer's datagrams go (repeatable); a peer with a "
        "--route but no --udp-route gets everything over TCP",
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
        "--awareness-max-multiplier": LAN.awareness_max_multiplier,
        "--reap-after-ms": LAN.reap_after_ms,
    }
    for flag, default in ints.items():
        parser.add_argument(flag, type=int, default=default)
    parser.add_argument("--rng-seed", type=int, default=None)
    parser.add_argument(
        "--mode", choices=MODES, default=LAN.mode, help="dissemination: push, pull or both"
    )
    parser.add_argument(
        "--pull-fanout",
        type=int,
        default=None,
        help="peers pulled from a round (default: fanout in pull mode, 1 in push-pull)",
    )
    parser.add_argument("--conflict-policy", choices=("lww", "mv"), default=LAN.conflict_policy)
    parser.add_argument(
        "--tombstone-gc-ms",
        type=int,
        default=LAN.tombstone_gc_ms,
        help="deleted keys are forgotten this long after the delete; must exceed the "
        "longest time a node can be out of touch",
    )
    parser.add_argument("--merkle-depth", type=int, default=LAN.merkle_depth)
    security = parser.add_mutually_exclusive_group()
    security.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="BASE64",
        help="AES-GCM gossip key of 16, 24 or 32 bytes (repeatable; the first seals)",
    )
    security.add_argument(
        "--keyring-file",
        metavar="PATH",
        help="JSON array of base64 keys, primary first; keyring changes are saved to it",
    )
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        help="keep the incarnation and replicated state here across restarts",
    )
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
        awareness_max_multiplier=args.awareness_max_multiplier,
        reap_after_ms=args.reap_after_ms,
        mode=args.mode,
        pull_fanout=args.pull_fanout,
        conflict_policy=args.conflict_policy,
        tombstone_gc_ms=args.tombstone_gc_ms,
        merkle_depth=args.merkle_depth,
        # Seeding from the id alone would make every run probe in the same order.
        rng_seed=args.rng_seed if args.rng_seed is not None else int.from_bytes(os.urandom(8)),
    )


def _reason(exc: OSError) -> str:
    if exc.errno:
        return os.strerror(exc.errno).lower()
    return str(exc) or type(exc).__name__


def _keyring(args: argparse.Namespace) -> Keyring | None:
    """None when no key is given: gossip stays plaintext."""
    try:
        texts = load_keyring_file(args.keyring_file) if args.keyring_file else args.key
        if not texts:
            return None
        return Keyring(parse_key(text) for text in texts)
    except KeyringError as exc:
        source = f"keyring file {args.keyring_file}" if args.keyring_file else "--key"
        raise StartupError(f"{source}: {exc}") from exc
    except PersistError as exc:
        raise StartupError(str(exc)) from exc


def _restore(node: Node, data_dir: DataDir) -> None:
    """Take back what the last run kept; the new life starts above its incarnation."""
    try:
        restore_node(node, data_dir.load(), now_ms())
    except (DecodeError, TypeError, AttributeError) as exc:
        raise StartupError(f"data dir {data_dir.path} holds unreadable state: {exc}") from exc


async def serve(args: argparse.Namespace) -> int:
    keyring = _keyring(args)
    data_dir: DataDir | None = None
    if args.data_dir:
        try:
            data_dir = DataDir.open(args.data_dir)
        except PersistError as exc:
            raise StartupError(str(exc)) from exc
    try:
        return await _serve(args, keyring, data_dir)
    finally:
        if data_dir is not None:
            data_dir.close()


async def _serve(
    args: argparse.Namespace, keyring: Keyring | None, data_dir: DataDir | None
) -> int:
    runtime = GossipRuntime(dict(args.route), Metrics(), keyring, dict(args.udp_route))
    runtime.keyring_file = args.keyring_file
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
    if data_dir is not None:
        try:
            _restore(node, data_dir)
        except (StartupError, PersistError) as exc:
            await runtime.close()
            raise StartupError(str(exc)) from exc
        runtime.data_dir = data_dir
    try:
        runtime.start(node)  # writes the new incarnation before anything is sent
    except PersistError as exc:
        await runtime.close()
        raise StartupError(str(exc)) from exc
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
        _keyring(args)
    except ValueError as exc:
        _fail(str(exc))
    except StartupError as exc:
        _fail(str(exc))
    try:
        return asyncio.run(serve(args))
    except StartupError as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
