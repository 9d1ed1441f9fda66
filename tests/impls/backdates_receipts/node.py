"""The reference node with the seeded defect of ``defect.py`` (see tests/impls/README.md).

``--honest-stamps`` (taken out before the node parses its arguments) runs the same slow
node stamping each delivery with the time it really happened.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from defect import installed  # noqa: E402
from gossipcert.reference_node.__main__ import main  # noqa: E402

HONEST_FLAG = "--honest-stamps"

if __name__ == "__main__":
    argv = sys.argv[1:]
    honest = HONEST_FLAG in argv
    with installed(honest=honest):
        sys.exit(main([a for a in argv if a != HONEST_FLAG]))
