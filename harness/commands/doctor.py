"""``gossipcert doctor``: which fault planes this machine offers, and what each
implementation gets of them.

The facts are preflight's (:mod:`harness.run.preflight`), the ones certify, explore and
replay decide with before any node starts, so what doctor prints is what a run would do:
a fault it lists as missing makes the scenarios needing it skipped, not a run that dies
mid-way. Exit 0 when this machine offers everything, :data:`EXIT_UNAVAILABLE` otherwise.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from typing import Any

from gossipcert.harness.drivers.faultplanes import FAULTS, LinkFaults, PacketFaults
from gossipcert.harness.errors import EXIT_PASS, EXIT_UNAVAILABLE
from gossipcert.harness.manifest import Manifest, load_manifest
from gossipcert.harness.run.preflight import (
    IPTABLES_FAULTS,
    Machine,
    abilities,
    declared_faults,
    delay_mechanism,
    offers,
)

__all__ = ["doctor", "doctor_data", "render"]


def _row(name: str, missing: str | None, detail: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "available": missing is None, "detail": missing or detail, **extra}


def machine_rows(machine: Machine) -> list[dict[str, Any]]:
    """One row per fault plane, mechanism and backend: available, or why not. A plane's
    faults are what it declares for the reference node on local processes."""
    reference = load_manifest("reference")
    link_faults = declared_faults(LinkFaults, reference, "process")
    packet_faults = declared_faults(PacketFaults, reference, "process")
    delay_faults = sorted(packet_faults - IPTABLES_FAULTS)
    how = ("tc netem" if machine.packet is None and delay_mechanism() == "netem"
           else "a user-space NFQUEUE delay line (the kernel's netem where it has it)")
    delay = _row("delay line", machine.delay or machine.packet, how, faults=delay_faults)
    return [
        _row("link plane", None, "the built-in Toxiproxy-compatible server, no root needed; "
             "for implementations that take a dial map (routing: dial-map)",
             faults=sorted(link_faults)),
        _row("packet plane", machine.packet, f"iptables at {machine.iptables}, as root; any "
             "implementation, by address or cgroup", faults=sorted(packet_faults),
             mechanisms=[
                 _row("iptables", machine.packet, "filter rules, as root",
                      faults=sorted(IPTABLES_FAULTS & packet_faults)),
                 delay]),
        _row("process faults", None, "SIGKILL, SIGSTOP and SIGCONT of the run's own nodes"),
        _row("cgroup v2", machine.cgroup, "a cgroup per node, telling apart the packets of "
             "implementations without a dial map"),
        _row("docker backend", machine.docker, "the Docker engine answers"),
        _row("swarm backend", machine.swarm, "this engine is a swarm manager"),
    ]


def _how(plane: str, fault: str) -> str:
    if plane == "link":
        return "link plane (dial map)"
    return "packet plane (needs root" + (", iptables)" if fault in IPTABLES_FAULTS
                                         else ", delay line)")


def implementation_rows(manifest: Manifest, machine: Machine, backend: str = "process"
                        ) -> dict[str, Any]:
    """Where each network fault of a run of ``manifest`` goes on this machine."""
    planes = offers(manifest, backend, machine)
    faults: dict[str, Any] = {}
    for fault, where in abilities(planes, FAULTS).items():
        if where.plane is not None:
            faults[fault] = {"available": True, "plane": where.plane,
                             "detail": _how(where.plane, fault)}
        else:
            faults[fault] = {"available": False, "plane": None, "detail": where.reason}
    return {"impl": manifest.name, "manifest": str(manifest.path), "routing": manifest.routing,
            "faults": faults}


def default_impls(extra: Sequence[str]) -> list[str]:
    """The reference, Serf when its binary is installed, and what ``--impl`` names."""
    impls = ["reference"] + (["serf"] if shutil.which("serf") else [])
    return impls + [i for i in extra if i not in impls]


def doctor_data(machine: Machine, manifests: Sequence[Manifest]) -> dict[str, Any]:
    rows = machine_rows(machine)
    every = rows + [m for r in rows for m in r.get("mechanisms", [])]
    return {
        "ok": all(r["available"] is not False for r in every),
        "root": machine.root,
        "planes": rows,
        "implementations": [implementation_rows(m, machine) for m in manifests],
    }


def _mark(available: bool | None) -> str:
    return {True: "yes", False: "NO", None: "-"}[available]


def render(data: dict[str, Any]) -> list[str]:
    """The table for a person."""
    lines = [f"this machine ({'root' if data['root'] else 'not root'}):"]
    for row in data["planes"]:
        faults = f" [{', '.join(row['faults'])}]" if row.get("faults") else ""
        lines.append(f"  {row['name']:<16} {_mark(row['available']):<4} {row['detail']}{faults}")
        for mech in row.get("mechanisms", []):
            faults = f" [{', '.join(mech['faults'])}]" if mech.get("faults") else ""
            lines.append(f"    {mech['name']:<14} {_mark(mech['available']):<4} "
                         f"{mech['detail']}{faults}")
    for impl in data["implementations"]:
        lines.append(f"{impl['impl']} (routing: {impl['routing']}), process backend:")
        for fault, where in impl["faults"].items():
            lines.append(f"  {fault:<10} {_mark(where['available']):<4} {where['detail']}")
    lines.append("all available" if data["ok"] else
                 "something is missing: scenarios that need it are skipped (INCOMPLETE)")
    return lines


def doctor(impls: Sequence[str], *, as_json: bool = False,
           out: Callable[[str], None] = print, machine: Machine | None = None) -> int:
    machine = machine if machine is not None else Machine.probe(docker=True, swarm=True)
    manifests = [load_manifest(i) for i in default_impls(impls)]
    data = doctor_data(machine, manifests)
    if as_json:
        out(json.dumps(data, indent=1))
    else:
        for line in render(data):
            out(line)
    return EXIT_PASS if data["ok"] else EXIT_UNAVAILABLE
