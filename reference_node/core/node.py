"""One gossip node as a sans-IO state machine.

Inputs: `receive(message, now_ms)`, `tick(now_ms)` and client calls (`join`, `leave`,
`kv_put`, `kv_delete`, `broadcast`), each with the caller's clock. Outputs: effects
drained by `take_effects()`. The driver calls `tick` at or after `next_deadline_ms()`
and after every input re-reads the deadline, which may have moved earlier.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from typing import Any

from gossipcert.reference_node.core import merkle
from gossipcert.reference_node.core.awareness import Awareness
from gossipcert.reference_node.core.broadcast import BroadcastStore, Delivery
from gossipcert.reference_node.core.codec import decode_update, encode_update, update_size
from gossipcert.reference_node.core.config import NodeConfig
from gossipcert.reference_node.core.crdt import LWWRegister
from gossipcert.reference_node.core.dissemination import TransmitQueue, retransmit_limit
from gossipcert.reference_node.core.effects import Effect, Observed, Persist, SendMessage
from gossipcert.reference_node.core.events import Event, EventLog
from gossipcert.reference_node.core.hlc import HybridClock
from gossipcert.reference_node.core.kv import Policy
from gossipcert.reference_node.core.membership import Change, Member, MemberTable
from gossipcert.reference_node.core.messages import (
    Ack,
    BroadcastUpdate,
    CrdtUpdate,
    FullState,
    Gossip,
    KvState,
    KvUpdate,
    MemberUpdate,
    Merkle,
    Message,
    Nack,
    Ping,
    PingReq,
    Pull,
    PushPull,
    Sibling,
    Status,
    Update,
)
from gossipcert.reference_node.core.probing import ActiveProbe, ProbeOrder, Relay
from gossipcert.reference_node.core.state import DEFAULT_CHUNK_BYTES, StateStore
from gossipcert.reference_node.core.suspicion import (
    Suspicion,
    expected_confirmations,
    suspicion_timeout_ms,
)
from gossipcert.reference_node.core.vclock import EMPTY, VClock

NEVER_MS = 2**62
"""Deadline returned when no timer is pending (a node that has left)."""
REAPED_MEMORY = 10
"""A reaped member's incarnation is remembered this many reap horizons after reaping."""


class Node:
    def __init__(self, config: NodeConfig, now_ms: int) -> None:
        self.config = config
        seed: int | str = config.rng_seed if config.rng_seed is not None else config.node_id
        self.rng = random.Random(seed)
        self.clock = HybridClock()
        self.members = MemberTable()
        policy: Policy = "mv" if config.conflict_policy == "mv" else "lww"
        self.state = StateStore(policy, config.merkle_depth)
        self.kv = self.state.kv
        # Dissemination counters for benchmarks (messages and updates per update).
        self.stats: dict[str, int] = {}
        self.broadcasts = BroadcastStore(config.push_pull_broadcasts)
        self.queue = TransmitQueue()
        self.events = EventLog()
        self._effects: list[Effect] = []
        self._probe_order = ProbeOrder(self.rng)
        self._probe: ActiveProbe | None = None
        self._relays: dict[int, Relay] = {}
        self._suspicions: dict[str, Suspicion] = {}
        self._seq = 0
        self.awareness = Awareness(config.awareness_max_multiplier)
        # Reaped members: id -> (incarnation, forget at ms). Gossip about them at or
        # below that incarnation is stale and must not bring them back.
        self._reaped: dict[str, tuple[int, int]] = {}
        self._next_reap_ms = now_ms + _reap_check_ms(config)
        self.probe_rounds = 0
        self.gossip_rounds = 0
        self._push_pull_rounds = 0
        self._join_seeds: tuple[str, ...] | None = None
        self._join_next_ms = 0
        self._leave_done_ms: int | None = None
        self._stopped = False
        # Spread the first timers so a cluster started at once does not probe in step.
        self._next_probe_ms = now_ms + self.rng.randint(0, config.probe_interval_ms)
        self._next_gossip_ms = now_ms + config.gossip_interval_ms
        self._next_push_pull_ms = now_ms + self.rng.randint(
            config.push_pull_interval_ms // 2, config.push_pull_interval_ms
        )
        me = Member(config.node_id, config.gossip_address, Status.ALIVE, 0, now_ms)
        self._record(self.members.set(me), now_ms)

    # ---- queries ---------------------------------------------------------------------

    @property
    def id(self) -> str:
        return self.config.node_id

    @property
    def address(self) -> str:
        return self.config.gossip_address

    @property
    def me(self) -> Member:
        member = self.members.get(self.id)
        assert member is not None
        return member

    @property
    def incarnation(self) -> int:
        return self.me.incarnation

    @property
    def ready(self) -> bool:
        """True unless a join is still waiting for its first answer."""
        return self._join_seeds is None

    @property
    def leaving(self) -> bool:
        return self._leave_done_ms is not None or self._stopped

    @property
    def stopped(self) -> bool:
        return self._stopped

    @property
    def push_pull_rounds(self) -> int:
        return self._push_pull_rounds

    @property
    def suspicion_count(self) -> int:
        return len(self._suspicions)

    @property
    def relay_count(self) -> int:
        return len(self._relays)

    def reaped(self) -> dict[str, int]:
        """Members forgotten by reaping, with the incarnation they were reaped at."""
        return {member: inc for member, (inc, _) in self._reaped.items()}

    def restore_incarnation(self, used: int, now_ms: int) -> None:
        """After a restart: start above every incarnation this id used before, so no
        old `dead` (or `left`) of ours can shadow the new life."""
        me = self.me
        if used >= me.incarnation and not self.leaving:
            self._record(self.members.set(dataclasses.replace(me, incarnation=used + 1)), now_ms)

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready durable state: our incarnation and every replicated entry (with
        tombstones), in the wire encoding so `restore` takes it back through the same
        merge path gossip uses."""
        return {
            "incarnation": self.incarnation,
            "kv": [encode_update(entry) for entry in self.kv.entries()]
            + [encode_update(CrdtUpdate(name, c)) for name, c in self.state.crdts.items()],
        }

    def restore(self, snapshot: dict[str, Any], now_ms: int) -> None:
        """Take back a `snapshot()` after a restart (see also `restore_writes`)."""
        incarnation = snapshot.get("incarnation")
        if isinstance(incarnation, int):
            self.restore_incarnation(incarnation, now_ms)
        self.restore_writes(snapshot.get("kv", []), now_ms)

    def restore_writes(self, records: Sequence[Any], now_ms: int) -> None:
        """Merge updates logged by `Persist` effects (or held in a snapshot); each goes
        through the ordinary merge, so replaying one twice or out of order is harmless."""
        for record in records:
            self._apply_update(decode_update(record), now_ms, from_push_pull=True)

    def member_list(self) -> list[Member]:
        return sorted(self.members, key=lambda m: m.id)

    def kv_get(self, key: str) -> KvState | None:
        """The visible state of `key` (None when absent or deleted)."""
        entry = self.kv.get(key)
        return None if entry is None or entry.deleted else entry

    def crdt_get(self, name: str) -> CrdtUpdate | None:
        crdt = self.state.crdts.get(name)
        return None if crdt is None else CrdtUpdate(name, crdt)

    def dissemination_stats(self) -> dict[str, int]:
        """Counters the benchmarks divide by the number of updates: messages sent by
        kind (`sent:<kind>`), updates carried and received, data updates applied."""
        return dict(sorted(self.stats.items()))

    def delivered_broadcasts(self) -> list[Delivery]:
        return self.broadcasts.delivered()

    def events_after(self, seq: int) -> list[Event]:
        return self.events.after(seq)

    def take_effects(self) -> list[Effect]:
        effects, self._effects = self._effects, []
        return effects

    def next_deadline_ms(self) -> int:
        if self._stopped:
            return NEVER_MS
        deadlines = [self._next_gossip_ms]
        if self._join_seeds is not None:
            deadlines.append(self._join_next_ms)
        if self._leave_done_ms is not None:
            deadlines.append(self._leave_done_ms)
        else:
            deadlines.append(self._next_push_pull_ms)
        probe = self._probe
        if probe is None:
            deadlines.append(self._next_probe_ms)
        else:
            if not probe.indirect_sent:
                deadlines.append(probe.indirect_at_ms)
            deadlines.append(probe.period_end_ms)
        deadlines.extend(s.deadline_ms() for s in self._suspicions.values())
        deadlines.extend(r.nack_at_ms for r in self._relays.values() if not r.nack_sent)
        deadlines.append(self._next_reap_ms)
        return min(deadlines)

    # ---- client calls ----------------------------------------------------------------

    def join(self, seeds: Sequence[str], now_ms: int) -> None:
        """Contact seeds (by address) until one answers with its state."""
        others = tuple(s for s in seeds if s != self.address)
        if not others or self.leaving:
            return
        self._join_seeds = others
        self._join_next_ms = now_ms

    def leave(self, now_ms: int) -> None:
        """Announce `left` at a higher incarnation, gossip it for a linger period, stop."""
        if self.leaving:
            return
        me = self.me
        left = Member(self.id, self.address, Status.LEFT, me.incarnation + 1, now_ms)
        self._record(self.members.set(left), now_ms)
        self._join_seeds = None
        self._leave_done_ms = now_ms + self.config.effective_leave_linger_ms
        self._gossip_round(now_ms)

    def kv_put(self, key: str, value: Any, now_ms: int, context: VClock | None = None) -> KvState:
        """Under mv, `context` (from a GET) names the siblings this write supersedes;
        without one the write is a new sibling. Under lww the write supersedes all."""
        seen = None if self.kv.policy == "lww" else (EMPTY if context is None else context)
        return self._local_write(key, value, False, now_ms, seen)

    def kv_delete(self, key: str, now_ms: int, context: VClock | None = None) -> KvState:
        """Deletes write a tombstone, so the key cannot come back through old gossip;
        under mv a context limits the delete to the siblings it covers."""
        seen = None if self.kv.policy == "lww" else context
        return self._local_write(key, None, True, now_ms, seen)

    def crdt_apply(self, name: str, type_name: str, op: str, value: Any, now_ms: int) -> CrdtUpdate:
        """A client CRDT operation; raises CrdtError (a ValueError) for a bad request."""
        update = self.state.crdt_apply(name, type_name, op, value, self.id, self.clock.now(now_ms))
        self._durable(update)
        self.queue.enqueue(update)
        return update

    def broadcast(self, broadcast_id: str, payload: Any, now_ms: int) -> bool:
        """Deliver locally and start the rumor; False if the id was already delivered."""
        return self._apply_broadcast(BroadcastUpdate(broadcast_id, self.id, payload), now_ms)

    # ---- inputs ----------------------------------------------------------------------

    def receive(self, message: Message, now_ms: int) -> None:
        if self._stopped:
            return
        self.clock.observe(message.hlc, now_ms)
        if message.updates:
            self._count("updates_received", len(message.updates))
        for update in message.updates:
            self._apply_update(update, now_ms, from_push_pull=False)
        if isinstance(message, Ping):
            self._on_ping(message, now_ms)
        elif isinstance(message, Ack):
            self._on_ack(message, now_ms)
        elif isinstance(message, Nack):
            self._on_nack(message)
        elif isinstance(message, PingReq):
            self._on_ping_req(message, now_ms)
        elif isinstance(message, PushPull):
            self._on_push_pull(message, now_ms)
        elif isinstance(message, Merkle):
            self._on_merkle(message, now_ms)
        elif isinstance(message, Pull):
            self._on_pull(message, now_ms)
        # Gossip carries nothing but its updates.
        reaped = self._reaped.get(message.sender)
        if reaped is not None:
            # A member we reaped is talking to us (restarted without its data, or back
            # from a long partition): tell it, so it refutes above the old incarnation.
            tombstone = MemberUpdate(message.sender, message.sender_addr, Status.DEAD, reaped[0])
            notice = Gossip(**self._header(now_ms, first=(tombstone,)))
            self._send(message.sender, message.sender_addr, notice)

    def tick(self, now_ms: int) -> None:
        if self._stopped:
            return
        self._tick_join(now_ms)
        self._tick_probe(now_ms)
        self._tick_suspicions(now_ms)
        self._tick_gossip(now_ms)
        self._tick_push_pull(now_ms)
        self._tick_relays(now_ms)
        self._tick_reap(now_ms)
        if self._leave_done_ms is not None and now_ms >= self._leave_done_ms:
            self._stopped = True

    # ---- message handlers ------------------------------------------------------------

    def _on_ping(self, ping: Ping, now_ms: int) -> None:
        if ping.target != self.id:
            return  # meant for an earlier holder of this address
        ack = Ack(**self._header(now_ms), seq=ping.seq)
        self._send(ping.sender, ping.sender_addr, ack)

    def _on_ack(self, ack: Ack, now_ms: int) -> None:
        probe = self._probe
        if probe is not None and probe.seq == ack.seq:
            probe.acked = True
            self._probe = None
            if ack.sender == probe.target:
                self.awareness.apply(-1)  # answered directly: our links are fine
            return
        relay = self._relays.pop(ack.seq, None)
        if relay is not None:
            forward = Ack(**self._header(now_ms), seq=relay.requester_seq)
            self._send(relay.requester, relay.requester_addr, forward)

    def _on_nack(self, nack: Nack) -> None:
        probe = self._probe
        if probe is not None and probe.seq == nack.seq:
            probe.nacks += 1

    def _on_ping_req(self, request: PingReq, now_ms: int) -> None:
        seq = self._next_seq()
        self._relays[seq] = Relay(
            request.sender,
            request.sender_addr,
            request.seq,
            expires_ms=now_ms + self.config.probe_interval_ms,
            nack_at_ms=now_ms + self.config.probe_timeout_ms,
        )
        ping = Ping(**self._header(now_ms), seq=seq, target=request.target)
        self._send(request.target, request.target_addr, ping)

    def _on_push_pull(self, message: PushPull, now_ms: int) -> None:
        self._merge_state(message.state, now_ms)
        if not message.reply:
            # Answer after merging, so a member told it was declared dead has already
            # refuted and the refutation travels back in this reply.
            reply = PushPull(
                **self._header(now_ms, piggyback=False),
                state=self._state(),
                join=message.join,
                reply=True,
            )
            self._send(message.sender, message.sender_addr, reply)
        elif message.join and self._join_seeds is not None:
            self._join_seeds = None
            # Joined: fetch the replicated state through the Merkle exchange.
            self._start_merkle(message.sender, message.sender_addr, now_ms)

    def _on_merkle(self, message: Merkle, now_ms: int) -> None:
        replies = merkle.answer(
            self.state,
            message.part,
            lambda item: self._apply_item(item, now_ms),
            chunk_bytes=DEFAULT_CHUNK_BYTES,
            size_of=update_size,
        )
        for part in replies:
            reply = Merkle(**self._header(now_ms, piggyback=False), part=part)
            self._send(message.sender, message.sender_addr, reply)

    def _start_merkle(self, peer_id: str, address: str, now_ms: int) -> None:
        opening = Merkle(
            **self._header(now_ms, piggyback=False), part=merkle.start(self.state.tree)
        )
        self._send(peer_id, address, opening)

    def _on_pull(self, message: Pull, now_ms: int) -> None:
        limit = retransmit_limit(self.config.retransmit_mult, self.members.live_count())
        missing = self.queue.hot_missing(message.summary, limit, self.config.max_piggyback_bytes)
        if missing:
            answer = Gossip(**self._header(now_ms, piggyback=False, first=tuple(missing)))
            self._send(message.sender, message.sender_addr, answer)

    # ---- applying updates ------------------------------------------------------------

    def _apply_update(self, update: Update, now_ms: int, *, from_push_pull: bool) -> None:
        if isinstance(update, MemberUpdate):
            self._apply_member(update, now_ms, from_push_pull=from_push_pull)
        elif isinstance(update, KvUpdate | KvState):
            self._apply_kv(update, now_ms)
        elif isinstance(update, CrdtUpdate):
            self._apply_crdt(update, now_ms)
        else:
            self._apply_broadcast(update, now_ms)

    def _merge_state(self, state: FullState, now_ms: int) -> None:
        for member in state.members:
            self._apply_member(member, now_ms, from_push_pull=True)
        for entry in state.kv:
            self._apply_kv(entry, now_ms)
        for rumor in state.broadcasts:
            self._apply_broadcast(rumor, now_ms)

    def _apply_member(self, update: MemberUpdate, now_ms: int, *, from_push_pull: bool) -> None:
        if update.member == self.id:
            self._about_self(update, now_ms)
            return
        reaped = self._reaped.get(update.member)
        if reaped is not None:
            if update.incarnation <= reaped[0]:
                return  # old news about a member we already forgot
            del self._reaped[update.member]  # a new life: rejoin
        known = self.members.get(update.member)
        if (
            update.status is Status.SUSPECT
            and known is not None
            and known.status is Status.SUSPECT
            and known.incarnation == update.incarnation
        ):
            self._confirm_suspicion(update)
            return
        if from_push_pull and update.status is Status.DEAD and known and known.status.is_live:
            # As memberlist does: a peer's full state may be old (the other half of a
            # healed partition), so its `dead` only makes us suspect, which the member
            # can still refute.
            update = dataclasses.replace(update, status=Status.SUSPECT)
        change = self.members.apply(update, now_ms)
        if change is not None:
            self._record(change, now_ms, suspecter=update.by)

    def _confirm_suspicion(self, update: MemberUpdate) -> None:
        """Lifeguard: another member independently suspects the same incarnation. Each
        new confirmation shortens the timer and is gossiped on, so others count it."""
        suspicion = self._suspicions.get(update.member)
        if suspicion is None or not update.by or suspicion.incarnation != update.incarnation:
            return
        if suspicion.confirm(update.by):
            self.queue.enqueue(update)

    def _about_self(self, update: MemberUpdate, now_ms: int) -> None:
        """Refutation: whoever holds a view of us at or above our incarnation that is
        not our own alive gets outvoted by a fresh alive at a higher incarnation."""
        if self.leaving:
            return
        me = self.me
        if update.status is Status.ALIVE:
            stale = update.incarnation <= me.incarnation
        else:
            stale = update.incarnation < me.incarnation
        if stale:
            return
        if update.status is not Status.ALIVE:
            self.awareness.apply(+1)  # having to refute hints that we are the slow one
        refuted = dataclasses.replace(me, incarnation=update.incarnation + 1)
        self._record(self.members.set(refuted), now_ms)

    def _apply_kv(self, entry: KvUpdate | KvState, now_ms: int, *, rumor: bool = True) -> None:
        # Observing every merged timestamp keeps our next local write above it.
        self.clock.observe(entry.timestamp, now_ms)
        merged, buried = self.kv.merge_checked(entry)
        if merged is not None:
            self._count("data_updates_applied")
            if rumor:
                self.queue.enqueue(merged)
        if buried:
            # A write older than a tombstone we already collected: it was deleted, and
            # the replica still holding it must learn so (see kv.py).
            seen = (
                entry.context if isinstance(entry, KvState) else ((entry.writer, entry.timestamp),)
            )
            tombstone = Sibling(self.id, self.clock.now(now_ms), None, True)
            self.queue.enqueue(self.kv.write(entry.key, tombstone, seen))

    def _apply_crdt(self, update: CrdtUpdate, now_ms: int, *, rumor: bool = True) -> None:
        if isinstance(update.crdt, LWWRegister):
            self.clock.observe(update.crdt.timestamp, now_ms)
        merged = self.state.crdt_merge(update)
        if merged is not None:
            self._count("data_updates_applied")
            if rumor:
                self.queue.enqueue(merged)

    def _apply_item(self, item: KvState | CrdtUpdate, now_ms: int) -> None:
        """A state repaired by anti-entropy: merged, not re-gossiped (a joiner would
        otherwise queue its whole state)."""
        if isinstance(item, KvState):
            self._apply_kv(item, now_ms, rumor=False)
        else:
            self._apply_crdt(item, now_ms, rumor=False)

    def _apply_broadcast(self, rumor: BroadcastUpdate, now_ms: int) -> bool:
        delivery = self.broadcasts.deliver(rumor, now_ms)
        if delivery is None:
            return False
        self._observe(self.events.broadcast(now_ms, rumor.id, rumor.origin))
        self.queue.enqueue(rumor)
        return True

    def _local_write(
        self, key: str, value: Any, deleted: bool, now_ms: int, seen: VClock | None
    ) -> KvState:
        sibling = Sibling(self.id, self.clock.now(now_ms), value, deleted)
        entry = self.kv.write(key, sibling, seen)
        self._durable(entry)
        self.queue.enqueue(entry)
        return entry

    def _durable(self, update: Update) -> None:
        """Every local write goes through here: the driver makes it durable before the
        client call returns, so a crash-restart loses no acknowledged write."""
        self._effects.append(Persist(update))

    def _record(self, change: Change, now_ms: int, *, suspecter: str = "") -> None:
        """Side effects of any accepted membership change."""
        new = change.new
        announced = new.as_update()
        if new.status is Status.SUSPECT and suspecter:
            announced = dataclasses.replace(announced, by=suspecter)
        self.queue.enqueue(announced)
        if change.status_changed:
            self._observe(self.events.member(now_ms, new.id, new.status, new.incarnation))
        if new.id == self.id:
            return
        if new.status is Status.SUSPECT:
            self._start_suspicion(new, now_ms, suspecter)
        else:
            self._suspicions.pop(new.id, None)
        if new.status.is_live and (change.old is None or not change.old.status.is_live):
            self._probe_order.add(new.id)

    def _start_suspicion(self, member: Member, now_ms: int, origin: str) -> None:
        current = self._suspicions.get(member.id)
        if current is not None and current.incarnation == member.incarnation:
            return
        n = self.members.live_count()
        low = suspicion_timeout_ms(self.config.suspicion_mult, n, self.config.probe_interval_ms)
        high = low * self.config.suspicion_max_timeout_mult
        self._suspicions[member.id] = Suspicion(
            member.id,
            member.incarnation,
            now_ms,
            low,
            high,
            expected=expected_confirmations(self.config.suspicion_mult, n),
            origin=origin,
        )

    # ---- timers ----------------------------------------------------------------------

    def _tick_join(self, now_ms: int) -> None:
        if self._join_seeds is None or now_ms < self._join_next_ms:
            return
        for seed in self._join_seeds:
            request = PushPull(
                **self._header(now_ms, piggyback=False), state=self._state(), join=True
            )
            self._send(None, seed, request)
        self._join_next_ms = now_ms + self.config.join_retry_ms

    def _tick_probe(self, now_ms: int) -> None:
        probe = self._probe
        if probe is not None:
            if not probe.indirect_sent and now_ms >= probe.indirect_at_ms:
                self._send_indirect_probes(probe, now_ms)
            if now_ms >= probe.period_end_ms:
                late_by = now_ms - probe.period_end_ms
                if late_by > self.awareness.scale(self.config.probe_timeout_ms) and not (
                    probe.extended
                ):
                    # We were not scheduled for a long while (CPU starvation): acks may
                    # be waiting unread, so give them one more timeout before suspecting.
                    probe.extended = True
                    probe.period_end_ms = now_ms + self.awareness.scale(
                        self.config.probe_timeout_ms
                    )
                else:
                    self._probe = None
                    self._probe_failed(probe, now_ms)
        if self._probe is None and now_ms >= self._next_probe_ms:
            interval = self.awareness.scale(self.config.probe_interval_ms)
            self._next_probe_ms = _advance(self._next_probe_ms, interval, now_ms)
            # Probing goes on while a leave lingers: pings carry the `left` too.
            self._start_probe(now_ms)

    def _start_probe(self, now_ms: int) -> None:
        candidates = self.members.ids_with(Status.ALIVE, Status.SUSPECT, exclude=self.id)
        target_id = self._probe_order.next(candidates)
        if target_id is None:
            return
        target = self.members.get(target_id)
        assert target is not None
        self.probe_rounds += 1
        probe = ActiveProbe(
            seq=self._next_seq(),
            target=target.id,
            incarnation=target.incarnation,
            indirect_at_ms=now_ms + self.awareness.scale(self.config.probe_timeout_ms),
            period_end_ms=now_ms + self.awareness.scale(self.config.probe_interval_ms),
        )
        self._probe = probe
        self._send_ping(probe, target, now_ms)

    def _send_ping(self, probe: ActiveProbe, target: Member, now_ms: int) -> None:
        # A suspect learns of its suspicion straight from the prober and can refute at
        # once (Lifeguard's "buddy system").
        first: tuple[Update, ...] = (target.as_update(),) if target.status is Status.SUSPECT else ()
        ping = Ping(**self._header(now_ms, first=first), seq=probe.seq, target=target.id)
        self._send(target.id, target.address, ping)

    def _send_indirect_probes(self, probe: ActiveProbe, now_ms: int) -> None:
        probe.indirect_sent = True
        target = self.members.get(probe.target)
        if target is None:
            return
        # Repeat the direct ping too: the first may have been lost on a reconnect.
        self._send_ping(probe, target, now_ms)
        helpers = [
            m for m in self.members.ids_with(Status.ALIVE, exclude=self.id) if m != target.id
        ]
        count = min(self.config.indirect_checks, len(helpers))
        probe.expected_nacks = count
        for helper_id in self.rng.sample(helpers, count):
            helper = self.members.get(helper_id)
            assert helper is not None
            request = PingReq(
                **self._header(now_ms),
                seq=probe.seq,
                target=target.id,
                target_addr=target.address,
            )
            self._send(helper.id, helper.address, request)

    def _probe_failed(self, probe: ActiveProbe, now_ms: int) -> None:
        # Lifeguard: helpers that nacked show our own links work; every expected nack
        # that did not come counts against our health (with no helpers, the failed probe
        # itself does).
        if probe.expected_nacks > 0:
            self.awareness.apply(max(0, probe.expected_nacks - probe.nacks))
        else:
            self.awareness.apply(+1)
        if self.leaving:
            return
        target = self.members.get(probe.target)
        if target is None or not target.status.is_live or target.incarnation != probe.incarnation:
            return
        # Suspecting an already suspect member is a confirmation from us.
        suspect = MemberUpdate(
            target.id, target.address, Status.SUSPECT, target.incarnation, by=self.id
        )
        self._apply_member(suspect, now_ms, from_push_pull=False)

    def _tick_suspicions(self, now_ms: int) -> None:
        expired = [s for s in self._suspicions.values() if now_ms >= s.deadline_ms()]
        for suspicion in expired:
            member = self.members.get(suspicion.member)
            self._suspicions.pop(suspicion.member, None)
            if (
                member is None
                or member.status is not Status.SUSPECT
                or member.incarnation != suspicion.incarnation
            ):
                continue
            dead = MemberUpdate(member.id, member.address, Status.DEAD, member.incarnation)
            self._apply_member(dead, now_ms, from_push_pull=False)

    def _tick_gossip(self, now_ms: int) -> None:
        if now_ms < self._next_gossip_ms:
            return
        interval = self.config.gossip_interval_ms
        self._next_gossip_ms = _advance(self._next_gossip_ms, interval, now_ms)
        self.gossip_rounds += 1
        hot_rounds = retransmit_limit(self.config.retransmit_mult, self.members.live_count())
        self.queue.advance_round(hot_rounds)
        if self.config.pushes:
            self._gossip_round(now_ms)
        if self.config.pulls and not self.leaving:
            self._pull_round(now_ms)
        self.kv.collect(now_ms, self.config.tombstone_gc_ms)

    def _pull_round(self, now_ms: int) -> None:
        """Ask peers for the hot updates we lack (see dissemination.py)."""
        peers = self.members.ids_with(Status.ALIVE, Status.SUSPECT, exclude=self.id)
        summary = self.queue.hot_summary()
        for peer_id in self.rng.sample(peers, min(self.config.effective_pull_fanout, len(peers))):
            peer = self.members.get(peer_id)
            assert peer is not None
            request = Pull(**self._header(now_ms, piggyback=False), summary=summary)
            self._send(peer.id, peer.address, request)

    def _gossip_round(self, now_ms: int) -> None:
        if not len(self.queue):
            return
        peers = self.members.ids_with(Status.ALIVE, Status.SUSPECT, exclude=self.id)
        for peer_id in self.rng.sample(peers, min(self.config.fanout, len(peers))):
            header = self._header(now_ms)
            if not header["updates"]:
                break
            peer = self.members.get(peer_id)
            assert peer is not None
            self._send(peer.id, peer.address, Gossip(**header))

    def _tick_push_pull(self, now_ms: int) -> None:
        if self._leave_done_ms is not None or now_ms < self._next_push_pull_ms:
            return
        interval = self.config.push_pull_interval_ms
        self._next_push_pull_ms = _advance(self._next_push_pull_ms, interval, now_ms)
        self._push_pull_rounds += 1
        targets: list[str] = []
        live = self.members.ids_with(Status.ALIVE, Status.SUSPECT, exclude=self.id)
        if live:
            targets.append(self.rng.choice(live))
        if self._push_pull_rounds % self.config.dead_push_pull_every == 0:
            # Partition recovery: a member we declared dead may only be on the other
            # side of a healed partition; telling it lets it refute (and vice versa).
            dead = self.members.ids_with(Status.DEAD, exclude=self.id)
            if dead:
                targets.append(self.rng.choice(dead))
        for target_id in targets:
            target = self.members.get(target_id)
            assert target is not None
            request = PushPull(**self._header(now_ms, piggyback=False), state=self._state())
            self._send(target.id, target.address, request)
            # Replicated state is reconciled by the Merkle exchange, not sent whole.
            self._start_merkle(target.id, target.address, now_ms)

    def _tick_relays(self, now_ms: int) -> None:
        for seq, relay in list(self._relays.items()):
            if not relay.nack_sent and now_ms >= relay.nack_at_ms:
                relay.nack_sent = True
                nack = Nack(**self._header(now_ms), seq=relay.requester_seq)
                self._send(relay.requester, relay.requester_addr, nack)
            if now_ms >= relay.expires_ms:
                del self._relays[seq]

    def _tick_reap(self, now_ms: int) -> None:
        """Forget dead and left members after `reap_after_ms`; remember each one's
        incarnation a while longer so stale gossip cannot bring it back."""
        if now_ms < self._next_reap_ms:
            return
        self._next_reap_ms = now_ms + _reap_check_ms(self.config)
        horizon = self.config.reap_after_ms
        for member in self.members.down(exclude=self.id):
            if now_ms - member.since_ms >= horizon:
                self.members.remove(member.id)
                self._reaped[member.id] = (member.incarnation, now_ms + REAPED_MEMORY * horizon)
        for member_id in [m for m, (_, until) in self._reaped.items() if now_ms >= until]:
            del self._reaped[member_id]

    # ---- helpers ---------------------------------------------------------------------

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _state(self) -> FullState:
        return FullState(
            members=tuple(m.as_update() for m in self.member_list()),
            broadcasts=self.broadcasts.recent(),
        )

    def _header(
        self, now_ms: int, *, piggyback: bool = True, first: tuple[Update, ...] = ()
    ) -> dict[str, Any]:
        updates: list[Update] = list(first)
        if piggyback:
            budget = self.config.max_piggyback_bytes - sum(update_size(u) for u in first)
            limit = retransmit_limit(self.config.retransmit_mult, self.members.live_count())
            updates.extend(self.queue.select(limit, budget))
        return {
            "sender": self.id,
            "sender_addr": self.address,
            "hlc": self.clock.now(now_ms),
            "updates": tuple(updates),
        }

    def _send(self, to_id: str | None, address: str, message: Message) -> None:
        self._count("sent:" + message.kind)
        if message.updates:
            self._count("updates_sent", len(message.updates))
        self._effects.append(SendMessage(to_id, address, message))

    def _count(self, name: str, by: int = 1) -> None:
        self.stats[name] = self.stats.get(name, 0) + by

    def _observe(self, event: Event) -> None:
        self._effects.append(Observed(event))


def _reap_check_ms(config: NodeConfig) -> int:
    """Reaping is checked often enough to be late by at most a tenth of the horizon."""
    return max(1, min(1000, config.reap_after_ms // 10))


def _advance(deadline_ms: int, interval_ms: int, now_ms: int) -> int:
    """Next firing of a periodic timer; missed firings are skipped, not replayed."""
    following = deadline_ms + interval_ms
    return following if following > now_ms else now_ms + interval_ms
