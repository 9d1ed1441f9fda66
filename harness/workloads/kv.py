"""The key-value store: the kv digests converge once writes stop, anti-entropy after
partitions and restarts, the lww and mv models, no lost acknowledged write, deletes that
stay deleted.

Final state is what each surviving member returned in its last read after writes
stopped; the models in :mod:`harness.judging.models` say what that state must and may hold.

It also owns the kv operations (put, get, delete) and the rules that draw them.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from gossipcert.harness.judging.checker import (
    Checker,
    JudgingContext,
    Tally,
    capability_checker,
    count_verdict,
    make_verdict,
    timed_verdict,
    write_clock_violations,
)
from gossipcert.harness.judging.index import INF, HistoryIndex
from gossipcert.harness.judging.models import (
    REALTIME_TOLERANCE_MS,
    Write,
    canon,
    lost_writes,
    lww_model,
    mv_model,
    resurrected_deletes,
)
from gossipcert.harness.judging.verdict import Requirement, Verdict
from gossipcert.harness.workloads.operations import Concurrent, Op
from gossipcert.harness.workloads.strategies import Choice, GeneratorRules, SequenceBuilder, Space
from hypothesis import strategies as st

if TYPE_CHECKING:
    from gossipcert.harness.workloads.interpreter import Execution


__all__ = [
    "OPERATIONS",
    "CHECKERS",
    "GENERATOR",
    "Delete",
    "Get",
    "Put",
    "check_deletes_stay_deleted",
    "check_kv_after_partition",
    "check_kv_after_restart",
    "check_kv_convergence",
    "check_kv_lww",
    "check_kv_mv",
    "check_no_lost_write",
    "heal_kv",
    "writer_died_early",
    "writes_by_key",
    "writes_stopped",
]


# ---- operations -----------------------------------------------------------------------


@dataclass(frozen=True)
class Put(Op):
    kind = "put"
    needs = "kv"
    client_call = True
    summary = "write a key on a node (with_context: the context of this node's last get)"
    node: str
    key: str
    value: Any
    with_context: bool = False

    def with_namespace(self, prefix: str) -> Op:
        return replace(self, key=prefix + self.key)

    def run(self, x: Execution) -> None:
        args: dict[str, Any] = {"key": self.key, "value": self.value}
        if self.with_context:
            args["context"] = x.contexts.get((self.node, self.key))
        x.driver.call(self.node, "put", args)


@dataclass(frozen=True)
class Get(Op):
    kind = "get"
    needs = "kv"
    client_call = True
    summary = "read one key on a node; its context is kept for a later put with_context"
    node: str
    key: str

    def with_namespace(self, prefix: str) -> Op:
        return replace(self, key=prefix + self.key)

    def run(self, x: Execution) -> None:
        reply = x.driver.call(self.node, "get", {"key": self.key})
        if reply.ok and isinstance(reply.body, dict):
            x.contexts[(self.node, self.key)] = reply.body.get("context")


@dataclass(frozen=True)
class Delete(Op):
    kind = "delete"
    needs = "kv"
    client_call = True
    summary = "delete a key on a node"
    node: str
    key: str

    def with_namespace(self, prefix: str) -> Op:
        return replace(self, key=prefix + self.key)

    def run(self, x: Execution) -> None:
        x.driver.call(self.node, "delete", {"key": self.key})


# ---- generator rules ------------------------------------------------------------------


def _choices(
    space: Space, node: st.SearchStrategy[int], key: st.SearchStrategy[int]
) -> list[st.SearchStrategy[Choice]]:
    if "kv" not in space.capabilities:
        return []
    # Puts twice as likely as any other call (one_of picks among distinct objects).
    parts = [st.tuples(st.just("put"), node, key), st.tuples(st.just("put"), node, key),
             st.tuples(st.just("delete"), node, key),
             st.tuples(st.just("race"), key, st.integers(2, len(space.nodes)))]
    if space.policy == "mv":
        parts.append(st.tuples(st.just("rmw"), node, key))
    return parts


def _put(b: SequenceBuilder, node: int, key: int) -> None:
    pool = b.writable()
    if pool:
        target = b.pick(pool, node)
        b.out.append(Put(target, b.key(key), b.value(target)))
        b.wrote(target)


def _delete(b: SequenceBuilder, node: int, key: int) -> None:
    pool = b.writable()
    if pool:
        target = b.pick(pool, node)
        b.out.append(Delete(target, b.key(key)))
        b.wrote(target)


def _race(b: SequenceBuilder, key: int, count: int) -> None:
    writers = b.writable()[:count]
    if len(writers) >= 2:
        b.out.append(Concurrent(tuple(Put(n, b.key(key), b.value(n)) for n in writers)))
        b.wrote(*writers)


def _rmw(b: SequenceBuilder, node: int, key: int) -> None:
    """A read-modify-write under ``mv``: a get, then a put carrying its context."""
    pool = b.writable()
    if pool:
        target = b.pick(pool, node)
        b.out += [Get(target, b.key(key)),
                  Put(target, b.key(key), b.value(target), with_context=True)]
        b.wrote(target)


GENERATOR = GeneratorRules(_choices, {"put": _put, "delete": _delete, "race": _race,
                                      "rmw": _rmw})


# ---- checkers --------------------------------------------------------------------------


_LIMIT = 10


# --------------------------------------------------------------------------- kv reads


@dataclass(frozen=True)
class _KvRead:
    node: str
    at: float
    digest: Any
    entries: Mapping[str, Any]

    @property
    def content(self) -> str:
        """The entries read, canonical: what the harness itself saw the node hold."""
        return canon({str(k): _values(self.entries, str(k)) for k in self.entries})

    @property
    def state(self) -> str:
        """What two reads must share to count as one state: the node's digest and the
        entries themselves (a digest alone is the node's word; a missing one is not a
        match)."""
        return canon([self.digest, self.content])


def _kv_reads(
    index: HistoryIndex, nodes: Iterable[str], t0: float, t1: float = INF
) -> list[_KvRead]:
    """Successful kv reads by ``nodes`` begun at or after ``t0`` and done by ``t1``."""
    wanted = set(nodes)
    out: list[_KvRead] = []
    for op in index.ops.get("kv", []):
        if op.outcome != "ok" or op.node not in wanted or not isinstance(op.result, Mapping):
            continue
        if op.invoked >= t0 and op.completed <= t1:
            entries = op.result.get("entries") or {}
            if not isinstance(entries, Mapping):
                entries = {}
            out.append(_KvRead(str(op.node), op.completed, op.result.get("digest"), entries))
    out.sort(key=lambda r: r.at)
    return out


def _convergence(
    reads: Sequence[_KvRead], required: set[str]
) -> tuple[float | None, dict[str, _KvRead]]:
    """When the latest states of all ``required`` nodes (digest and entries, see
    :attr:`_KvRead.state`) became equal for good (if ever)."""
    latest: dict[str, _KvRead] = {}
    counts: Counter[str] = Counter()
    converged: float | None = None
    for read in reads:
        digest = read.state
        previous = latest.get(read.node)
        if previous is not None:
            counts[previous.state] -= 1
            if counts[previous.state] == 0:
                del counts[previous.state]
        latest[read.node] = read
        counts[digest] += 1
        if len(latest) == len(required) and len(counts) == 1:
            if converged is None:
                converged = read.at
        else:
            converged = None
    return converged, latest


def _divergence(latest: Mapping[str, _KvRead], limit: int = 5) -> list[dict[str, Any]]:
    """The keys whose values differ between nodes, with each node's values."""
    keys: set[str] = set()
    for read in latest.values():
        keys.update(str(k) for k in read.entries)
    out: list[dict[str, Any]] = []
    for key in sorted(keys):
        per_node = {node: _values(read.entries, key) for node, read in sorted(latest.items())}
        if len({canon(v) for v in per_node.values()}) > 1:
            out.append({"key": key, "values": per_node})
            if len(out) >= limit:
                break
    return out


def _values(entries: Mapping[str, Any], key: str) -> list[Any] | None:
    entry = entries.get(key)
    if entry is None:
        return None
    values = entry.get("values") if isinstance(entry, Mapping) else entry
    if not isinstance(values, list):
        values = [values]
    return sorted(values, key=canon)


def _acked_puts(index: HistoryIndex) -> int:
    """How many puts a member acknowledged: without one, an empty state agrees with
    itself and every kv requirement would hold of a node that stores nothing."""
    return sum(1 for p in index.ops.get("put", []) if p.outcome == "ok")


def _no_acked_put(index: HistoryIndex) -> str:
    attempted = len(index.ops.get("put", []))
    return f"none of the {attempted} put(s) was acknowledged: no write to judge the state by"


def _digest_mismatches(index: HistoryIndex, limit: int = 3) -> list[dict[str, Any]]:
    """Reads where one digest stood for two different sets of entries: the digest does
    not summarise the state, so digests cannot vouch for convergence."""
    seen: dict[str, tuple[str, _KvRead]] = {}
    out: list[dict[str, Any]] = []
    for read in _kv_reads(index, index.nodes, -INF):
        if read.digest is None:
            continue
        key = canon(read.digest)
        first = seen.setdefault(key, (read.content, read))
        if first[0] != read.content:
            out.append({"digest": read.digest,
                        "reads": [{"node": r.node, "at_ms": r.at, "keys": len(r.entries)}
                                  for r in (first[1], read)]})
            seen[key] = (read.content, read)
            if len(out) >= limit:
                break
    return out


def _contested(by_key: Mapping[str, Sequence[Write]]) -> int:
    """Keys with a contested pair: two acknowledged puts from different nodes, neither
    certainly before the other in real time. Without one, conflict resolution was never
    exercised (a node refusing any racing put would pass on sequential writes alone)."""
    count = 0
    for writes in by_key.values():
        ok = [w for w in writes if w.happened and not w.deleted]
        if any(a.node != b.node
               and a.completed + REALTIME_TOLERANCE_MS >= b.invoked
               and b.completed + REALTIME_TOLERANCE_MS >= a.invoked
               for i, a in enumerate(ok) for b in ok[i + 1:]):
            count += 1
    return count


_NO_RACE = ("no contested pair: no two acknowledged puts of one key from different nodes "
            "overlapped in time, so conflict resolution was never exercised")


def writes_stopped(index: HistoryIndex) -> float | None:
    """When the kv workload stopped: the later of the writes phase's end and the last put.

    A put of unknown outcome counts from its invocation; taking the latest point keeps
    a write made outside the phase from being charged to convergence.
    """
    points = [end for _, end in index.phases.get("writes", [])]
    points += [
        p.completed if p.completed < INF else p.invoked
        for name in ("put", "delete")
        for p in index.ops.get(name, [])
    ]
    return max(points, default=None)


def _settle_point(index: HistoryIndex) -> tuple[float | None, str | None]:
    """From when the kv state must converge: writes stopped and no partition still open."""
    stop = writes_stopped(index)
    if stop is None:
        return None, "no key/value write was made"
    # No state can converge across a cut: convergence is owed from the heal of a partition
    # open at the end of the writes, or opened after it before the state had converged.
    for cut in sorted(index.cuts, key=lambda c: c.start):
        if cut.end <= stop:
            continue
        if cut.start > stop:
            up = {n for n in index.nodes if (lf := index.life_at(n, stop)) and lf.end > cut.start}
            if up and _convergence(_kv_reads(index, up, stop, cut.start), up)[0] is not None:
                break  # converged before this partition: it changes nothing
        if cut.end == INF:
            return None, "a partition was still open after writes stopped and never healed"
        stop = cut.end
    return stop, None


def writer_died_early(index: HistoryIndex, node: str, completed: float, grace_ms: float) -> bool:
    """The acknowledging node was killed before one gossip round could carry the write
    off it: without durable storage that write may be gone, so it counts as maybe. Time
    the node spent cut off from every other member (by the partition or cut open when it
    acknowledged) gives it no round either."""
    for life in index.lives.get(node, ()):
        if not life.ready <= completed <= life.end:
            continue
        if life.end < completed + grace_ms:
            return True
        cut = index.cut_open_at(completed)
        others = [n for n in index.nodes if n != node]
        if (cut is not None and others and life.end < cut.end + grace_ms
                and all(cut.separates(node, other, directed=True) for other in others)):
            return True
    return False


def _unshipped_as_maybe(index: HistoryIndex, write: Write, grace_ms: float) -> Write:
    if write.happened and writer_died_early(index, write.node, write.completed, grace_ms):
        return replace(write, outcome="info")
    return write


def heal_kv(
    index: HistoryIndex,
    members: Sequence[str],
    t_heal: float,
    window_end: float,
    deadline: float,
    tally: Tally,
) -> dict[str, Any] | None:
    """Judge kv agreement after one heal, when no write muddies it."""
    if any(t_heal <= p.invoked <= window_end for p in index.ops.get("put", [])):
        return {"heal_ms": t_heal, "skipped": "writes continued after the heal"}
    required = set(members)
    reads = _kv_reads(index, required, t_heal, window_end)
    unread = sorted(required - {r.node for r in reads})
    if unread:
        # Never a silent pass: this heal leaves the kv of these members untested.
        why = f"kv never read after the heal on {', '.join(unread)}"
        return {"heal_ms": t_heal, "untested": why}
    converged, latest = _convergence(reads, required)
    detail: dict[str, Any] = {"kv": True, "heal_ms": t_heal}
    if converged is not None:
        tally.observe(converged - t_heal, {**detail, "converged_ms": converged}, since=t_heal)
        return None
    if window_end < deadline:
        tally.undetermined += 1
        return None
    tally.never(window_end - t_heal, {**detail, "diverging_keys": _divergence(latest, 3)},
                since=t_heal)
    return {"heal_ms": t_heal, "digests": {n: r.digest for n, r in sorted(latest.items())}}


# --------------------------------------------------------------------------- convergence


# What exercises kv: writes, reads and digests (see capability_checker).
checker = capability_checker(calls=("put", "kv", "get", "delete"), reads=("kv", "get"))


@checker
def check_kv_convergence(
    judging: JudgingContext, requirement: Requirement, bound: float
) -> Verdict:
    """KV-CONVERGENCE: once writes stop, every surviving member ends with one digest."""
    index = judging.index
    t_stop, why = _settle_point(index)
    if t_stop is None:
        return make_verdict(requirement, "untested", None, bound, str(why))
    if not _acked_puts(index):
        return make_verdict(requirement, "untested", None, bound, _no_acked_put(index))
    lies = _digest_mismatches(index)
    if lies:
        first = lies[0]["reads"]
        text = (f"{len(lies)} digest(s) stood for different entries: e.g. {first[0]['node']} "
                f"and {first[1]['node']} reported one digest for states of "
                f"{first[0]['keys']} and {first[1]['keys']} key(s) (recomputed from the "
                "entries read): the digest does not summarise the state")
        # Not about timing: no stall of the host excuses it (windows=()).
        return make_verdict(requirement, "fail", None, bound, text, {"digest_mismatches": lies},
                            windows=())
    required = {
        n
        for n in index.nodes
        if index.live_at(n, t_stop) and index.lives[n] and index.lives[n][-1].end == INF
    }
    reads = _kv_reads(index, required, t_stop)
    if not required or not reads:
        return make_verdict(
            requirement,
            "untested",
            None,
            bound,
            "no kv read of a surviving member after writes stopped",
        )
    converged, latest = _convergence(reads, required)
    details: dict[str, Any] = {"writes_stopped_ms": t_stop, "members": sorted(required)}
    if converged is not None:
        measured = max(0.0, converged - t_stop)
        details["converged_ms"] = converged
        details["digest"] = latest[next(iter(required))].digest
        details["keys"] = len(latest[next(iter(required))].entries)
        status = "pass" if measured <= bound else "fail"
        relation = "<=" if status == "pass" else ">"
        text = (
            f"{len(required)} members' digests and entries equal {measured:.0f} ms after "
            f"writes stopped ({relation} {bound:.0f} ms)"
        )
        return make_verdict(requirement, status, measured, bound, text, details,
                            windows=[(t_stop, converged)])
    observed_for = index.end_ms - t_stop
    unread = sorted(required - set(latest))
    details["digests"] = {node: read.digest for node, read in sorted(latest.items())}
    details["diverging_keys"] = _divergence(latest)
    if unread:
        details["never_read"] = unread
    if observed_for < bound:
        details["inconclusive"] = True
        return make_verdict(
            requirement,
            "untested",
            None,
            bound,
            f"inconclusive: not yet converged when the history ended {observed_for:.0f} ms "
            f"after writes stopped, before the {bound:.0f} ms bound",
            details,
        )
    if unread:
        text = f"no successful kv read from {', '.join(unread)} after writes stopped"
    else:
        distinct = len({r.state for r in latest.values()})
        text = (
            f"digests never converged: {distinct} distinct digests among {len(latest)} "
            f"members {observed_for:.0f} ms after writes stopped"
        )
        if details["diverging_keys"]:
            text += f"; e.g. key {details['diverging_keys'][0]['key']!r} differs"
    return make_verdict(requirement, "fail", max(observed_for, bound), bound, text, details,
                        windows=[(t_stop, index.end_ms)])


# --------------------------------------------------------------------------- anti-entropy


@checker
def check_kv_after_partition(
    judging: JudgingContext, requirement: Requirement, bound: float
) -> Verdict:
    """KV-AFTER-PARTITION: after a heal, every member's kv digest agrees within the bound
    (writes made on either side during the partition must cross over)."""
    index = judging.index
    heals = [h for h in index.heals if any(c.end == h for c in index.cuts)]
    if not heals:
        why = "no partition was applied and healed"
        return make_verdict(requirement, "untested", None, bound, why)
    if not _acked_puts(index):
        return make_verdict(requirement, "untested", None, bound, _no_acked_put(index))
    tally = Tally(bound)
    notes: list[dict[str, Any]] = []
    starts = sorted(c.start for c in index.cuts)
    for t_heal in heals:
        deadline = t_heal + bound
        later = [s for s in starts if s > t_heal]
        window_end = min(later[0] if later else index.end_ms, index.end_ms)
        members = [
            n
            for n in index.nodes
            if (life := index.life_at(n, t_heal)) is not None and life.end >= deadline
        ]
        note = heal_kv(index, members, t_heal, window_end, deadline, tally)
        if note:
            notes.append(note)
    verdict = timed_verdict(
        requirement, tally, "post-heal kv agreements", "no heal was followed by kv reads"
    )
    if notes:
        evidence = verdict.evidence
        untested = [n for n in notes if "untested" in n]
        if untested and verdict.status == "pass":
            evidence += (f"; {len(untested)} heal(s) left untested ({untested[0]['untested']})")
        return make_verdict(
            requirement,
            verdict.status,
            verdict.measured,
            bound,
            evidence,
            {**verdict.details, "heals": notes},
            verdict.windows,
        )
    return verdict


@checker
def check_kv_after_restart(
    judging: JudgingContext, requirement: Requirement, bound: float
) -> Verdict:
    """KV-AFTER-RESTART: a node restarted with its state lost gets the cluster's state back
    (its digest and entries equal every live member's) within the bound of its readiness;
    and writes made after the restart reach it: within the bound of the last of them,
    every member agrees and the restarted node holds each acknowledged one (or what
    superseded it)."""
    index = judging.index
    tally = Tally(bound)
    skipped: list[dict[str, Any]] = []
    restarts = [life for lives in index.lives.values() for life in lives[1:]]
    if not restarts:
        return make_verdict(requirement, "untested", None, bound, "no node was restarted")
    if not _acked_puts(index):
        return make_verdict(requirement, "untested", None, bound, _no_acked_put(index))
    writes = sorted(
        (p for name in ("put", "delete") for p in index.ops.get(name, [])),
        key=lambda p: p.invoked,
    )
    by_key = writes_by_key(index)
    for life in restarts:
        window_end = min(life.end, index.end_ms)
        after = [p for p in writes if life.ready <= p.invoked <= window_end]
        catch_up_end = min(window_end, after[0].invoked) if after else window_end
        # The catch-up: from readiness to the first write after it.
        deadline = life.ready + bound
        members = _members_through(index, life.ready, deadline) | {life.node}
        reads = _kv_reads(index, members, life.ready, catch_up_end)
        detail = {"member": life.node, "ready_ms": life.ready, "kv": True}
        if {r.node for r in reads} != members:
            skipped.append({"node": life.node, "skipped": "not every member's kv was read "
                            "before the next write"})
        else:
            converged, latest = _convergence(reads, members)
            if converged is not None:
                tally.observe(converged - life.ready, {**detail, "converged_ms": converged},
                              since=life.ready)
            elif catch_up_end < deadline:
                if after:
                    skipped.append({"node": life.node,
                                    "skipped": "writes continued after the restart"})
                else:
                    tally.undetermined += 1
            else:
                digests = {n: r.digest for n, r in sorted(latest.items())}
                tally.never(catch_up_end - life.ready, {**detail, "digests": digests},
                            since=life.ready)
        if after:
            _judge_writes_after(index, life.node, after, window_end, by_key, tally)
    verdict = timed_verdict(
        requirement, tally, "restarted members' states", "no restart was followed by kv reads"
    )
    if skipped:
        details = {**verdict.details, "skipped": skipped[:_LIMIT]}
        return make_verdict(
            requirement, verdict.status, verdict.measured, bound, verdict.evidence, details,
            verdict.windows,
        )
    return verdict


def _members_through(index: HistoryIndex, t0: float, t1: float) -> set[str]:
    """The nodes up at ``t0`` whose life lasts at least until ``t1``."""
    return {n for n in index.nodes
            if (life := index.life_at(n, t0)) is not None and life.end >= t1}


def _judge_writes_after(
    index: HistoryIndex,
    node: str,
    after: Sequence[Any],
    window_end: float,
    by_key: Mapping[str, Sequence[Write]],
    tally: Tally,
) -> None:
    """Writes made during a restarted life: from the last of them, every member that
    stays up must agree within the bound, and ``node`` must hold each acknowledged put
    (or a write that superseded it)."""
    t0 = max(p.completed if p.completed < INF else p.invoked for p in after)
    deadline = t0 + tally.bound
    members = _members_through(index, t0, deadline) | {node}
    reads = _kv_reads(index, members, t0, window_end)
    detail = {"member": node, "writes_after_restart": len(after), "last_write_ms": t0,
              "kv": True}
    if {r.node for r in reads} != members:
        tally.undetermined += 1
        return
    converged, latest = _convergence(reads, members)
    if converged is None:
        if window_end < deadline:
            tally.undetermined += 1
        else:
            digests = {n: r.digest for n, r in sorted(latest.items())}
            tally.never(window_end - t0, {**detail, "digests": digests}, since=t0)
        return
    held = latest[node]
    acked = {p.call for p in after if p.op == "put" and p.outcome == "ok"}
    lost = [w for key in sorted({str(p.args.get("key")) for p in after})
            for w in lost_writes(by_key.get(key, ()), _values(held.entries, key))
            if w.call in acked]
    if lost:
        tally.never(window_end - t0, {**detail, "lost": [w.describe() for w in lost[:3]]},
                    since=t0)
        return
    tally.observe(converged - t0, {**detail, "converged_ms": converged}, since=t0)


# --------------------------------------------------------------------------- final state


def writes_by_key(index: HistoryIndex) -> dict[str, list[Write]]:
    """Every put and delete as a model :class:`~harness.judging.models.Write`, per key."""
    out: dict[str, list[Write]] = defaultdict(list)
    for name in ("put", "delete"):
        for op in index.ops.get(name, []):
            key = op.args.get("key")
            if key is None or op.node is None:
                continue
            result = op.result if isinstance(op.result, Mapping) else {}
            stamp = result.get("timestamp")
            out[str(key)].append(
                Write(
                    key=str(key),
                    node=str(op.node),
                    value=op.args.get("value"),
                    invoked=op.invoked,
                    completed=op.completed,
                    outcome=op.outcome,
                    timestamp=tuple(float(x) for x in stamp)
                    if isinstance(stamp, list | tuple)
                    else None,
                    deleted=name == "delete",
                    context=op.args.get("context"),
                    result_context=result.get("context") if op.outcome == "ok" else None,
                    call=op.call,
                )
            )
    return dict(out)


def _final_reads(index: HistoryIndex) -> tuple[dict[str, _KvRead], float | None, str | None]:
    """Each surviving member's last kv read after writes stopped (and any cut healed)."""
    t_stop, why = _settle_point(index)
    if t_stop is None:
        return {}, None, why
    latest: dict[str, _KvRead] = {}
    for read in _kv_reads(index, index.survivors(t_stop), t_stop):
        latest[read.node] = read
    if not latest:
        return {}, t_stop, "no kv read of a surviving member after writes stopped"
    return latest, t_stop, None


def _get_contexts(index: HistoryIndex) -> dict[str, list[tuple[Any, Sequence[Any]]]]:
    """Per key, the (context, values seen) of every completed get: what a later write
    carrying that context supersedes under mv."""
    contexts: dict[str, list[tuple[Any, Sequence[Any]]]] = defaultdict(list)
    for op in index.ops.get("get", []):
        if op.outcome == "ok" and isinstance(op.result, Mapping) and op.args.get("key"):
            values = op.result.get("values") or []
            contexts[str(op.args["key"])].append((op.result.get("context"), values))
    return contexts


@checker
def check_kv_mv(judging: JudgingContext, requirement: Requirement, bound: float) -> Verdict:
    """KV-MV: under multi-value, every member keeps exactly the causally maximal writes
    as siblings: none lost, none that a context superseded."""
    index = judging.index
    if index.conflict_policy != "mv":
        policy = f"the declared conflict policy is {index.conflict_policy!r}, not 'mv'"
        return make_verdict(requirement, "untested", None, bound, policy)
    by_key = writes_by_key(index)
    if not by_key:
        return make_verdict(requirement, "untested", None, bound, "no key/value write was made")
    if not _acked_puts(index):
        return make_verdict(requirement, "untested", None, bound, _no_acked_put(index))
    latest, _, why = _final_reads(index)
    if why:
        return make_verdict(requirement, "untested", None, bound, why)
    contexts = _get_contexts(index)
    bad: list[dict[str, Any]] = []
    for key in sorted(by_key):
        model = mv_model(by_key[key], contexts.get(key, ()))
        per_node = {n: _values(r.entries, key) for n, r in sorted(latest.items())}
        reasons: list[str] = []
        if len({canon(v) for v in per_node.values()}) > 1:
            reasons.append("members disagree")
        for node, siblings in per_node.items():
            problems = model.violations(siblings)
            if problems:
                reasons.append(f"{node}: {'; '.join(problems)}")
                break
        if reasons:
            bad.append(
                {
                    "key": key,
                    "reasons": reasons,
                    "values": per_node,
                    "required": sorted(model.required),
                },
            )
    verdict = count_verdict(
        requirement,
        bound,
        bad,
        len(by_key),
        "keys violate multi-value (causally maximal siblings)",
        f"all {len(by_key)} keys hold exactly their causally maximal writes "
        f"on {len(latest)} members",
    )
    if verdict.status == "pass" and not _contested(by_key):
        # Nothing raced: the siblings were never put to the test (a violation seen on
        # writes that did not race still fails, above).
        return make_verdict(requirement, "untested", None, bound, _NO_RACE)
    return verdict


@checker
def check_no_lost_write(judging: JudgingContext, requirement: Requirement, bound: float) -> Verdict:
    """KV-NO-LOST-WRITE: every acknowledged write is in every survivor's final state or
    superseded there by a later (lww) or causally newer (mv) write or delete.

    A write whose acknowledging node was killed before one gossip round could carry it
    is excused (it had no chance to leave a node without durable storage) unless some
    other member was seen holding it.
    """
    index = judging.index
    by_key = writes_by_key(index)
    if not by_key:
        return make_verdict(requirement, "untested", None, bound, "no key/value write was made")
    if not _acked_puts(index):
        return make_verdict(requirement, "untested", None, bound, _no_acked_put(index))
    latest, _, why = _final_reads(index)
    if why:
        return make_verdict(requirement, "untested", None, bound, why)
    policy = index.conflict_policy or "lww"
    contexts = _get_contexts(index) if policy == "mv" else {}
    grace = judging.params["gossip_interval_ms"]
    bad: list[dict[str, Any]] = []
    acked = 0
    excused = 0
    for key in sorted(by_key):
        writes = by_key[key]
        acked += sum(1 for w in writes if w.happened and not w.deleted)
        lost: dict[str, Write] = {}
        for _node, read in sorted(latest.items()):
            final = _values(read.entries, key)
            if policy == "mv":
                # Superseded by a write carrying a context some get returned: not lost.
                required = mv_model(writes, contexts.get(key, ())).required
                present = {canon(v) for v in final or []}
                missing = [w for w in writes if w.happened and not w.deleted
                           and canon(w.value) in required and canon(w.value) not in present]
            else:
                missing = lost_writes(writes, final, policy)
            for w in missing:
                lost.setdefault(canon(w.value), w)
        for w in lost.values():
            if writer_died_early(index, w.node, w.completed, grace):
                excused += 1
                continue
            bad.append(
                {
                    "key": key,
                    "reasons": [f"acknowledged write {w.value!r} from {w.node} is gone"],
                    "write": w.describe(),
                    "final": {n: _values(r.entries, key) for n, r in sorted(latest.items())},
                }
            )
    return count_verdict(
        requirement,
        bound,
        bad,
        acked,
        "acknowledged writes lost",
        f"all {acked} acknowledged writes survive or were superseded "
        f"({len(latest)} members' final state)",
        {"excused_writer_killed": excused},
    )


@checker
def check_deletes_stay_deleted(
    judging: JudgingContext, requirement: Requirement, bound: float
) -> Verdict:
    """KV-DELETE-STAYS: a deleted key does not come back with a value written before the
    delete (deletes need tombstones, or old gossip resurrects them)."""
    index = judging.index
    grace = judging.params["gossip_interval_ms"]
    by_key = {
        key: [_unshipped_as_maybe(index, w, grace) for w in writes]
        for key, writes in writes_by_key(index).items()
    }
    # A delete tests tombstones only where an acknowledged put came before it: something
    # the delete had to bury, and that old gossip could bring back.
    raw = writes_by_key(index)
    deleted = {
        k: ws for k, ws in by_key.items()
        if any(d.deleted and d.happened
               and any(p.happened and not p.deleted and p.invoked <= d.completed for p in raw[k])
               for d in raw[k])
    }
    if not deleted:
        none = "no key was deleted after an acknowledged put of it"
        return make_verdict(requirement, "untested", None, bound, none)
    latest, _, why = _final_reads(index)
    if why:
        return make_verdict(requirement, "untested", None, bound, why)
    bad: list[dict[str, Any]] = []
    for key in sorted(deleted):
        for node, read in sorted(latest.items()):
            final = _values(read.entries, key)
            hits = resurrected_deletes(deleted[key], final)
            if hits:
                bad.append(
                    {
                        "key": key,
                        "reasons": [f"{node} holds {final!r}, written before a delete"],
                        "delete": hits[0].describe(),
                    }
                )
                break
    return count_verdict(
        requirement,
        bound,
        bad,
        len(deleted),
        "deleted keys came back",
        f"all {len(deleted)} deleted keys stayed deleted on {len(latest)} members",
    )


@checker
def check_kv_lww(judging: JudgingContext, requirement: Requirement, bound: float) -> Verdict:
    """KV-LWW: every written key ends with one value, the same everywhere, that LWW
    allows; and every timestamp a node reported for a write lies inside the harness's
    own window of that call, widened by the allowed clock skew (a node cannot win a race
    by stamping its writes late)."""
    index = judging.index
    if index.conflict_policy != "lww":
        policy = f"the declared conflict policy is {index.conflict_policy!r}, not 'lww'"
        return make_verdict(requirement, "untested", None, bound, policy)
    by_key = writes_by_key(index)
    if not by_key:
        return make_verdict(requirement, "untested", None, bound, "no key/value write was made")
    if not _acked_puts(index):
        return make_verdict(requirement, "untested", None, bound, _no_acked_put(index))
    latest, _, why = _final_reads(index)
    if why:
        return make_verdict(requirement, "untested", None, bound, why)
    grace = judging.params["gossip_interval_ms"]
    clock: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for violation in write_clock_violations(
        [w for key in sorted(by_key) for w in by_key[key]], index.clock_skew_ms
    ):
        clock[violation["key"]].append(violation)
    bad: list[dict[str, Any]] = []
    for key in sorted(by_key):
        outcome = lww_model([_unshipped_as_maybe(index, w, grace) for w in by_key[key]])
        per_node = {node: _values(read.entries, key) for node, read in sorted(latest.items())}
        reasons: list[str] = [r for v in clock.get(key, []) for r in v["reasons"]][:3]
        if len({canon(v) for v in per_node.values()}) > 1:
            reasons.append("members disagree")
        if any(v is not None and len(v) > 1 for v in per_node.values()):
            reasons.append("more than one sibling under lww")
        for values in per_node.values():
            if values is None:
                if not outcome.absence_ok:
                    reasons.append("a completed write was lost")
                    break
            elif len(values) == 1 and canon(values[0]) not in outcome.allowed:
                reasons.append("surviving value is not the model's winner")
                break
        if reasons:
            entry: dict[str, Any] = {
                "key": key, "reasons": reasons, "values": per_node, "model": outcome.explain()
            }
            if key in clock:
                entry["clock_violations"] = clock[key][:3]
            bad.append(entry)
    if len(bad) > bound:
        first = bad[0]
        text = (
            f"{len(bad)} of {len(by_key)} keys violate last-writer-wins: key "
            f"{first['key']!r} ({'; '.join(first['reasons'])})"
        )
        winner = first.get("model", {}).get("winner")
        if winner is not None:
            text += f", model winner {winner['value']!r} from {winner['node']}"
        details = {"keys": len(by_key), "members": sorted(latest), "violations": bad[:_LIMIT]}
        return make_verdict(requirement, "fail", len(bad), bound, text, details)
    if not _contested(by_key):
        # Nothing raced: conflict resolution was never put to the test (a violation on
        # writes that did not race still fails, above).
        return make_verdict(requirement, "untested", None, bound, _NO_RACE)
    details = {"keys": len(by_key), "members": sorted(latest), "violations": []}
    text = (f"all {len(by_key)} keys ({_contested(by_key)} raced) hold the LWW winner on "
            f"{len(latest)} members")
    if any(w.timestamp for ws in by_key.values() for w in ws):
        text += f"; every write's timestamp within {index.clock_skew_ms:g} ms of its call"
    return make_verdict(requirement, "pass", len(bad), bound, text, details)


# The operations this capability adds to the vocabulary.
OPERATIONS: tuple[type[Op], ...] = (Put, Get, Delete)


# The checkers of this capability's requirements, by the name the catalogue gives.
CHECKERS: dict[str, Checker] = {
    "check_kv_convergence": check_kv_convergence,
    "check_kv_after_partition": check_kv_after_partition,
    "check_kv_after_restart": check_kv_after_restart,
    "check_kv_mv": check_kv_mv,
    "check_no_lost_write": check_no_lost_write,
    "check_deletes_stay_deleted": check_deletes_stay_deleted,
    "check_kv_lww": check_kv_lww,
}
