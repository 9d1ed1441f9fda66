"""``python -m chaos.toxiproxy serve --listen HOST:PORT``: the server without the harness CLI."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from gossipcert.chaos.toxiproxy.server import serve


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos.toxiproxy")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve_cmd = sub.add_parser("serve", help="serve the Toxiproxy HTTP API")
    serve_cmd.add_argument("--listen", default="127.0.0.1:8474", help="HOST:PORT of the API")
    args = parser.parse_args(argv)
    return serve(args.listen)


if __name__ == "__main__":
    sys.exit(main())
