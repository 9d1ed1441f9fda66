"""The reference node, run slower than its manifest declares (see tests/impls/README.md).

The manifest declares the reference timing and hands it to this script as usual; the
script multiplies the probe, gossip and push-pull intervals by ``SLOWDOWN`` before the
real node parses them: a node whose timers tick in the wrong unit. It is a correct gossip
node in every other way, just far slower than every bound derived from its declared
timing assumes. Only the traffic the harness relays shows it.
"""

import sys

from gossipcert.reference_node.__main__ import main

SLOWDOWN = 1000
SCALED = ("--probe-interval-ms", "--gossip-interval-ms", "--push-pull-interval-ms")


def slowed(argv: list[str]) -> list[str]:
    out = list(argv)
    for i, word in enumerate(out[:-1]):
        if word in SCALED:
            out[i + 1] = str(int(out[i + 1]) * SLOWDOWN)
    return out


if __name__ == "__main__":
    sys.exit(main(slowed(sys.argv[1:])))
