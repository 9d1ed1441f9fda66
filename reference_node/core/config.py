"""Tunables of one node, frozen so a running core never sees them change."""

from __future__ import annotations

from dataclasses import dataclass

MODES = ("push", "pull", "push-pull")


@dataclass(frozen=True)
class NodeConfig:
    """Timing and sizing of the protocol.

    Defaults are memberlist's LAN profile (specs/timing-profiles.yaml), except where a field has no
    memberlist counterpart.
    """

    node_id: str
    gossip_address: str
    probe_interval_ms: int = 1000
    probe_timeout_ms: int = 500
    indirect_checks: int = 3
    suspicion_mult: int = 4
    suspicion_max_timeout_mult: int = 6
    gossip_interval_ms: int = 200
    fanout: int = 3
    retransmit_mult: int = 4
    push_pull_interval_ms: int = 30_000
    # Every Nth push-pull round also exchanges state with a random dead member, so that
    # halves which declared each other dead merge again after a partition heals.
    dead_push_pull_every: int = 1
    join_retry_ms: int = 200
    # How long a leaving node keeps gossiping its `left` before it goes quiet.
    leave_linger_ms: int | None = None
    # Budget for piggybacked updates on one message (bytes of encoded JSON).
    max_piggyback_bytes: int = 16 * 1024
    # How many recently delivered broadcasts travel in a push-pull state.
    push_pull_broadcasts: int = 256
    # Lifeguard: probe interval and timeout stretch by up to this factor (memberlist's
    # AwarenessMaxMultiplier, docs/protocol-notes.md).
    awareness_max_multiplier: int = 8
    # Dead and left members are forgotten this long after they went down
    # (memberlist's GossipToTheDeadTime is 30 s).
    reap_after_ms: int = 30_000
    # Dissemination: `push` sends hot updates to `fanout` peers a round, `pull` asks
    # `fanout` peers a round for the hot updates it lacks, `push-pull` does both (pulling
    # from `pull_fanout` peers, 1 by default, as in Karp et al.'s push-pull).
    mode: str = "push-pull"
    pull_fanout: int | None = None
    # Conflict policy of the key/value store: `lww` or `mv` (multi-value register).
    conflict_policy: str = "lww"
    # A key deleted this long ago (every sibling a tombstone) is garbage collected. It
    # must exceed the longest time a replica can be out of touch (see `kv.py`).
    tombstone_gc_ms: int = 60_000
    # Depth of the Merkle tree over item-id hashes (fanout 16): 16^4 leaves by default.
    merkle_depth: int = 4
    # Seed for the node's private random generator; None derives it from node_id.
    rng_seed: int | None = None

    def __post_init__(self) -> None:
        positive = {
            "probe_interval_ms": self.probe_interval_ms,
            "probe_timeout_ms": self.probe_timeout_ms,
            "suspicion_mult": self.suspicion_mult,
            "suspicion_max_timeout_mult": self.suspicion_max_timeout_mult,
            "gossip_interval_ms": self.gossip_interval_ms,
            "fanout": self.fanout,
            "retransmit_mult": self.retransmit_mult,
            "push_pull_interval_ms": self.push_pull_interval_ms,
            "dead_push_pull_every": self.dead_push_pull_every,
            "join_retry_ms": self.join_retry_ms,
            "max_piggyback_bytes": self.max_piggyback_bytes,
            "awareness_max_multiplier": self.awareness_max_multiplier,
            "reap_after_ms": self.reap_after_ms,
        }
        for name, value in positive.items():
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if self.indirect_checks < 0:
            raise ValueError(f"indirect_checks must be >= 0, got {self.indirect_checks}")
        if self.probe_timeout_ms >= self.probe_interval_ms:
            raise ValueError("probe_timeout_ms must be below probe_interval_ms")
        if not self.node_id:
            raise ValueError("node_id must not be empty")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.conflict_policy not in ("lww", "mv"):
            raise ValueError(f"conflict_policy must be lww or mv, got {self.conflict_policy!r}")
        if self.pull_fanout is not None and self.pull_fanout <= 0:
            raise ValueError(f"pull_fanout must be positive, got {self.pull_fanout}")
        if self.tombstone_gc_ms <= 0:
            raise ValueError(f"tombstone_gc_ms must be positive, got {self.tombstone_gc_ms}")
        if not 1 <= self.merkle_depth <= 8:
            raise ValueError(f"merkle_depth must be within 1..8, got {self.merkle_depth}")

    @property
    def pushes(self) -> bool:
        return self.mode in ("push", "push-pull")

    @property
    def pulls(self) -> bool:
        return self.mode in ("pull", "push-pull")

    @property
    def effective_pull_fanout(self) -> int:
        if self.pull_fanout is not None:
            return self.pull_fanout
        return self.fanout if self.mode == "pull" else 1

    @property
    def effective_leave_linger_ms(self) -> int:
        if self.leave_linger_ms is not None:
            return self.leave_linger_ms
        return max(1000, 5 * self.gossip_interval_ms)
