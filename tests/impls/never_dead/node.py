"""The reference node with a seeded defect: a suspected member is never declared dead."""

import sys

from reference_node.__main__ import main
from reference_node.core.suspicion import Suspicion


def _never(self: Suspicion) -> int:
    return self.started_ms + 10**12


Suspicion.deadline_ms = _never  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(main())
