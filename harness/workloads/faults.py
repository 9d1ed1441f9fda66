"""Faults, each packaged with the operation that undoes it (as Jepsen's nemesis packages
give a fault one constructor and one heal): a kill is undone by a start of the same node,
a pause by a resume, and every cut, partition, latency or loss by a heal of every link; a
restart undoes itself. The planner (:mod:`harness.workloads.planner`) and the generator
(:mod:`harness.workloads.strategies`) build faults from here and close each with its
:meth:`Fault.heal`, so a sequence that adds a fault also has the way back to a healthy
cluster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from gossipcert.harness.workloads.operations import Op

if TYPE_CHECKING:
    from gossipcert.harness.workloads.interpreter import Execution

__all__ = [
    "FAULTS",
    "Cut",
    "Fault",
    "Heal",
    "Kill",
    "Latency",
    "Link",
    "Loss",
    "Partition",
    "Pause",
    "Restart",
    "Resume",
    "Start",
]

Link = tuple[str, str]


@dataclass(frozen=True)
class Fault(Op):
    """An operation that harms the cluster; :meth:`heal` is the operation that undoes it
    (None when it undoes itself)."""

    def heal(self) -> Op | None:
        raise NotImplementedError


# ---- process faults ------------------------------------------------------------------


@dataclass(frozen=True)
class Kill(Fault):
    kind = "kill"
    summary = "SIGKILL a node (docker kill); it stays down until start or restart"
    node: str

    def run(self, x: Execution) -> None:
        x.driver.kill(self.node)
        x.progress(f"killed {self.node} with SIGKILL")

    def heal(self) -> Op:
        return Start(self.node)


@dataclass(frozen=True)
class Start(Op):
    kind = "start"
    summary = "start a node that is down again as itself (same id and data); it joins the live"
    node: str

    def run(self, x: Execution) -> None:
        x.driver.restart(self.node)
        x.progress(f"started {self.node} again with the same identity")


@dataclass(frozen=True)
class Restart(Fault):
    kind = "restart"
    summary = "SIGKILL a node if it runs and start it again as itself; it joins the live"
    node: str

    def run(self, x: Execution) -> None:
        x.driver.restart(self.node)
        x.progress(f"restarted {self.node} with the same identity")

    def heal(self) -> None:
        return None  # the node is started again at once


@dataclass(frozen=True)
class Pause(Fault):
    kind = "pause"
    summary = "freeze a node (SIGSTOP, docker pause): it answers nothing until resume"
    node: str

    def run(self, x: Execution) -> None:
        x.driver.pause(self.node)
        x.progress(f"paused {self.node}")

    def heal(self) -> Op:
        return Resume(self.node)


@dataclass(frozen=True)
class Resume(Op):
    kind = "resume"
    summary = "continue a paused node"
    node: str

    def run(self, x: Execution) -> None:
        x.driver.resume(self.node)
        x.progress(f"resumed {self.node}")


# ---- network faults --------------------------------------------------------------------


@dataclass(frozen=True)
class Partition(Fault):
    kind = "partition"
    summary = "cut every link between the groups, both ways (nodes in no group keep theirs)"
    groups: tuple[tuple[str, ...], ...]
    plane: str = "auto"
    shape: str = ""
    links: tuple[Link, ...] = ()  # the links to cut, when not every pair between groups

    def cut_links(self) -> list[Link]:
        if self.links:
            return list(self.links)
        return sorted((a, b) for g1 in self.groups for g2 in self.groups if g1 is not g2
                      for a in g1 for b in g2)

    def run(self, x: Execution) -> None:
        links = self.cut_links()
        if not links:
            x.progress(f"{self.shape or 'partition'}: nothing to cut")
            return
        x.driver.cut(links, plane=self.plane, groups=[list(g) for g in self.groups],
                     shape=self.shape or None)
        text = " | ".join(",".join(g) for g in self.groups)
        x.progress(f"{self.shape or 'partition'} ({x.driver.plane_for(self.plane)} plane): "
                   f"{text}")

    def heal(self) -> Op:
        return Heal()


@dataclass(frozen=True)
class Cut(Fault):
    kind = "cut"
    summary = "cut exactly these directed links (one-way cuts, rings)"
    links: tuple[Link, ...]
    plane: str = "auto"
    shape: str = ""

    def run(self, x: Execution) -> None:
        if not self.links:
            return
        x.driver.cut(list(self.links), plane=self.plane, shape=self.shape or None)
        x.progress(f"{self.shape or 'cut'} ({x.driver.plane_for(self.plane)} plane): "
                   f"{len(self.links)} directed links")

    def heal(self) -> Op:
        return Heal()


@dataclass(frozen=True)
class Latency(Fault):
    kind = "latency"
    summary = ("delay every byte on these directed links (link plane, else packet plane; "
               "none -> skipped)")
    links: tuple[Link, ...]
    latency_ms: int
    jitter_ms: int = 0
    # packet plane only: duplicate, reorder (probabilities), rate_kbit
    extra: tuple[tuple[str, float], ...] = ()

    def run(self, x: Execution) -> None:
        reason = x.driver.latency_unavailable
        if reason is not None:
            x.skipped["latency"] = reason
            x.progress(f"latency skipped: {reason}")
            return
        if self.extra:
            x.driver.latency(list(self.links), self.latency_ms, self.jitter_ms,
                             extra=dict(self.extra))
        else:
            x.driver.latency(list(self.links), self.latency_ms, self.jitter_ms)
        more = "".join(f", {k} {v:g}" for k, v in self.extra)
        x.progress(f"latency {self.latency_ms} ms (jitter {self.jitter_ms}{more}) on "
                   f"{len(self.links)} links")

    def heal(self) -> Op:
        return Heal()


@dataclass(frozen=True)
class Loss(Fault):
    kind = "loss"
    summary = "drop packets on these directed links at random"
    links: tuple[Link, ...]
    probability: float

    def run(self, x: Execution) -> None:
        x.driver.loss(list(self.links), self.probability)
        x.progress(f"packet loss {self.probability:.0%} on {len(self.links)} links")

    def heal(self) -> Op:
        return Heal()


@dataclass(frozen=True)
class Heal(Op):
    kind = "heal"
    summary = "restore every link: cuts, latency and loss, on every plane"

    def run(self, x: Execution) -> None:
        x.driver.heal()
        x.progress("healed every link")


# Every fault by its kind: what a plan or a generator may inject, each with its heal.
FAULTS: dict[str, type[Fault]] = {
    cls.kind: cls for cls in (Kill, Restart, Pause, Partition, Cut, Latency, Loss)
}
