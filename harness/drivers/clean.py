"""Remove what crashed runs left behind: swarm services, containers, networks, labelled
processes, images.

A run is stale when the harness process that owns it is gone: Docker objects carry their
owner, child processes the run label (:mod:`chaos.runlabels`; :mod:`harness.drivers.sweep`
finds those processes). Objects of runs still going are left alone unless asked.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from gossipcert.chaos.runlabels import OWNER_LABEL, RUN_LABEL, label_stale, owner_alive
from gossipcert.harness.drivers.sweep import labelled_processes, sweep


@dataclass
class Swept:
    services: list[str] = field(default_factory=list)  # swarm services (nodes, agents, registry)
    containers: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    processes: list[int] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    chains: list[str] = field(default_factory=list)  # iptables chains of dead runs
    cgroups: list[str] = field(default_factory=list)  # node cgroups of dead runs

    def summary(self) -> str:
        return (f"removed {len(self.services)} swarm service(s), "
                f"{len(self.containers)} container(s), {len(self.networks)} "
                f"network(s), {len(self.images)} image(s), {len(self.chains)} iptables "
                f"chain(s), {len(self.cgroups)} cgroup(s); killed {len(self.processes)} "
                "process(es)")


def _stale(labels: dict[str, str], everything: bool) -> bool:
    if everything:
        return True
    owner = labels.get(OWNER_LABEL)
    if owner is None:
        return label_stale(labels.get(RUN_LABEL, ""))
    return not owner_alive(owner)


def sweep_docker(client: Any, *, everything: bool = False, run: str | None = None,
                 into: Swept | None = None) -> Swept:
    """Remove run-labelled swarm services, containers, then networks, of dead runs (or of
    one run, or all). Services are listed only on a swarm manager; an overlay network is
    removed once the swarm has let go of the removed services' tasks."""
    out = into if into is not None else Swept()
    selector = f"{RUN_LABEL}={run}" if run else RUN_LABEL
    removed: list[str] = []
    with contextlib.suppress(Exception):  # not a swarm manager: no services to list
        for service in client.services.list(filters={"label": selector}):
            labels = (service.attrs.get("Spec") or {}).get("Labels") or {}
            if run is None and not _stale(labels, everything):
                continue
            with contextlib.suppress(Exception):
                service.remove()
                out.services.append(service.name)
                removed.append(service.id)
    if removed:
        wait_tasks_gone(client, removed)
    for container in client.containers.list(all=True, filters={"label": selector}):
        if run is None and not _stale(container.labels, everything):
            continue
        with contextlib.suppress(Exception):
            container.remove(force=True)
            out.containers.append(container.name)
    for network in client.networks.list(filters={"label": selector}):
        labels = network.attrs.get("Labels") or {}
        if run is None and not _stale(labels, everything):
            continue
        # An overlay stays in use until the tasks of its removed services are gone.
        patience = 60.0 if out.services and network.attrs.get("Scope") == "swarm" else 0.0
        if _remove_network(network, patience):
            out.networks.append(network.name)
    return out


def wait_tasks_gone(client: Any, service_ids: list[str], timeout_s: float = 60.0) -> bool:
    """Wait until the swarm has no task left of the (removed) services: each swarm node
    has then stopped and removed their containers."""
    wanted = set(service_ids)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            left = [t for t in client.api.tasks() if t.get("ServiceID") in wanted]
        except Exception:
            return False
        if not left:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.3)


def _remove_network(network: Any, patience_s: float) -> bool:
    deadline = time.monotonic() + patience_s
    while True:
        try:
            network.remove()
            if patience_s:  # an overlay leaves the engine's list a moment after the swarm's
                while network.client.networks.list(ids=[network.id]) and \
                        time.monotonic() < deadline + 15:
                    time.sleep(0.3)
            return True
        except Exception:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.5)


def sweep_stale_processes(*, everything: bool = False, into: Swept | None = None) -> Swept:
    """Kill labelled processes whose harness is gone (or every labelled one); remove
    the iptables chains and cgroups of runs that are gone."""
    from gossipcert.chaos.packet import sweep_chains
    from gossipcert.harness.drivers.cgroups import sweep_cgroups

    out = into if into is not None else Swept()
    if everything:
        out.processes += sweep()
    else:
        for label in sorted(set(labelled_processes().values())):
            if label_stale(label):
                out.processes += sweep(label)
    # What the packet plane and the process backend leave when a run dies: chains whose
    # run is gone, and the (then empty) cgroups of its nodes.
    out.chains += sweep_chains()
    out.cgroups += sweep_cgroups(lambda label: everything or label_stale(label))
    return out


def clean(*, images: bool = False, everything: bool = False,
          docker_required: bool = False) -> Swept:
    """What ``gossipcert clean`` does; Docker is skipped when no engine answers."""
    from gossipcert.harness.drivers.images import docker_client, remove_images
    from gossipcert.harness.errors import GossipcertError

    out = sweep_stale_processes(everything=everything)
    try:
        client = docker_client()
    except GossipcertError:
        if docker_required or images:
            raise
        return out
    sweep_docker(client, everything=everything, into=out)
    if images:
        out.images += remove_images(client)
    return out
