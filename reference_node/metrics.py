"""Traffic counters for `GET /v1/metrics`, overall and per message type."""

from __future__ import annotations

from collections import defaultdict
from typing import Any


class Metrics:
    def __init__(self) -> None:
        self.messages_sent = 0
        self.messages_received = 0
        self.bytes_sent = 0
        self.bytes_received = 0
        self.messages_dropped = 0
        self.frames_rejected = 0
        self.connections_opened = 0
        self.connect_failures = 0
        self._by_type: defaultdict[str, dict[str, int]] = defaultdict(
            lambda: {
                "messages_sent": 0,
                "messages_received": 0,
                "bytes_sent": 0,
                "bytes_received": 0,
            }
        )

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
        return {
            "messages_sent": self.messages_sent,
            "messages_received": self.messages_received,
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "messages_dropped": self.messages_dropped,
            "frames_rejected": self.frames_rejected,
            "connections_opened": self.connections_opened,
            "connect_failures": self.connect_failures,
            "by_type": {kind: dict(row) for kind, row in sorted(self._by_type.items())},
        }
