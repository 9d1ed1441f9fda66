"""Serf against the reference node on real processes, with the same memberlist LAN timing
and the same cluster size, measured only through what the harness itself observes.

    flock /tmp/gossipcert-cpu.lock .venv/bin/python benchmarks/serf_vs_reference.py \
        --nodes 5 --reps 3 --loss-hold-s 30

The reference node normally runs its own, faster timing; a comparison with Serf means
anything only when both run the same probe interval, suspicion multiplier and the rest.
So the reference manifest is rebuilt with Serf's declared timing (memberlist's
DefaultLANConfig, specs/timing-profiles.yaml); its launch template turns ``timing`` into the node's
flags, and the script prints those flags as the running processes carry them.

Per repetition and per implementation, interleaved (reference, Serf, reference, Serf) so
the shared machine's noise falls on both:

- a fresh cluster: broadcasts from a few origins, each polled on every other member
  (``GET /v1/broadcasts``) until all have it; then a kill -9 of one member, every other
  member's ``GET /v1/members`` polled until it reports the victim ``dead`` or drops it;
- another fresh cluster: 10% packet loss on every directed link (packet plane, iptables)
  held for a while, then healed and watched a little longer; any live member that any
  member reports ``dead`` (or drops) is a false positive. Both sides on equal terms: the
  reference node runs without a dial map there (``routing: none``), so like Serf it
  sends its probes, acks and gossip as UDP datagrams to the addresses its peers advertise
  and its push-pull over TCP, and the same packet-plane rules drop both protocols of
  both implementations.

Every time here is the harness's monotonic clock at the poll that first showed the
outcome (an upper bound, within one poll cycle); no node's own timestamp is used.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from gossipcert.harness.drivers.cluster import Cluster
from gossipcert.harness.manifest import Manifest, launch_argv, load_manifest

IMPLS = ("reference", "serf")
LABEL = {"reference": "reference", "serf": "Serf"}
DETECT_POLL_S = 0.05  # target cycle of a members poll over every observer
BROADCAST_POLL_S = 0.02  # target cycle of a broadcasts poll over every receiver
LOSS_POLL_S = 0.1
SETTLE_TIMEOUT_S = 30.0


# ---- manifests -----------------------------------------------------------------------


def manifests() -> dict[str, Manifest]:
    """Serf's manifest as shipped, and the reference node's with Serf's declared timing."""
    serf = load_manifest("serf")
    ref = load_manifest("reference")
    timing = {**ref.timing, **serf.timing}
    ref = dataclasses.replace(ref, timing=timing, declared_timing=dict(serf.declared_timing))
    return {"reference": ref, "serf": serf}


def timing_flags(manifest: Manifest) -> list[str]:
    """The timing flags the reference node's launch template expands to (what it runs)."""
    argv = launch_argv(manifest, manifest.launch_for("process"), node_id="n1",
                       gossip=("127.0.0.1", 1), control=("127.0.0.1", 2), seeds=[],
                       routes={}, data_dir="/tmp")
    return [f"{a} {b}" for a, b in zip(argv, argv[1:], strict=False)
            if a.startswith("--") and a.endswith(("-ms", "-mult", "-checks", "fanout"))]


def running_cmdline(fragment: str) -> list[str] | None:
    """The argv of a running process whose command line contains ``fragment``."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
            if fragment.encode() in raw:
                return [a.decode() for a in raw.split(b"\0") if a]
    return None


# ---- observation ---------------------------------------------------------------------


def statuses(cluster: Cluster, observer: str) -> dict[str, str] | None:
    """One ``GET /v1/members`` of ``observer``: member -> status; None if the read failed."""
    reply = cluster.call(observer, "members", {})
    if not reply.ok or not isinstance(reply.body, dict):
        return None
    return {str(m.get("id")): str(m.get("status")) for m in reply.body.get("members", [])}


def settle(cluster: Cluster, extra_s: float) -> float:
    """Wait until every member reports every member alive, then ``extra_s`` more."""
    t0 = time.monotonic()
    nodes = cluster.live_nodes()
    while time.monotonic() - t0 < SETTLE_TIMEOUT_S:
        views = [statuses(cluster, n) for n in nodes]
        if all(v is not None and all(v.get(m) == "alive" for m in nodes) for v in views):
            break
        time.sleep(0.1)
    else:
        raise RuntimeError(f"members did not all see each other alive in {SETTLE_TIMEOUT_S} s")
    took = time.monotonic() - t0
    time.sleep(extra_s)
    return took


def paced(period_s: float, until: Callable[[], bool], body: Callable[[], None]) -> float:
    """Run ``body`` every ``period_s`` (or back to back if slower) until ``until()``;
    returns the longest cycle, the resolution of what the polls saw."""
    longest = 0.0
    while not until():
        start = time.monotonic()
        body()
        spent = time.monotonic() - start
        longest = max(longest, spent)
        time.sleep(max(0.0, period_s - spent))
    return longest


@dataclass
class Detection:
    first_s: float | None
    all_s: float | None
    kill_call_s: float
    longest_cycle_s: float
    agent_survived: bool = False


def detect_kill(cluster: Cluster, victim: str, timeout_s: float) -> Detection:
    """Kill -9 ``victim``; poll every other member until each reports it dead or gone."""
    observers = [n for n in cluster.live_nodes() if n != victim]
    bind = cluster.addresses[victim].gossip_addr
    cluster.poll_events()  # so the kill's own event poll is short
    before = time.monotonic()
    cluster.kill(victim)
    killed = time.monotonic()  # the victim is reaped by now: certainly dead
    # Serf's agent is the bridge's child and dies with it (parent-death signal): check.
    time.sleep(0.05)
    survived = running_cmdline(f"-bind={bind}") is not None
    seen: dict[str, float] = {}

    def poll() -> None:
        for observer in observers:
            if observer in seen:
                continue
            view = statuses(cluster, observer)
            at = time.monotonic()
            if view is not None and view.get(victim, "dead") == "dead":
                seen[observer] = at - killed

    longest = paced(DETECT_POLL_S, lambda: len(seen) == len(observers)
                    or time.monotonic() - killed > timeout_s, poll)
    done = len(seen) == len(observers)
    return Detection(first_s=min(seen.values()) if seen else None,
                     all_s=max(seen.values()) if done else None,
                     kill_call_s=killed - before, longest_cycle_s=longest,
                     agent_survived=survived)


def broadcast_latencies(cluster: Cluster, origin: str, msg_id: str,
                        timeout_s: float) -> dict[str, float | None]:
    """Broadcast from ``origin``; per other member, seconds until a poll showed the id."""
    receivers = [n for n in cluster.live_nodes() if n != origin]
    got: dict[str, float] = {}
    sent = time.monotonic()
    reply = cluster.call(origin, "broadcast", {"id": msg_id, "payload": {"hello": origin}})
    if not reply.ok:
        raise RuntimeError(f"broadcast {msg_id} on {origin} refused: {reply.error}")

    def poll() -> None:
        for node in receivers:
            if node in got:
                continue
            r = cluster.call(node, "broadcasts", {})
            at = time.monotonic()
            body = r.body if r.ok and isinstance(r.body, dict) else {}
            if any(x.get("id") == msg_id for x in body.get("received", [])):
                got[node] = at - sent

    paced(BROADCAST_POLL_S, lambda: len(got) == len(receivers)
          or time.monotonic() - sent > timeout_s, poll)
    return {n: got.get(n) for n in receivers}


@dataclass
class LossRun:
    dead_members: set[str] = field(default_factory=set)  # live members seen dead or gone
    dead_pairs: set[tuple[str, str]] = field(default_factory=set)  # (observer, member)
    suspect_members: set[str] = field(default_factory=set)
    event_dead: set[str] = field(default_factory=set)  # cross-check: node-side events
    event_suspect: set[str] = field(default_factory=set)
    dropped: dict[str, int] = field(default_factory=dict)  # protocol -> packets the rules dropped
    failed_reads: int = 0
    reads: int = 0
    all_alive_at_end: bool = False


def loss_run(cluster: Cluster, probability: float, hold_s: float, after_s: float) -> LossRun:
    """Loss on every directed link for ``hold_s``, healed, watched ``after_s`` more."""
    nodes = cluster.live_nodes()
    out = LossRun()
    start_entry = len(cluster.history.entries())
    last: dict[str, dict[str, str] | None] = {}

    def poll() -> None:
        for observer in nodes:
            view = statuses(cluster, observer)
            out.reads += 1
            last[observer] = view
            if view is None:
                out.failed_reads += 1
                continue
            for member in nodes:
                status = view.get(member, "gone")
                if member == observer:
                    continue
                if status in ("dead", "gone"):
                    out.dead_members.add(member)
                    out.dead_pairs.add((observer, member))
                elif status == "suspect":
                    out.suspect_members.add(member)

    cluster.loss([(a, b) for a in nodes for b in nodes if a != b], probability)
    t0 = time.monotonic()
    try:
        paced(LOSS_POLL_S, lambda: time.monotonic() - t0 >= hold_s, poll)
    finally:
        with contextlib.suppress(ValueError, IndexError, OSError):
            out.dropped = dropped_packets()
        cluster.heal()
    t1 = time.monotonic()
    paced(LOSS_POLL_S, lambda: time.monotonic() - t1 >= after_s, poll)
    out.all_alive_at_end = all(
        v is not None and all(v.get(m) == "alive" for m in nodes) for v in last.values())
    cluster.poll_events()
    for entry in cluster.history.entries()[start_entry:]:
        if entry.type != "event" or entry.op != "member":
            continue
        member, status = entry.args.get("member"), entry.args.get("status")
        if member in nodes and member != entry.node:
            if status == "dead":
                out.event_dead.add(str(member))
            elif status == "suspect":
                out.event_suspect.add(str(member))
    return out


def dropped_packets() -> dict[str, int]:
    """Packets the run's random-loss rules have dropped so far, by protocol: evidence that
    the loss hit the gossip traffic (read from the rule counters, host namespace)."""
    text = subprocess.run(["iptables-save", "-c"], capture_output=True, text=True,
                          check=False).stdout
    out: dict[str, int] = {}
    for line in text.splitlines():
        if "GC-" not in line or "statistic" not in line or not line.startswith("["):
            continue
        packets = int(line[1:line.index(":")])
        parts = line.split()
        proto = parts[parts.index("-p") + 1] if "-p" in parts else "any"
        out[proto] = out.get(proto, 0) + packets
    return out


# ---- one cluster each ----------------------------------------------------------------


def open_cluster(manifest: Manifest, nodes: int, run_dir: Path, seed: int) -> Cluster:
    run_dir.mkdir(parents=True, exist_ok=True)  # the history file opens before start()
    cluster = Cluster(manifest, nodes, run_dir, seed=seed)
    try:
        cluster.start()
    except BaseException:
        cluster.close()
        raise
    return cluster


@dataclass
class Samples:
    first: list[float] = field(default_factory=list)
    all: list[float] = field(default_factory=list)
    undetected: int = 0
    kill_call: list[float] = field(default_factory=list)
    detect_cycle: list[float] = field(default_factory=list)
    survivors: int = 0
    bcast_member: list[float] = field(default_factory=list)
    bcast_last: list[float] = field(default_factory=list)
    bcast_missing: int = 0
    loss: list[LossRun] = field(default_factory=list)
    settle: list[float] = field(default_factory=list)
    cmdline: list[str] | None = None


def detection_rep(impl: str, manifest: Manifest, args: argparse.Namespace, rep: int,
                  run_dir: Path, out: Samples) -> None:
    """Broadcasts, then a kill -9 and its detection, on one fresh cluster."""
    rng = random.Random(rep)
    cluster = open_cluster(manifest, args.nodes, run_dir, seed=rep)
    try:
        if out.cmdline is None:
            ctrl = cluster.addresses["n1"].control
            out.cmdline = running_cmdline(f"{ctrl[0]}:{ctrl[1]}")
        out.settle.append(settle(cluster, args.settle_s))
        origins = rng.sample(cluster.node_ids, min(args.broadcasts, args.nodes))
        for k, origin in enumerate(origins):
            lat = broadcast_latencies(cluster, origin, f"cmp-{rep}-{k}", args.broadcast_timeout_s)
            delivered = [v for v in lat.values() if v is not None]
            out.bcast_member += delivered
            out.bcast_missing += len(lat) - len(delivered)
            if len(delivered) == len(lat):
                out.bcast_last.append(max(delivered))
            time.sleep(0.5)
        victim = rng.choice(cluster.node_ids)
        d = detect_kill(cluster, victim, args.detect_timeout_s)
        out.kill_call.append(d.kill_call_s)
        out.detect_cycle.append(d.longest_cycle_s)
        out.survivors += d.agent_survived
        if d.first_s is not None:
            out.first.append(d.first_s)
        if d.all_s is not None:
            out.all.append(d.all_s)
        else:
            out.undetected += 1
        print(f"  {impl:9} rep {rep}: broadcasts from {','.join(origins)}, last member "
              f"{_fmt(out.bcast_last[-len(origins):], max)} s; kill {victim}: first "
              f"{_s(d.first_s)} all {_s(d.all_s)}", flush=True)
    finally:
        cluster.close()


def loss_rep(impl: str, manifest: Manifest, args: argparse.Namespace, rep: int,
             run_dir: Path, out: Samples) -> None:
    """Packet loss on every link, on one fresh cluster; false positives counted. No dial
    map for the reference node here: its datagrams go where Serf's do, past no proxy, and
    the packet plane drops both alike."""
    if manifest.accepts_dial_map:
        manifest = dataclasses.replace(manifest, routing="none")
    cluster = open_cluster(manifest, args.nodes, run_dir, seed=100 + rep)
    try:
        out.settle.append(settle(cluster, args.settle_s))
        r = loss_run(cluster, args.loss, args.loss_hold_s, args.after_heal_s)
        out.loss.append(r)
        print(f"  {impl:9} rep {rep}: loss {args.loss:.0%} {args.loss_hold_s:.0f} s: dead "
              f"{sorted(r.dead_members) or '-'} suspect {sorted(r.suspect_members) or '-'} "
              f"events dead {sorted(r.event_dead) or '-'} suspect "
              f"{sorted(r.event_suspect) or '-'}; reads {r.reads} failed {r.failed_reads}; "
              f"all alive at end {r.all_alive_at_end}; dropped {r.dropped}", flush=True)
    finally:
        cluster.close()


# ---- report --------------------------------------------------------------------------


def _s(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def _fmt(values: Iterable[float], how: Callable[[list[float]], float]) -> str:
    vals = list(values)
    return "-" if not vals else f"{how(vals):.2f}"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None:
        return "-"
    if b == 0:
        return "-" if a == 0 else "inf"
    return f"{a / b:.2f}"


def report(samples: dict[str, Samples], args: argparse.Namespace,
           timing: dict[str, float], wall_s: float) -> bool:
    """Print the Markdown table; return whether the target is met."""
    ref, serf = samples["reference"], samples["serf"]

    def med(xs: list[float]) -> float | None:
        return statistics.median(xs) if xs else None

    def mx(xs: list[float]) -> float | None:
        return max(xs) if xs else None

    def fp_total(s: Samples, what: str) -> int | None:
        """Summed over the loss runs; None when none ran (``--skip-loss``)."""
        return sum(len(getattr(r, what)) for r in s.loss) if s.loss else None

    rows: list[tuple[str, float | None, float | None, str]] = [
        ("kill -9 -> first member reports dead, s (median)", med(ref.first), med(serf.first),
         ".2f"),
        ("kill -9 -> first member reports dead, s (max)", mx(ref.first), mx(serf.first), ".2f"),
        ("kill -9 -> all members report dead, s (median)", med(ref.all), med(serf.all), ".2f"),
        ("kill -9 -> all members report dead, s (max)", mx(ref.all), mx(serf.all), ".2f"),
        ("kills never seen dead by all within the timeout", ref.undetected, serf.undetected,
         "d"),
        (f"false positives under {args.loss:.0%} loss: live members reported dead or gone "
         "(sum over reps)", fp_total(ref, "dead_members"), fp_total(serf, "dead_members"), "d"),
        ("  same, (observer, member) pairs", fp_total(ref, "dead_pairs"),
         fp_total(serf, "dead_pairs"), "d"),
        ("  same, from node-side member events (cross-check, dead)",
         fp_total(ref, "event_dead"), fp_total(serf, "event_dead"), "d"),
        ("broadcast, per-member delivery latency, s (median)", med(ref.bcast_member),
         med(serf.bcast_member), ".3f"),
        ("broadcast, per-member delivery latency, s (max)", mx(ref.bcast_member),
         mx(serf.bcast_member), ".3f"),
        ("broadcast, last member reached, s (median)", med(ref.bcast_last),
         med(serf.bcast_last), ".3f"),
        ("broadcast deliveries missing at the timeout", ref.bcast_missing, serf.bcast_missing,
         "d"),
    ]
    print()
    print("| metric | reference | Serf | ratio reference/Serf |")
    print("|---|---|---|---|")
    for name, a, b, spec in rows:
        cell_a = "-" if a is None else format(a, spec)
        cell_b = "-" if b is None else format(b, spec)
        print(f"| {name} | {cell_a} | {cell_b} | {_ratio(a, b)} |")
    suspects = fp_total(ref, "suspect_members")
    print(f"| live members seen suspect under loss (sum over reps) | "
          f"{'-' if suspects is None else suspects} | not exposed by Serf | - |")
    print()
    print("timing (both): " + ", ".join(f"{k} {v:g}" for k, v in sorted(timing.items())))
    print(f"nodes {args.nodes}, repetitions {args.reps}, broadcasts per repetition "
          f"{args.broadcasts}, loss {args.loss:.0%} on every directed link for "
          f"{args.loss_hold_s:g} s + {args.after_heal_s:g} s watched after the heal, "
          f"machine {os.cpu_count()} cores, wall {wall_s:.0f} s")
    for impl in IMPLS:
        s = samples[impl]
        dropped: dict[str, int] = {}
        for r in s.loss:
            for proto, n in r.dropped.items():
                dropped[proto] = dropped.get(proto, 0) + n
        print(f"{LABEL[impl]}: kill call max {_fmt(s.kill_call, max)} s, longest members "
              f"poll cycle {1000 * max(s.detect_cycle, default=0):.0f} ms, settle median "
              f"{_fmt(s.settle, statistics.median)} s, agents alive after kill {s.survivors}, "
              f"failed member reads under loss {sum(r.failed_reads for r in s.loss)} of "
              f"{sum(r.reads for r in s.loss)}, runs not all-alive after the watch "
              f"{sum(not r.all_alive_at_end for r in s.loss)}, packets dropped by the loss "
              f"rules {dropped or '-'}")
    faster = (None not in (med(ref.first), med(serf.first), med(ref.all), med(serf.all))
              and ref.undetected == 0
              and med(ref.first) <= med(serf.first)  # type: ignore[operator]
              and med(ref.all) <= med(serf.all))  # type: ignore[operator]
    ref_fp, serf_fp = fp_total(ref, "dead_members"), fp_total(serf, "dead_members")
    fewer = None if ref_fp is None or serf_fp is None else ref_fp <= serf_fp
    met = faster and fewer is True
    fp_word = "not measured" if fewer is None else "met" if fewer else "NOT met"
    print()
    print(f"target: detection no slower than Serf (medians, first and all): "
          f"{'met' if faster else 'NOT met'}; no more false positives (dead): "
          f"{fp_word} -> {'MET' if met else 'NOT MET'}")
    return met


def leftover_rules() -> list[str]:
    """iptables rules of the packet plane still installed (there must be none)."""
    if shutil.which("iptables-save") is None:
        return []
    text = subprocess.run(["iptables-save"], capture_output=True, text=True,
                          check=False).stdout
    return [line for line in text.splitlines() if "GC-" in line]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--broadcasts", type=int, default=3, help="per repetition")
    parser.add_argument("--loss", type=float, default=0.1)
    parser.add_argument("--loss-hold-s", type=float, default=30.0)
    parser.add_argument("--after-heal-s", type=float, default=5.0)
    parser.add_argument("--settle-s", type=float, default=2.0,
                        help="quiet time after every member sees every member alive")
    parser.add_argument("--detect-timeout-s", type=float, default=45.0)
    parser.add_argument("--broadcast-timeout-s", type=float, default=15.0)
    parser.add_argument("--run-dir", type=Path, default=None,
                        help="keep each cluster's history and node logs here")
    parser.add_argument("--skip-loss", action="store_true")
    parser.add_argument("--skip-detection", action="store_true",
                        help="the loss runs only (no kills, no broadcasts)")
    args = parser.parse_args(argv)
    if args.nodes < 3 or args.reps < 1:
        print("error: --nodes must be at least 3 and --reps at least 1")
        return 2
    chosen = manifests()
    print("reference launched with: " + " ".join(timing_flags(chosen["reference"])))
    samples = {impl: Samples() for impl in IMPLS}
    wall = time.perf_counter()
    with contextlib.ExitStack() as stack:
        base = args.run_dir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        for rep in range(1, args.reps + 1):
            for impl in IMPLS:
                if args.skip_detection:
                    break
                detection_rep(impl, chosen[impl], args, rep, base / f"{impl}-detect-{rep}",
                              samples[impl])
            if not args.skip_loss:
                for impl in IMPLS:
                    loss_rep(impl, chosen[impl], args, rep, base / f"{impl}-loss-{rep}",
                             samples[impl])
    for impl in IMPLS:
        print(f"{LABEL[impl]} node argv: {' '.join(samples[impl].cmdline or ['?'])}")
    report(samples, args, chosen["serf"].timing, time.perf_counter() - wall)
    rules = leftover_rules()
    if rules:
        print(f"warning: {len(rules)} packet-plane rules left behind: {rules[:3]}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
