"""Preflight: before any node starts, which fault planes a run needs and whether this
machine offers them.

A run that reaches for a fault plane the machine lacks (the packet plane without root
or without iptables) used to die mid-run, a minute in, with an ERROR that says nothing
about the implementation. Preflight decides up front, from the planned operations, the
manifest's routing, the backend and each plane's declared faults
(:class:`harness.drivers.faultplanes.LinkFaults`, :class:`PacketFaults`), what can run:

* a network fault goes where the run would send it (``auto``: the first plane that
  declares it, as :func:`harness.drivers.faultplanes.choose` does); when that plane is
  missing here the scenario is skipped with the reason in one line;
* a step that names a plane (``plane: packet``) this machine lacks runs on another plane
  of the run that can apply the same fault, with a note: what is judged is the
  requirement, not the mechanism;
* a backend that cannot run here at all (no Docker engine) is refused with
  :class:`UnavailableError` (its own exit code) before anything starts.

Certify, explore and replay all ask here; ``gossipcert doctor`` prints the same facts.
The machine is probed once (:meth:`Machine.probe`); tests build a :class:`Machine` by hand.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from gossipcert.harness.drivers import faultplanes
from gossipcert.harness.drivers.faultplanes import LinkFaults, PacketFaults
from gossipcert.harness.errors import EXIT_UNAVAILABLE, GossipcertError
from gossipcert.harness.manifest import Manifest
from gossipcert.harness.workloads.operations import Op

__all__ = [
    "IPTABLES_FAULTS",
    "Fit",
    "Machine",
    "PlaneOffer",
    "UnavailableError",
    "backend_reason",
    "check_backend",
    "declared_faults",
    "fit",
    "fit_or_refuse",
    "needs",
    "offers",
    "resolve",
]

# What the packet plane does with iptables alone; any other fault it declares (latency,
# jitter, duplication...) needs its delay line as well (netem or an NFQUEUE queue).
IPTABLES_FAULTS = frozenset({"cut", "loss"})
NEEDS_ROOT = "the packet plane needs root (iptables)"


class UnavailableError(GossipcertError):
    """Nothing of the request can run on this machine (its backend is missing)."""

    exit_code = EXIT_UNAVAILABLE


def packet_reason() -> str | None:
    """Why the local packet plane cannot run here (root, iptables), or None. Root comes
    first: a plain user's PATH rarely holds the sbin directories, so iptables looks
    absent to it when what it lacks is the permission."""
    from gossipcert.chaos.packet import unavailable_reason

    if os.geteuid() != 0:
        return NEEDS_ROOT
    return unavailable_reason()


def delay_reason() -> str | None:
    """Why the packet plane cannot delay packets here (netem or the NFQUEUE line), or
    None."""
    from gossipcert.chaos.delayline import delay_unavailable_reason

    return delay_unavailable_reason()


def delay_mechanism() -> str:
    """What delays packets on this machine's packet plane: ``netem`` or ``nfqueue``."""
    from gossipcert.chaos.delayline import delay_mechanism as probed

    return probed()


def cgroup_reason() -> str | None:
    """Why nodes cannot get a cgroup v2 each here (used to tell apart the packets of
    nodes that share 127.0.0.1 as their TCP source), or None."""
    from gossipcert.harness.drivers.cgroups import cgroup2_root

    if cgroup2_root() is None:
        return "cgroup v2 is not mounted writable (needs root and a cgroup2 mount)"
    return None


def docker_reason() -> str | None:
    """Why no Docker engine answers here, or None."""
    from gossipcert.harness.drivers.images import docker_client

    try:
        docker_client()
    except GossipcertError as exc:
        return str(exc)
    return None


def swarm_reason() -> str | None:
    """Why this engine is no swarm manager, or None."""
    from gossipcert.harness.drivers.backends.swarm import not_a_manager
    from gossipcert.harness.drivers.images import docker_client

    try:
        return not_a_manager(docker_client())
    except GossipcertError as exc:
        return str(exc)
    except Exception as exc:  # the engine answered a ping, then not
        return f"the Docker engine did not answer ({type(exc).__name__})"


@dataclass(frozen=True)
class Machine:
    """What this machine offers; each field is why something is missing, None when it
    is there. ``root`` and ``iptables`` are for the table ``doctor`` prints."""

    packet: str | None = None
    delay: str | None = None
    cgroup: str | None = None
    docker: str | None = None
    swarm: str | None = None
    root: bool = True
    iptables: str | None = None

    @classmethod
    def probe(cls, *, docker: bool = False, swarm: bool = False) -> Machine:
        """Probe this machine; the Docker engine only when asked (it may take seconds)."""
        not_probed = "not probed"
        return cls(packet=packet_reason(), delay=delay_reason(), cgroup=cgroup_reason(),
                   docker=docker_reason() if docker or swarm else not_probed,
                   swarm=swarm_reason() if swarm else not_probed,
                   root=os.geteuid() == 0, iptables=shutil.which("iptables"))

    @classmethod
    def for_backend(cls, backend: str) -> Machine:
        return cls.probe(docker=backend in ("docker", "swarm"), swarm=backend == "swarm")


def backend_reason(backend: str, machine: Machine) -> str | None:
    """Why ``backend`` cannot run on this machine at all, or None."""
    if backend == "docker":
        return machine.docker
    if backend == "swarm":
        return machine.swarm
    return None


def check_backend(backend: str, machine: Machine | None = None) -> Machine:
    """This machine, probed for ``backend``; :class:`UnavailableError` when the backend
    itself cannot run here, so nothing is started."""
    machine = machine if machine is not None else Machine.for_backend(backend)
    missing = backend_reason(backend, machine)
    if missing is not None:
        raise UnavailableError(f"the {backend} backend cannot run on this machine: {missing}")
    return machine


@dataclass(frozen=True)
class PlaneOffer:
    """One fault plane of a run: the faults it declares and, for each it cannot apply
    on this machine, why."""

    name: str
    faults: frozenset[str]
    missing: dict[str, str] = field(default_factory=dict)

    def can(self, fault: str) -> bool:
        return fault in self.faults and fault not in self.missing


def declared_faults(plane: Any, manifest: Manifest, backend: str) -> frozenset[str]:
    """A plane's faults for a run of ``manifest`` on ``backend``, as the plane declares
    them before anything starts (its ``faults_for``)."""
    return frozenset(plane.faults_for(manifest, backend))


def offers(manifest: Manifest, backend: str, machine: Machine) -> list[PlaneOffer]:
    """The fault planes a run of ``manifest`` on ``backend`` has, in order of preference
    (the link plane when the implementation takes a dial map, then the packet plane)."""
    out = []
    if manifest.accepts_dial_map:  # our own server: no root, nothing to install
        out.append(PlaneOffer("link", declared_faults(LinkFaults, manifest, backend)))
    faults = declared_faults(PacketFaults, manifest, backend)
    missing: dict[str, str] = {}
    # The swarm's packet plane runs in each host's agent, which has what it needs.
    if backend != "swarm":
        for fault in faults:
            if machine.packet is not None:
                missing[fault] = machine.packet
            elif fault not in IPTABLES_FAULTS and machine.delay is not None:
                missing[fault] = machine.delay
    out.append(PlaneOffer("packet", faults, missing))
    return out


@dataclass(frozen=True)
class Resolution:
    """Where one network fault goes: the plane, or why none can apply it, and a note
    when a step's named plane is replaced."""

    plane: str | None
    reason: str | None = None
    note: str | None = None
    wants: str | None = None  # the plane it needs, when this machine lacks it...
    missing: str | None = None  # ...and what that plane lacks here


def resolve(planes: Sequence[PlaneOffer], fault: str, plane: str = "auto") -> Resolution:
    """Where ``fault`` asked of ``plane`` goes on these planes."""
    by_name = {p.name: p for p in planes}
    if plane == "auto":
        first = next((p for p in planes if fault in p.faults), None)
        if first is None:
            return Resolution(None, _nobody(planes, fault))
        if fault in first.missing:
            return Resolution(None, f"{fault} needs the {first.name} plane: "
                                    f"{first.missing[fault]}",
                              wants=first.name, missing=first.missing[fault])
        return Resolution(first.name)
    named = by_name.get(plane)
    if named is not None and named.can(fault):
        return Resolution(plane)
    why = (faultplanes.NO_LINK_PLANE if named is None and plane == "link"
           else f"the {plane} plane is not part of this run" if named is None
           else named.missing.get(fault) or f"the {plane} plane cannot apply {fault}")
    other = next((p for p in planes if p.can(fault)), None)
    if other is None:
        return Resolution(None, f"{fault} needs the {plane} plane: {why}", wants=plane,
                          missing=why)
    return Resolution(other.name, note=f"a {fault} meant for the {plane} plane runs on the "
                                       f"{other.name} plane ({why})")


def _nobody(planes: Sequence[PlaneOffer], fault: str) -> str:
    if fault == "latency":
        return faultplanes.NO_LATENCY
    have = "; ".join(f"{p.name} plane: {', '.join(sorted(p.faults)) or 'nothing'}"
                     for p in planes)
    return f"no fault plane of this run applies {fault} ({have})"


def needs(op: Op) -> tuple[str, str] | None:
    """The network fault an operation applies and the plane it asks for, or None."""
    kind = getattr(op, "kind", "")
    if kind in ("partition", "cut"):
        return "cut", str(getattr(op, "plane", "auto"))
    if kind in faultplanes.FAULTS:
        return kind, str(getattr(op, "plane", "auto"))
    return None


@dataclass(frozen=True)
class Fit:
    """A sequence of operations fitted to this machine: the operations to run (steps
    whose named plane is missing moved to one that is there), the notes saying so, or
    why it cannot run here at all (``skipped``)."""

    ops: tuple[Op, ...]
    skipped: str | None = None
    notes: tuple[str, ...] = ()


def fit(ops: Iterable[Op], planes: Sequence[PlaneOffer]) -> Fit:
    """Fit ``ops`` to ``planes``: one line per missing plane, naming the faults that
    need it, and one per fault no plane of the run declares."""
    out: list[Op] = []
    reasons: list[str] = []
    wanting: dict[tuple[str, str], list[str]] = {}  # (plane, what it lacks) -> faults
    notes: list[str] = []
    for op in ops:
        need = needs(op)
        if need is None:
            out.append(op)
            continue
        fault, plane = need
        where = resolve(planes, fault, plane)
        if where.plane is None:
            if where.wants is not None and where.missing is not None:
                faults = wanting.setdefault((where.wants, where.missing), [])
                if fault not in faults:
                    faults.append(fault)
            elif where.reason and where.reason not in reasons:
                reasons.append(where.reason)
            out.append(op)
            continue
        if where.plane != plane and plane != "auto" and hasattr(op, "plane"):
            op = replace(op, plane=where.plane)  # type: ignore[call-arg]
            if where.note and where.note not in notes:
                notes.append(where.note)
        out.append(op)
    lines = [f"{' and '.join(faults)} need{'s' if len(faults) == 1 else ''} the {plane} "
             f"plane: {missing}" for (plane, missing), faults in wanting.items()]
    return Fit(tuple(out), "; ".join(lines + reasons) or None, tuple(notes))


def fit_or_refuse(ops: Iterable[Op], planes: Sequence[PlaneOffer], what: str) -> Fit:
    """:func:`fit` for a sequence that must run whole (a replay): one this machine cannot
    run is refused with :class:`UnavailableError` before anything starts."""
    fitted = fit(ops, planes)
    if fitted.skipped is not None:
        raise UnavailableError(f"{what} cannot run on this machine: {fitted.skipped}")
    return fitted


def abilities(planes: Sequence[PlaneOffer], faults: Iterable[str] = faultplanes.FAULTS
              ) -> dict[str, Resolution]:
    """For each network fault, where a run on ``planes`` would apply it (``auto``)."""
    return {fault: resolve(planes, fault) for fault in faults}


def describe(planes: Sequence[PlaneOffer]) -> dict[str, Any]:
    """The planes as JSON: each one's faults and what is missing."""
    return {p.name: {"faults": sorted(p.faults), "missing": dict(sorted(p.missing.items()))}
            for p in planes}
