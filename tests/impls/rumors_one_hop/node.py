"""The reference node with the seeded defect of ``defect.py`` (see tests/impls/README.md)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from defect import installed  # noqa: E402
from gossipcert.reference_node.__main__ import main  # noqa: E402

if __name__ == "__main__":
    with installed():
        sys.exit(main())
