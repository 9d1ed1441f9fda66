"""What every checker shares: the wrapper that turns a judging function into a checker,
the verdict it returns, and the tally of a latency requirement.

:func:`capability_checker` puts the contract's rules around each requirement's own judgement: a
requirement whose capability (or conflict policy) is not declared is ``not-claimed``; a
declared capability whose every call answered 501 fails, and so does one whose evidence
came from a response that broke the contract's schemas; a requirement left untested
because every read it needed failed is ``error``; a timing failure that a stall of the
harness, or a saturation of the host the nodes under test did not cause, accounts for
inside the failing window is ``error`` (inconclusive, see :func:`_host_excuse`); and a
timed verdict names the node-stamped times the index rejected (clock violations).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import wraps
from typing import Any

from gossipcert.harness.history import Entry
from gossipcert.harness.judging.bounds import evaluate
from gossipcert.harness.judging.clock import run_time
from gossipcert.harness.judging.index import HistoryIndex, PairedOp
from gossipcert.harness.judging.models import Write, timestamp_violations
from gossipcert.harness.judging.verdict import Requirement, Verdict, crdt_type_claimed

__all__ = [
    "EVIDENCE_LIMIT",
    "Checker",
    "HostEpisode",
    "JudgingContext",
    "Tally",
    "as_index",
    "bound_of",
    "capability_checker",
    "in_time",
    "count_verdict",
    "host_episodes",
    "make_verdict",
    "timed_verdict",
    "unsettled",
    "with_clock_violations",
    "write_clock_violations",
]

# A checker: the history (or its index, built once by whoever checks many requirements),
# the requirement, and the bound's parameters (:func:`harness.judging.bounds.derived_parameters`),
# derived once per judged history by whoever checks it.
Checker = Callable[[Sequence[Entry] | HistoryIndex, Requirement, Mapping[str, float]], Verdict]

# Evidence lists are capped so a report stays readable whatever the cluster size.
EVIDENCE_LIMIT = 10

@dataclass
class Tally:
    """Latencies of the pairs a checker judged, and what it could not judge."""

    bound: float
    worst: float | None = None
    worst_detail: dict[str, Any] | None = None
    late: list[dict[str, Any]] = field(default_factory=list)
    missing: list[dict[str, Any]] = field(default_factory=list)
    checked: int = 0
    undetermined: int = 0
    excluded: int = 0
    # The window of every late or missing observation (see Verdict.windows), and how
    # many were recorded without their start (then the verdict states no windows).
    windows: list[tuple[float, float]] = field(default_factory=list)
    unplaced: int = 0

    def observe(self, latency: float, detail: dict[str, Any], since: float | None = None
                ) -> None:
        """One observation ``latency`` ms after its clock started (at ``since``, the
        harness's time of the kill, heal, broadcast or start it measures from)."""
        self.checked += 1
        latency = max(0.0, latency)
        if self.worst is None or latency > self.worst:
            self.worst, self.worst_detail = latency, {**detail, "latency_ms": round(latency, 1)}
        if latency > self.bound:
            self.late.append({**detail, "latency_ms": round(latency, 1)})
            self._place(since, latency)

    def never(self, at_least: float, detail: dict[str, Any], since: float | None = None
              ) -> None:
        """Not seen although the deadline passed: ``at_least`` is a lower bound (the
        watch that began at ``since`` lasted that long)."""
        self.checked += 1
        self._place(since, max(0.0, at_least))
        at_least = max(at_least, self.bound)
        self.missing.append({**detail, "at_least_ms": round(at_least, 1)})
        if self.worst is None or at_least > self.worst:
            self.worst = at_least
            self.worst_detail = {**detail, "never": True, "at_least_ms": round(at_least, 1)}

    def _place(self, since: float | None, length: float) -> None:
        if since is None:
            self.unplaced += 1
        else:
            self.windows.append((since, since + length))

    @property
    def failing_windows(self) -> tuple[tuple[float, float], ...] | None:
        """The windows of the failing observations, or None when one has no start."""
        return None if self.unplaced else tuple(self.windows)

    @property
    def failed(self) -> bool:
        return bool(self.late or self.missing)

    def details(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "checked": self.checked,
            "undetermined": self.undetermined,
            "excluded_partitioned": self.excluded,
        }
        if self.worst_detail is not None:
            out["worst"] = self.worst_detail
        if self.missing:
            out["never"] = self.missing[:EVIDENCE_LIMIT]
            out["never_count"] = len(self.missing)
        if self.late:
            out["late"] = sorted(self.late, key=lambda d: -d["latency_ms"])[:EVIDENCE_LIMIT]
            out["late_count"] = len(self.late)
        return out


def make_verdict(
    requirement: Requirement,
    status: str,
    measured: float | None,
    bound: float | None,
    evidence: str,
    details: Mapping[str, Any] | None = None,
    windows: Sequence[tuple[float, float]] | None = None,
) -> Verdict:
    """A verdict on ``requirement``; ``windows`` is what a timing failure is about (see
    :attr:`Verdict.windows`)."""
    return Verdict(
        id=requirement.id,
        level=requirement.level,
        title=requirement.title,
        status=status,
        measured=None if measured is None else round(float(measured), 3),
        bound=bound,
        unit=requirement.unit,
        evidence=evidence,
        details=dict(details or {}),
        scenario=requirement.scenario,
        windows=None if windows is None else tuple(windows),
    )


def bound_of(requirement: Requirement, params: Mapping[str, float]) -> float:
    return evaluate(requirement.bound, {**params, **requirement.constants})


def _not_claimed(index: HistoryIndex, requirement: Requirement) -> str | None:
    """Why the run's implementation does not claim ``requirement``, or None when it does
    (or the history cannot tell: no capabilities in its meta)."""
    if index.capabilities is not None and requirement.capability not in index.capabilities:
        return f"the implementation does not declare the {requirement.capability!r} capability"
    kind = requirement.crdt_type
    if index.capabilities is not None and kind and not crdt_type_claimed(index.capabilities, kind):
        return f"the implementation does not declare the {kind!r} CRDT type"
    policy, declared = requirement.policy, index.policies
    if policy is not None and declared is not None and policy not in declared:
        return f"the implementation does not declare the {policy!r} conflict policy"
    return None


def _unimplemented(index: HistoryIndex, capability: str, calls: Sequence[str]) -> str | None:
    """Why a declared ``capability`` is a contract violation (every one of its ``calls``
    answered 501), or None."""
    ops = [op for name in calls for op in index.ops.get(name, [])]
    if (
        ops
        and all(op.outcome == "fail" for op in ops)
        and any(_answered_501(op) for op in ops)
    ):
        return (
            f"contract violation: the {capability!r} capability is declared, but every one "
            f"of its {len(ops)} calls answered 501 (not implemented)"
        )
    return None


def _broke_contract(index: HistoryIndex, calls: Sequence[str]) -> str | None:
    """Why the evidence of a requirement is not evidence: a response of one of its
    ``calls`` broke the contract (``harness.drivers.contract``), or None. The first is
    named, with its endpoint and the field at fault. The probes of capabilities the
    manifest leaves out (``undeclared``) are no one requirement's evidence: what they
    answered is check-contract's to judge, never a claimed requirement's failure."""
    broken = [op for name in dict.fromkeys(calls) for op in index.ops.get(name, [])
              if isinstance(op.result, Mapping) and op.result.get("contract")]
    if not broken:
        return None
    first = min(broken, key=lambda op: op.completed)
    found = list(first.result.get("contract", []))  # type: ignore[union-attr]
    more = f" (and {len(found) - 1} more in it)" if len(found) > 1 else ""
    return (f"contract violation: {len(broken)} response(s) broke the control API "
            f"(specs/control-api.yaml), first from node {first.node}: {found[0]}{more}")


def _answered_501(op: PairedOp) -> bool:
    """Whether a call was refused as not implemented (HTTP 501, or the contract's
    ``not_implemented`` error code when the status was not recorded)."""
    result = op.result if isinstance(op.result, Mapping) else {}
    return result.get("status") == 501 or result.get("error") == "not_implemented"


def _reads_failed(index: HistoryIndex, capability: str, reads: Sequence[str]) -> str | None:
    """Why nothing of ``capability`` could be judged because its ``reads`` failed: reads
    were made and none answered, or None."""
    made = [op for name in reads for op in index.ops.get(name, [])]
    if made and not any(op.outcome == "ok" for op in made):
        outcomes = Counter(op.outcome for op in made)
        shown = ", ".join(f"{n} {o}" for o, n in sorted(outcomes.items()))
        return f"every one of the {len(made)} {capability} reads failed ({shown})"
    return None


@dataclass(frozen=True)
class JudgingContext:
    """What every requirement of one history is judged against: the history's index and
    the timing's derived parameters, computed once for all of them, so no checker
    derives them again (and none can derive them from a different timing)."""

    index: HistoryIndex
    params: Mapping[str, float]


_Body = Callable[[JudgingContext, Requirement, float], Verdict]


def as_index(history: Sequence[Entry] | HistoryIndex) -> HistoryIndex:
    """The index of ``history``: itself when it is one, else built now."""
    return history if isinstance(history, HistoryIndex) else HistoryIndex.build(history)


def capability_checker(
    *, calls: Sequence[str] = (), reads: Sequence[str] = (), clock_kinds: Sequence[str] = ()
) -> Callable[[_Body], Checker]:
    """The decorator a capability's module puts on its judging functions, given what
    exercises that capability: ``calls`` (if every one answered 501, the declared
    capability is missing), ``reads`` (if every one failed, nothing could be judged) and
    ``clock_kinds`` (the node-stamped times its timed requirements are measured with)."""

    def checker(body: _Body) -> Checker:
        """Turn ``body(judging, requirement, bound)`` into the public checker signature.

        Around the body: a requirement the implementation does not claim is
        ``not-claimed``; a declared capability that answered 501 to every call fails (the
        contract says a declared capability is served); and a requirement the body could
        not exercise is ``error`` rather than ``untested`` when every read it needed
        failed.
        """

        @wraps(body)
        def check(
            history: Sequence[Entry] | HistoryIndex,
            requirement: Requirement,
            params: Mapping[str, float],
        ) -> Verdict:
            index = as_index(history)
            bound = bound_of(requirement, params)
            why = _not_claimed(index, requirement)
            if why is not None:
                return make_verdict(requirement, "not-claimed", None, bound, why)
            violation = (_unimplemented(index, requirement.capability, calls)
                         or _broke_contract(index, (*calls, *reads, *(
                             ("events",) if clock_kinds else ()))))
            if violation is not None:
                return make_verdict(requirement, "fail", None, bound, violation)
            verdict = body(JudgingContext(index, params), requirement, bound)
            if verdict.status == "untested":
                failed = _reads_failed(index, requirement.capability, reads)
                if failed is not None:
                    text = f"{failed}: the harness could not judge ({verdict.evidence})"
                    return replace(verdict, status="error", evidence=text)
            if verdict.status == "fail" and requirement.unit == "ms":
                verdict = _host_excuse(index, verdict, bound)
            if verdict.unit == "ms" and clock_kinds:
                seen = [v for v in index.clock_violations if v.get("kind") in clock_kinds]
                return with_clock_violations(verdict, seen, index.begin_ms)
            return verdict

        return check

    return checker


@dataclass(frozen=True)
class HostEpisode:
    """A stretch of the run when the host, not the implementation, may have set the
    pace: a stall of the harness's own scheduling (``host-lag``) or a saturation of the
    host's CPU (``host-saturated``), with whether the nodes under test caused it."""

    kind: str
    start: float
    end: float
    args: Mapping[str, Any]

    @property
    def by_nodes(self) -> bool:
        """A saturation the nodes under test caused: it excuses none of their failures."""
        return self.kind == "host-saturated" and bool(self.args.get("by_nodes"))

    def describe(self, begin: float = 0.0) -> str:
        """One phrase for evidence, times in seconds from ``begin`` (the history's)."""
        at = run_time(self.start, begin)
        if self.kind == "host-lag":
            return (f"a scheduling stall of the harness of {float(self.args.get('lag_ms', 0)):.0f}"
                    f" ms (beyond the probe timeout of {self.args.get('threshold_ms')} ms) "
                    f"at {at}")
        share = self.args.get("nodes_share")
        whose = "" if share is None else f", the nodes under test using {float(share):.0%} of it"
        return (f"the host's {self.args.get('cpus', '?')} CPU(s) saturated from {at} to "
                f"{run_time(self.end, begin)}{whose}")


def host_episodes(index: HistoryIndex) -> list[HostEpisode]:
    """Every host-lag and host-saturated phase of the history, with the arguments of its
    end edge over those of its start (the end edge says whose a saturation was, over its
    whole length); a phase still open when the history ends ends there."""
    out: list[HostEpisode] = []
    opened: dict[str, tuple[float, Mapping[str, Any]]] = {}
    kinds = ("host-lag", "host-saturated")
    for e in sorted((e for e in index.entries if e.type == "phase" and e.op in kinds),
                    key=lambda e: e.time_ms):
        edge = e.args.get("edge")
        if edge == "start":
            opened.setdefault(e.op, (e.time_ms, e.args))
        elif edge == "end" and e.op in opened:
            t0, args = opened.pop(e.op)
            out.append(HostEpisode(e.op, t0, e.time_ms, {**args, **e.args, "edge": "span"}))
    for kind, (t0, args) in opened.items():
        out.append(HostEpisode(kind, t0, max(t0, index.end_ms), args))
    return sorted(out, key=lambda ep: ep.start)


def _lost(window: tuple[float, float], episodes: Sequence[HostEpisode]) -> float:
    """How much of ``window`` the episodes cover (overlapping episodes counted once)."""
    a, b = window
    spans = sorted((max(a, ep.start), min(b, ep.end)) for ep in episodes
                   if ep.start < b and ep.end > a)
    lost, reach = 0.0, a
    for s0, s1 in spans:
        s0 = max(s0, reach)
        if s1 > s0:
            lost += s1 - s0
            reach = s1
    return lost


def _host_excuse(index: HistoryIndex, verdict: Verdict, bound: float) -> Verdict:
    """``verdict`` (a failed timing requirement), made ``error`` (inconclusive) when the
    host accounts for the failure, else as it was, with what the host did noted.

    Only episodes the harness can vouch for excuse: its own scheduling stalls, and
    saturations of the host the nodes under test did not cause (a node that spins the
    CPU saturates the host itself). And only inside the failing windows: a failing
    observation is excused when, taking the time those episodes covered of its window
    as lost, what is left is within the bound. Every failing observation must be
    excused, else the failure stands. A checker that states no window falls back to
    any episode of the run.
    """
    episodes = host_episodes(index)
    if not episodes:
        return verdict
    excusing = [ep for ep in episodes if not ep.by_nodes]
    own = [ep for ep in episodes if ep.by_nodes]
    windows = verdict.windows
    if windows is None:  # the checker does not say: any episode of the run
        if excusing:
            return _inconclusive(index, verdict, excusing, "during the run")
        return _noted(index, verdict, own, [])
    if not windows:  # not about timing: no stall excuses it
        return verdict
    overlapping = [ep for ep in excusing if any(ep.start < b and ep.end > a for a, b in windows)]
    unexcused = [w for w in windows if (w[1] - w[0]) - _lost(w, excusing) > bound + 1e-6]
    if not unexcused:
        return _inconclusive(index, verdict, overlapping, "inside the failing window(s)")
    mine = [ep for ep in own if any(ep.start < b and ep.end > a for a, b in windows)]
    return _noted(index, verdict, mine, overlapping, len(unexcused), len(windows))


def _inconclusive(index: HistoryIndex, verdict: Verdict, episodes: Sequence[HostEpisode],
                  where: str) -> Verdict:
    first = episodes[0]
    text = (
        f"inconclusive: the host, not the implementation, may have set the pace {where}: "
        f"{len(episodes)} episode(s), e.g. {first.describe(index.begin_ms)}; this run cannot judge "
        f"timing there (run.host_load in the report says which processes used the CPU; "
        f"rerun on a less loaded machine); the failure was: {verdict.evidence}"
    )
    details = {**verdict.details,
               "host_episodes": [_episode_detail(ep) for ep in episodes[:EVIDENCE_LIMIT]]}
    return replace(verdict, status="error", evidence=text, details=details)


def _noted(index: HistoryIndex, verdict: Verdict, own: Sequence[HostEpisode],
           other: Sequence[HostEpisode], unexcused: int = 0, total: int = 0) -> Verdict:
    """The failure as it stands, saying why the host's episodes did not excuse it."""
    notes = []
    if own:
        notes.append(f"the host was saturated by the nodes under test themselves "
                     f"({own[0].describe(index.begin_ms)}), which excuses none of their "
                     "failures")
    if other and unexcused:
        notes.append(f"{unexcused} of {total} failing observation(s) are late beyond "
                     "what the host's stalls inside their windows account for")
    if not notes:
        return verdict
    details = {**verdict.details,
               "host_episodes": [_episode_detail(ep) for ep in [*own, *other][:EVIDENCE_LIMIT]]}
    return replace(verdict, evidence=f"{verdict.evidence}; not excused: {'; '.join(notes)}",
                   details=details)


def _episode_detail(ep: HostEpisode) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": ep.kind, "start_ms": round(ep.start, 1),
                           "end_ms": round(ep.end, 1)}
    for key in ("lag_ms", "nodes_share", "by_nodes"):
        if key in ep.args:
            out[key] = ep.args[key]
    return out


def _fmt(ms: float | None) -> str:
    return "n/a" if ms is None else f"{ms:.0f}"


def timed_verdict(requirement: Requirement, tally: Tally, what: str, nothing: str) -> Verdict:
    """The verdict of a latency requirement from its tally (a failure carries the
    windows of its late and missing observations)."""
    details = tally.details()
    windows = tally.failing_windows
    if tally.checked == 0:
        why = nothing
        if tally.undetermined or tally.excluded:
            why += (
                f" ({tally.undetermined} undetermined: no report after the event settled "
                f"them before the deadline (the history ended, a side was killed, or the "
                f"node's reads failed); {tally.excluded} excluded by partitions)"
            )
        return make_verdict(requirement, "untested", None, tally.bound, why, details)
    worst = tally.worst_detail or {}
    if windows:  # machine-readable span of what failed, for the report's figures
        details["window_ms"] = [round(min(a for a, _ in windows), 1),
                                round(max(b for _, b in windows), 1)]
    if tally.missing:
        first = tally.missing[0]
        text = (
            f"{len(tally.missing)} of {tally.checked} {what} never happened, e.g. "
            f"{_describe(first)} (after {_fmt(first['at_least_ms'])} ms, bound "
            f"{_fmt(tally.bound)} ms)"
        )
        return make_verdict(requirement, "fail", tally.worst, tally.bound, text, details,
                            windows)
    if tally.late:
        text = (
            f"{len(tally.late)} of {tally.checked} {what} exceeded the bound: worst "
            f"{_describe(worst)} after {_fmt(tally.worst)} ms > {_fmt(tally.bound)} ms"
        )
        return make_verdict(requirement, "fail", tally.worst, tally.bound, text, details,
                            windows)
    text = f"all {tally.checked} {what} within bound; worst {_describe(worst)} after "
    text += f"{_fmt(tally.worst)} ms <= {_fmt(tally.bound)} ms"
    return make_verdict(requirement, "pass", tally.worst, tally.bound, text, details)


def _describe(detail: Mapping[str, Any]) -> str:
    if "broadcast" in detail:
        return f"broadcast {detail['broadcast']!r} at {detail.get('member')}"
    if "killed" in detail:
        return f"{detail.get('observer')} marking {detail['killed']} dead"
    if "observer" in detail and "member" in detail:
        return f"{detail['observer']} seeing {detail['member']} alive"
    if "kv" in detail:
        return "kv digests equal"
    return json.dumps(detail, sort_keys=True, default=str)



def in_time(seen: float | None, deadline: float) -> bool:
    """Seen by the deadline: good evidence whatever partitions happened meanwhile."""
    return seen is not None and seen <= deadline


def unsettled(verdict: Verdict, pairs: int, what: str) -> Verdict:
    """``verdict``, made ``untested`` when it passed while ``pairs`` of its ``what`` were
    first seen after their deadline with a gap in the harness's own reads before it: each
    may have been in time or not, so the run holds no evidence that all were. Counting
    them as failures would blame the node for the harness's gap; passing would certify
    what nobody saw (a gap the node made by failing reads is its own, and judged late)."""
    if pairs == 0 or verdict.status != "pass":
        return verdict
    text = (
        f"{pairs} {what} first seen after the deadline, after a gap in the harness's reads "
        f"that may hide a timely one: not judged, so no pass ({verdict.evidence})"
    )
    details = {**verdict.details, "unsettled": pairs}
    return replace(verdict, status="untested", evidence=text, details=details)


def with_clock_violations(verdict: Verdict, violations: Sequence[Mapping[str, Any]],
                          begin: float = 0.0) -> Verdict:
    """``verdict`` with the node-stamped times its data rejected, stated in its evidence
    and listed in its details (the harness's observations were judged instead); times
    in the text count from ``begin``, the run's start."""
    if not violations:
        return verdict
    first = violations[0]
    note = (
        f"; {len(violations)} clock violation(s): node-stamped times outside what "
        f"the harness observed, judged at the observed time instead (e.g. {first['node']} "
        f"stamped its {first['what']} at {run_time(first['claimed_ms'], begin)}, "
        f"{first['reason']})"
    )
    details = {**verdict.details, "clock_violations": list(violations[:EVIDENCE_LIMIT])}
    return replace(verdict, evidence=verdict.evidence + note, details=details)


def count_verdict(
    requirement: Requirement,
    bound: float,
    bad: Sequence[dict[str, Any]],
    total: int,
    failing: str,
    passing: str,
    extra: Mapping[str, Any] | None = None,
) -> Verdict:
    """Pass while at most ``bound`` of ``total`` checked items are ``bad``; the first bad
    one is the evidence of a failure."""
    details: dict[str, Any] = {
        "checked": total,
        "violations": list(bad[:EVIDENCE_LIMIT]),
        **(extra or {}),
    }
    if len(bad) > bound:
        first = bad[0]
        reasons = "; ".join(first.get("reasons", [])) if "reasons" in first else ""
        label = first.get("key", first.get("name", "?"))
        text = f"{len(bad)} of {total} {failing}: {label!r}" + (f" ({reasons})" if reasons else "")
        return make_verdict(requirement, "fail", len(bad), bound, text, details)
    return make_verdict(requirement, "pass", len(bad), bound, passing, details)


def write_clock_violations(writes: Sequence[Write], skew_ms: float) -> list[dict[str, Any]]:
    """One violation per write stamped outside its call window (widened by the skew)."""
    return [
        {
            "key": w.key,
            "reasons": [
                f"clock violation: {w.node} stamped the write of {w.value!r} at "
                f"{w.timestamp[0]:.0f}, outside its call "
                f"[{w.invoked:.0f}, {w.completed:.0f}] +/- {skew_ms:g} ms"
            ],
            "write": w.describe(),
            "invoked_ms": w.invoked,
            "completed_ms": w.completed,
        }
        for w in timestamp_violations(writes, skew_ms)
        if w.timestamp
    ]
