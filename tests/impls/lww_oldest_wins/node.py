"""The reference node with a seeded defect: last-writer-wins keeps the oldest write."""

import sys

from reference_node.__main__ import main
from reference_node.core.kv import KvStore
from reference_node.core.messages import KvUpdate


def _oldest_wins(self: KvStore, entry: KvUpdate) -> bool:
    known = self._entries.get(entry.key)
    if known is not None and known.version <= entry.version:
        return False
    self._entries[entry.key] = entry
    self._digest = None
    return True


KvStore.merge = _oldest_wins  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(main())
