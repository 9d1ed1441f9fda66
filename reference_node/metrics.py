"""Traffic counters for `GET /v1/metrics`: overall (the contract's four), by message
type, by direction, and dropped frames by reason."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

DROP_REASONS = (
    # inbound frames
    "decrypt_failed",
    "replayed",
    "stale",
    "unencrypted",
    "malformed",
    "oversized",
    "truncated",
    # outbound messages
    "send_buffer_full",
    "connect_failed",
    "unencodable",
)


class Metrics:
    def __init__(self) -> None:
        self.messages_sent = 0
        self.messages_received = 0
        self.bytes_sent = 0
        self.bytes_received = 0
        self.connections_opened = 0
        self.connect_failures = 0
        # Of the messages above, those that travelled as datagrams; and inbound datagrams
        # that were no message (also counted by reason in ``dropped``).
        self.datagrams_sent = 0
        self.datagrams_received = 0
        self.datagrams_dropped = 0
        self.dropped: Counter[str] = Counter({reason: 0 for reason in DROP_REASONS})
        self._by_type: defaultdict[str, dict[str, int]] = defaultdict(
            lambda: {
                "messages_sent": 0,
                "messages_received": 0,
                "bytes_sent": 0,
                "bytes_received": 0,
            }
        )

    @property
    def frames_rejected(self) -> int:
        """Inbound frames dropped for any reason."""
        return sum(self.dropped[r] for r in DROP_REASONS[:7])

    @property
    def messages_dropped(self) -> int:
        """Outbound messages that never left."""
        return sum(self.dropped[r] for r in DROP_REASONS[7:])

    def drop(self, reason: str, count: int = 1) -> None:
        self.dropped[reason] += count

    def sent(self, kind: str, size: int) -> None:
        self.messages_sent += 1
        self.bytes_sent += size
        row = self._by_type[kind]
        row["messages_sent"] += 1
        row["bytes_sent"] += size

    def received(self, kind: str, size: int) -> None:
        self.messages_received += 1
        self.bytes_received += size
        row = self._by_type[kind]
        row["messages_received"] += 1
        row["bytes_received"] += size

    def snapshot(self) -> dict[str, Any]:
        by_type = {kind: dict(row) for kind, row in sorted(self._by_type.items())}
        by_direction = {
            direction: {
                kind: {"messages": row[f"messages_{direction}"], "bytes": row[f"bytes_{direction}"]}
                for kind, row in by_type.items()
                if row[f"messages_{direction}"]
            }
            for direction in ("sent", "received")
        }
        return {
            "messages_sent": self.messages_sent,
            "messages_received": self.messages_received,
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "messages_dropped": self.messages_dropped,
            "frames_rejected": self.frames_rejected,
            "connections_opened": self.connections_opened,
            "connect_failures": self.connect_failures,
            "datagrams_sent": self.datagrams_sent,
            "datagrams_received": self.datagrams_received,
            "datagrams_dropped": self.datagrams_dropped,
            "dropped": dict(sorted(self.dropped.items())),
            "by_type": by_type,
            "by_direction": by_direction,
        }
