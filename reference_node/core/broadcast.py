"""Delivered broadcasts: each id once, with its origin, payload and delivery time."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from gossipcert.reference_node.core.messages import BroadcastUpdate


@dataclass(frozen=True)
class Delivery:
    id: str
    origin: str
    payload: Any
    at_ms: int


class BroadcastStore:
    def __init__(self, recent_limit: int) -> None:
        self._delivered: dict[str, Delivery] = {}
        self._recent: deque[BroadcastUpdate] = deque(maxlen=max(0, recent_limit))

    def __contains__(self, broadcast_id: object) -> bool:
        return broadcast_id in self._delivered

    def deliver(self, update: BroadcastUpdate, now_ms: int) -> Delivery | None:
        """Record a first delivery; None when the id was already delivered."""
        if update.id in self._delivered:
            return None
        delivery = Delivery(update.id, update.origin, update.payload, now_ms)
        self._delivered[update.id] = delivery
        self._recent.append(update)
        return delivery

    def delivered(self) -> list[Delivery]:
        return list(self._delivered.values())

    def recent(self) -> tuple[BroadcastUpdate, ...]:
        """The bounded tail that push-pull carries to repair missed rumors."""
        return tuple(self._recent)
