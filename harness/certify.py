"""``gossipcert certify``: the default certification run.

manifest -> cluster up -> workload and faults (join, quiet, broadcast, writes, kill -9,
partition and heal) -> history -> verdicts per requirement -> report.json / report.md.
Every wait is bounded by the requirement's own bound plus a margin, so a broken
implementation makes the run fail, never hang.
"""

from __future__ import annotations

import random
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import harness
from harness.bounds import derived_parameters, evaluate
from harness.checkers import run_checks
from harness.cluster import Cluster
from harness.errors import EXIT_FAIL, EXIT_PASS, GossipcertError
from harness.history import History
from harness.manifest import Manifest, load_manifest
from harness.verdict import Requirement, load_catalogue
from reports.json_report import write_json_report
from reports.markdown import write_markdown_report

WAIT_MARGIN_S = 5.0


@dataclass
class CertifyOptions:
    impl: str = "reference"
    backend: str = "process"
    nodes: int = 5
    seed: int | None = None
    report_dir: Path | None = None
    base_port: int | None = None
    toxiproxy_url: str | None = None
    quiet_s: float = 3.0
    partition_s: float | None = None
    progress: Callable[[str], None] = field(default=lambda line: None)


@dataclass
class CertifyResult:
    exit_code: int
    report_dir: Path
    report: dict[str, Any]


def default_report_dir(manifest: Manifest, seed: int) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path("gossipcert-runs") / f"{stamp}-{manifest.name}-s{seed}"


class _Progress:
    def __init__(self, sink: Callable[[str], None]) -> None:
        self.sink = sink
        self.t0 = time.monotonic()

    def __call__(self, msg: str) -> None:
        self.sink(f"[{time.monotonic() - self.t0:6.1f}s] {msg}")


def certify(opts: CertifyOptions) -> CertifyResult:
    if opts.nodes < 3:
        raise GossipcertError("--nodes must be at least 3 (a kill and a partition need them)")
    if opts.backend != "process":
        raise GossipcertError(f"unknown backend {opts.backend!r} (available: process)")
    manifest = load_manifest(opts.impl)
    seed = opts.seed if opts.seed is not None else random.SystemRandom().randrange(1, 10**6)
    report_dir = opts.report_dir or default_report_dir(manifest, seed)
    report_dir.mkdir(parents=True, exist_ok=True)
    catalogue = load_catalogue()
    progress = _Progress(opts.progress)
    history = History(report_dir / "history.jsonl")
    history.append("meta", "run", args={
        "implementation": manifest.name,
        "seed": seed,
        "nodes": [f"n{i + 1}" for i in range(opts.nodes)],
        "timing": manifest.timing,
        "conflict_policy": manifest.conflict_policy,
        "capabilities": manifest.capabilities,
        "backend": opts.backend,
    })
    started = time.time()
    progress(f"starting {opts.nodes} nodes of {manifest.name} ({opts.backend} backend), "
             f"seed {seed}, run dir {report_dir}")
    cluster = Cluster(manifest, opts.nodes, report_dir, backend=opts.backend, seed=seed,
                      base_port=opts.base_port, toxiproxy_url=opts.toxiproxy_url,
                      history=history)
    with cluster:
        progress(f"cluster up: {opts.nodes} nodes ready")
        Workload(cluster, manifest, catalogue, opts, progress).run()
    wall_s = time.time() - started
    progress(f"cluster stopped after {wall_s:.1f} s; checking requirements")
    entries = history.entries()
    verdicts = run_checks(entries, catalogue)
    faults = [
        {"time_ms": e.time_ms, "op": e.op, "node": e.node, "args": e.args}
        for e in entries if e.type == "fault"
    ]
    run_info = {
        "nodes": cluster.node_ids,
        "backend": opts.backend,
        "timing": manifest.timing,
        "conflict_policy": manifest.conflict_policy,
        "wall_time_s": round(wall_s, 2),
        "gossipcert_version": harness.__version__,
        "history": "history.jsonl",
        "manifest": str(manifest.path),
    }
    report = write_json_report(report_dir / "report.json", implementation=manifest.name,
                               seed=seed, verdicts=verdicts, faults=faults, run=run_info)
    write_markdown_report(report_dir / "report.md", report)
    code = EXIT_PASS if report["verdict"] == "pass" else EXIT_FAIL
    return CertifyResult(code, report_dir, report)


class Workload:
    """The fixed v1 scenario, driven step by step with bounded waits."""

    def __init__(self, cluster: Cluster, manifest: Manifest, catalogue: list[Requirement],
                 opts: CertifyOptions, progress: Callable[[str], None]) -> None:
        self.cluster = cluster
        self.history = cluster.history
        self.opts = opts
        self.progress = progress
        self.rng = random.Random(cluster.seed)
        self.params = derived_parameters(manifest.timing, len(cluster.node_ids))
        self.bounds_ms = {
            r.id: float(evaluate(r.bound, self.params)) for r in catalogue if r.bound
        }
        self.capabilities = set(manifest.capabilities)
        self._write_no = 0

    def wait_s(self, requirement_id: str, default_ms: float = 10_000) -> float:
        return self.bounds_ms.get(requirement_id, default_ms) / 1000.0 + WAIT_MARGIN_S

    def run(self) -> None:
        self.join()
        self.quiet()
        if "broadcast" in self.capabilities:
            self.broadcast()
        if "kv" in self.capabilities:
            self.writes()
        self.kill()
        self.partition()
        self.cluster.poll_events()

    # ---- steps ----------------------------------------------------------------------

    def _all_alive(self, expected: list[str]) -> bool:
        for reply in self.cluster.read_round("members").values():
            if not reply.ok:
                return False
            seen = {m["id"]: m["status"] for m in reply.body.get("members", [])}
            if any(seen.get(n) != "alive" for n in expected):
                return False
        return True

    def _digests_equal(self) -> bool:
        replies = self.cluster.read_round("kv")
        digests = {r.body.get("digest") for r in replies.values() if r.ok}
        return len(digests) == 1 and all(r.ok for r in replies.values())

    def _poll(self, predicate: Callable[[], bool], timeout_s: float, every_s: float) -> float:
        """Seconds until ``predicate`` held, or -1 after ``timeout_s``."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout_s:
            if predicate():
                return time.monotonic() - t0
            time.sleep(every_s)
        return -1.0

    def join(self) -> None:
        live = self.cluster.live_nodes()
        took = self._poll(lambda: self._all_alive(live), self.wait_s("MEM-JOIN"), 0.1)
        self.progress(f"membership: every node sees all {len(live)} alive"
                      if took >= 0 else "membership: not every node sees every node alive")

    def quiet(self) -> None:
        self.history.append("phase", "quiet", args={"edge": "start"})
        self.progress(f"quiet phase: {self.opts.quiet_s:g} s with no faults")
        deadline = time.monotonic() + self.opts.quiet_s
        while time.monotonic() < deadline:
            self.cluster.read_round("members")
            time.sleep(0.5)
        self.cluster.poll_events()
        self.history.append("phase", "quiet", args={"edge": "end"})

    def broadcast(self) -> None:
        origin = self.rng.choice(self.cluster.live_nodes())
        msg_id = f"bcast-{self.cluster.seed}-1"
        client = self.cluster.client(origin)
        self.cluster.call(origin, "broadcast", {"id": msg_id, "payload": {"hello": origin}},
                          lambda: client.broadcast(msg_id, {"hello": origin}))

        def delivered() -> bool:
            ok = True
            for node_id in self.cluster.live_nodes():
                c = self.cluster.client(node_id)
                reply = self.cluster.call(node_id, "broadcasts", {}, c.broadcasts)
                got = reply.ok and any(r.get("id") == msg_id
                                       for r in reply.body.get("received", []))
                ok = ok and got
            return ok

        took = self._poll(delivered, self.wait_s("BCAST-DELIVERY"), 0.2)
        self.progress(f"broadcast {msg_id} from {origin}: "
                      + (f"delivered everywhere in {took:.1f} s" if took >= 0
                         else "not delivered everywhere"))

    def _put(self, node_id: str, key: str) -> None:
        self._write_no += 1
        value = f"{node_id}/w{self._write_no}"
        client = self.cluster.client(node_id)
        self.cluster.call(node_id, "put", {"key": key, "value": value},
                          lambda: client.put(key, value))

    def _concurrent_puts(self, key: str, nodes: list[str]) -> None:
        barrier = threading.Barrier(len(nodes))
        values = {}
        for node_id in nodes:
            self._write_no += 1
            values[node_id] = f"{node_id}/w{self._write_no}"

        def one(node_id: str) -> None:
            barrier.wait()
            client = self.cluster.client(node_id)
            self.cluster.call(node_id, "put", {"key": key, "value": values[node_id]},
                              lambda: client.put(key, values[node_id]))

        threads = [threading.Thread(target=one, args=(n,)) for n in nodes]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def _converge_kv(self, label: str) -> None:
        took = self._poll(self._digests_equal, self.wait_s("KV-CONVERGENCE"), 0.1)
        self.progress(f"{label}: " + (f"digests equal after {took:.1f} s" if took >= 0
                                      else "digests still differ"))

    def writes(self) -> None:
        keys = [f"key-{i}" for i in range(6)]
        live = self.cluster.live_nodes()
        self.history.append("phase", "writes", args={"edge": "start"})
        for _ in range(24):
            self._put(self.rng.choice(live), self.rng.choice(keys))
        for key in keys[:3]:
            self._concurrent_puts(key, live)
        self.history.append("phase", "writes", args={"edge": "end"})
        self.progress(f"writes: {self._write_no} puts on {len(keys)} keys, "
                      "3 keys written concurrently by every node")
        self._converge_kv("after writes")

    def kill(self) -> None:
        victim = self.rng.choice(self.cluster.live_nodes()[1:])
        self.cluster.kill(victim)
        self.progress(f"killed {victim} with SIGKILL; waiting for every member to mark it dead")

        def all_dead() -> bool:
            for reply in self.cluster.read_round("members").values():
                if not reply.ok:
                    return False
                seen = {m["id"]: m["status"] for m in reply.body.get("members", [])}
                if seen.get(victim) not in ("dead", "left"):
                    return False
            return True

        took = self._poll(all_dead, self.wait_s("FD-DETECT"), 0.2)
        self.progress(f"{victim} " + (f"marked dead everywhere after {took:.1f} s"
                                      if took >= 0 else "not marked dead everywhere"))

    def partition_hold_s(self) -> float:
        if self.opts.partition_s is not None:
            return self.opts.partition_s
        p = self.params
        hold_ms = min(p["suspicion_max_ms"],
                      p["suspicion_min_ms"] + 3 * p["probe_interval_ms"] + 2000)
        return hold_ms / 1000.0

    def partition(self) -> None:
        live = self.cluster.live_nodes()
        if len(live) < 2:
            return
        shuffled = live[:]
        self.rng.shuffle(shuffled)
        half = len(shuffled) // 2
        groups = [sorted(shuffled[:half]), sorted(shuffled[half:])]
        hold_s = self.partition_hold_s()
        self.cluster.partition(groups)
        self.history.append("phase", "partition", args={"edge": "start", "groups": groups})
        self.progress(f"partitioned {groups[0]} | {groups[1]} for {hold_s:.1f} s")
        if "kv" in self.capabilities:
            for group in groups:
                for node_id in group:
                    self._put(node_id, "key-partitioned")
                    self._put(node_id, f"key-side-{group[0]}")
        time.sleep(hold_s)
        self.cluster.heal()
        self.history.append("phase", "partition", args={"edge": "end"})
        self.progress("healed the partition; waiting for membership and state to converge")

        def converged() -> bool:
            alive = self._all_alive(live)
            return alive and ("kv" not in self.capabilities or self._digests_equal())

        took = self._poll(converged, self.wait_s("PARTITION-HEAL"), 0.2)
        self.progress("after heal: " + (f"converged in {took:.1f} s" if took >= 0
                                        else "did not converge"))


def print_progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
