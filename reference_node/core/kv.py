"""Last-writer-wins key/value store with tombstones.

The interface (`entries`, `merge`, `digest`) is what a Merkle anti-entropy layer needs
later: it can hash `entries()` into buckets and feed differences back through `merge`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from reference_node.core.messages import KvUpdate


class KvStore:
    def __init__(self) -> None:
        self._entries: dict[str, KvUpdate] = {}
        self._digest: str | None = None

    def get(self, key: str) -> KvUpdate | None:
        """The winning entry for `key`, tombstone included."""
        return self._entries.get(key)

    def entries(self) -> Iterable[KvUpdate]:
        return self._entries.values()

    def merge(self, entry: KvUpdate) -> bool:
        """Keep `entry` if it wins under LWW; True when the store changed."""
        known = self._entries.get(entry.key)
        if known is not None and known.version >= entry.version:
            return False
        self._entries[entry.key] = entry
        self._digest = None
        return True

    def live(self) -> dict[str, Any]:
        return {k: e.value for k, e in sorted(self._entries.items()) if not e.deleted}

    def digest(self) -> str:
        """sha256 over the sorted visible (key, value) pairs: equal visible state gives
        an equal digest whatever the timestamps or tombstones behind it."""
        if self._digest is None:
            items = [[k, v] for k, v in self.live().items()]
            canonical = json.dumps(items, sort_keys=True, separators=(",", ":"))
            self._digest = hashlib.sha256(canonical.encode()).hexdigest()
        return self._digest
