"""Outputs of the core, drained by the driver with `Node.take_effects()`."""

from __future__ import annotations

from dataclasses import dataclass

from gossipcert.reference_node.core.events import Event
from gossipcert.reference_node.core.messages import Message, Update


@dataclass(frozen=True)
class SendMessage:
    """Send `message` to a peer. The driver dials its route for `to_id` when it has one,
    else `address` (seeds have no known id yet, so `to_id` is None for them)."""

    to_id: str | None
    address: str
    message: Message


@dataclass(frozen=True)
class Observed:
    """An event the node recorded (also kept in its event log)."""

    event: Event


@dataclass(frozen=True)
class Persist:
    """A local write the driver must make durable before it acknowledges the client
    call (with a data dir: appended to the write log and fsynced)."""

    update: Update


Effect = SendMessage | Observed | Persist
