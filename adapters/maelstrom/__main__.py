"""``python -m gossipcert.adapters.maelstrom``: one Maelstrom node behind the v1 contract.

Starts the node binary as a child that dies with the bridge, hands it ``init`` (its id and
the ids of the dial map's peers) and, for the broadcast workload, a ``topology`` in which
every node neighbours every other; then serves the control API and carries the node's
messages to the other bridges until SIGTERM or SIGINT. Exit code 2 (one line on stderr)
when the node cannot start or does not answer ``init``; 1 when it exits later.
"""

from __future__ import annotations

import argparse
import sys

from gossipcert.adapters.common import address_arg
from gossipcert.adapters.maelstrom.bridge import WORKLOADS, Bridge, main_sync, node_command


def _route(text: str) -> tuple[str, tuple[str, int]]:
    peer, sep, addr = text.partition("=")
    if not sep or not peer:
        raise argparse.ArgumentTypeError(f"expected PEER=HOST:PORT, got {text!r}")
    return peer, address_arg(addr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gossipcert.adapters.maelstrom",
                                     description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--id", required=True, help="this node's id")
    parser.add_argument("--gossip", required=True, type=address_arg,
                        help="where this bridge takes its peers' messages, HOST:PORT")
    parser.add_argument("--control", required=True, type=address_arg,
                        help="where the control API listens, HOST:PORT")
    parser.add_argument("--route", action="append", default=[], type=_route,
                        help="PEER=HOST:PORT: how to reach a peer's bridge (repeatable)")
    parser.add_argument("--workload", choices=WORKLOADS, default="broadcast",
                        help="the Maelstrom workload the node implements")
    parser.add_argument("--node", required=True, help="the Maelstrom node binary")
    parser.add_argument("--rpc-timeout-ms", type=float, default=5000.0,
                        help="how long a request to the node may go unanswered (default 5000)")
    args = parser.parse_args(argv)
    try:
        command = node_command(args.node)
    except ValueError as exc:
        print(f"maelstrom bridge: {exc}", file=sys.stderr)
        return 2
    routes = dict(args.route)
    if args.id in routes:
        parser.error(f"--route names this node's own id {args.id!r}")
    bridge = Bridge(args.id, routes, args.workload, command,
                    rpc_timeout_s=args.rpc_timeout_ms / 1000.0)
    return main_sync(bridge, args.gossip, args.control)


if __name__ == "__main__":
    sys.exit(main())
