"""Each node a Docker Swarm service (one task, one container) on a per-run attachable
overlay network, spread across the nodes of an existing swarm.

The harness runs against a swarm manager (its local engine, or ``DOCKER_HOST``). Per run:

* **Images.** The swarm's other nodes cannot pull from an outside registry, so the run
  starts an image registry (Debian's ``docker-registry`` in an image built offline, see
  :func:`harness.drivers.images.build_registry`) as a service on the manager, publishing its port
  on the manager's host, pushes the run's images to it and names them
  ``<manager address>:<port>/<repo>:<tag>`` in every service; the manager itself runs them
  from its local copy. On a one-node swarm no registry is started. A worker pulls over
  plain HTTP, so each worker's engine must list the manager's address in
  ``insecure-registries`` (Docker trusts only 127.0.0.0/8 by itself).
* **Nodes.** One service per node: one replica, the node id as hostname and as its alias
  on the overlay, restart condition ``none`` (a killed node stays dead until the harness
  restarts it), endpoint mode ``dnsrr`` (no IPVS needed), pinned to a swarm node so the
  nodes spread over every node of the swarm in runs of consecutive ids (:func:`spread`).
  A node's gossip address is its alias (``n1:7946``): the overlay's DNS gives its current
  address, also after a restart (a new task, so a new container and address; ``/data``
  is a tmpfs, empty again).
* **Reaching them.** Overlay addresses are not routable from the host, so the link plane's
  server (the project's Toxiproxy-compatible one) runs as a container on the manager,
  attached to the overlay, with its API and one control proxy per node published on the
  manager's host: the harness reaches node ``n1``'s control API through
  ``<manager>:<published port>`` -> ``n1:7947``. Gossip links are proxied by the same
  server on its overlay address, as on the Docker backend.
* **Faults.** A fault agent (:mod:`chaos.swarm_agent`) runs as a global service, one task
  per swarm node, in the host's network namespace with ``NET_ADMIN``, ``SYS_ADMIN``,
  ``SYS_PTRACE``, the host's ``/proc`` and the engine's socket. The harness finds each
  node's task, the swarm node it runs on and that node's agent, and sends it kill, pause,
  unpause and the packet plane's iptables commands (run in the container's namespace).

Every service, container and network carries the run label and owner label
(:mod:`chaos.runlabels`), so ``gossipcert clean`` and the next run sweep a crashed run's.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import secrets
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from gossipcert.chaos.packet import PacketPlane, PacketPlaneError
from gossipcert.chaos.procutil import free_port
from gossipcert.chaos.runlabels import (
    NODE_LABEL,
    OWNER_LABEL,
    ROLE_LABEL,
    RUN_LABEL,
    RUN_LABEL_ENV,
    owner_label,
)
from gossipcert.chaos.swarm_agent import RUN_ENV, TOKEN_ENV, AgentClient, AgentError
from gossipcert.chaos.toxiproxy_client import ToxiproxyClient, ToxiproxyError
from gossipcert.harness.drivers.backends.base import NodeAddress
from gossipcert.harness.drivers.backends.docker import (
    CONTROL_PORT,
    GOSSIP_PORT,
    STOP_GRACE_S,
    TOXIPROXY_PORT,
    DockerBackend,
    DockerLinkServer,
    create_run_network,
    given_link_server,
)
from gossipcert.harness.drivers.clean import sweep_docker, wait_tasks_gone
from gossipcert.harness.drivers.images import (
    REFERENCE_REPO,
    build_registry,
    docker_client,
    resolve_image,
)
from gossipcert.harness.drivers.waiting import wait_until
from gossipcert.harness.errors import (
    GossipcertError,
    LaunchError,
    ManifestError,
    ToxiproxyUnavailable,
)

OVERLAY_BLOCK = ipaddress.IPv4Network("10.213.0.0/16")
REGISTRY_PORT = 5000
REGISTRY_HOST_ENV = "GOSSIPCERT_SWARM_REGISTRY_HOST"
AGENT_CAPS = ["NET_ADMIN", "SYS_ADMIN", "SYS_PTRACE"]
AGENT_PORTS = (20000, 29999)
CONTROL_PROXY_BASE = 9000  # control proxies listen on 9001, 9002, ... in the gateway
SPARE_CONTROL_PORTS = 4  # for nodes added later (a wrong-key intruder)
TASK_ENDED = ("complete", "failed", "shutdown", "rejected", "orphaned", "remove")
PLACEMENT_GRACE_S = 8.0  # how long a task may wait for a node before the run gives up
NETNS_KEY = 10_000_000  # netns keys: (agent index + 1) * NETNS_KEY + host pid
SERVICE_STOP_GRACE_NS = STOP_GRACE_S * 10**9


def _ns(seconds: float) -> int:
    return int(seconds * 10**9)


def spread(node_ids: Sequence[str], swarm_nodes: Sequence[str]) -> dict[str, str]:
    """Each node's swarm node: consecutive runs of ids, ``len(node_ids) // len(swarm_nodes)``
    to a swarm node and the rest to the last, so on two swarm nodes the planner's
    ``halves`` partition (first half | second half in id order) falls between them."""
    per = max(1, len(node_ids) // len(swarm_nodes))
    return {node_id: swarm_nodes[min(len(swarm_nodes) - 1, i // per)]
            for i, node_id in enumerate(sorted(node_ids))}  # the planner's order



def not_a_manager(client: Any) -> str | None:
    """Why the engine ``client`` talks to cannot place a swarm run (it is in no swarm, or
    a worker), or None when it is a manager."""
    swarm = client.info().get("Swarm") or {}
    state = swarm.get("LocalNodeState") or "inactive"
    where = client.api.base_url.replace("http+docker://localhost", "the local socket")
    if state != "active":
        return (f"the Docker engine at {where} is in no swarm (swarm state {state}); run "
                "on a swarm manager or point DOCKER_HOST at one")
    if not swarm.get("ControlAvailable"):
        return (f"the Docker engine at {where} is a swarm worker, not a manager; run on a "
                "manager or point DOCKER_HOST at one")
    return None

class SwarmBackend:
    name = "swarm"

    def __init__(self) -> None:
        self._client: Any = None
        self.run_label = ""
        self.progress: Callable[[str], None] = lambda line: None
        self.image = ""  # the nodes' image as services name it
        self.tool_image = ""  # the reference image (agent, link plane server)
        self.network: Any = None
        self.subnet: ipaddress.IPv4Network | None = None
        self.manager_id = ""
        self.swarm_nodes: list[dict[str, Any]] = []  # ready, active: {id, addr, hostname}
        self.template_values: dict[str, str] = {"python": "python3", "data_dir": "/data"}
        self.token = secrets.token_hex(16)
        self.agent_port = 0
        self.agents: dict[str, AgentClient] = {}  # swarm node id -> its agent
        self._agent_index: dict[str, int] = {}
        self._services: dict[str, Any] = {}  # node id -> service
        self._placement: dict[str, str] = {}  # node id -> swarm node id
        self._log_dirs: dict[str, Path] = {}
        self._tasks: dict[str, tuple[float, dict[str, Any]]] = {}
        self._started_at: dict[str, float] = {}
        self._task_errors: dict[str, str] = {}
        self._netns: dict[int, tuple[AgentClient, int]] = {}
        self._support: list[Any] = []  # the registry service
        self._agent_service: Any = None
        self._pushed: list[str] = []  # local tags made for the registry
        self.gateway: Any = None
        self.gateway_host = "127.0.0.1"
        self.gateway_overlay_ip = ""
        self.gateway_url = ""
        self._gateway_ports: dict[int, int] = {}  # port in the gateway -> published port
        self._control_ports: dict[str, int] = {}  # node id -> port in the gateway
        self._control_proxies: ToxiproxyClient | None = None
        self._gateway_handed = False

    # ---- set-up ----------------------------------------------------------------------

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = docker_client()
        return self._client

    def _labels(self, **extra: str) -> dict[str, str]:
        return {RUN_LABEL: self.run_label, OWNER_LABEL: owner_label(), **extra}

    def prepare(self, manifest: Any, run_label: str, run_dir: Path,
                progress: Callable[[str], None] | None = None) -> None:
        """Check the engine is a swarm manager, sweep dead runs, get the images to every
        node, create the overlay and start the fault agents."""
        if manifest.docker is None:
            raise ManifestError(f"manifest {manifest.path}: no launch.docker section "
                                "(needed by --backend swarm)")
        self.run_label = run_label
        if progress is not None:
            self.progress = progress
        self._check_manager()
        swept = sweep_docker(self.client)
        if swept.services or swept.containers or swept.networks:
            self.progress(f"swept leftovers of dead runs: {len(swept.services)} service(s), "
                          f"{len(swept.containers)} container(s), "
                          f"{len(swept.networks)} network(s)")
        self.swarm_nodes = self._ready_nodes()
        local = resolve_image(self.client, manifest.docker.image, self.progress)
        tool = local if local.startswith(REFERENCE_REPO) else resolve_image(
            self.client, REFERENCE_REPO, self.progress)
        self.network, self.subnet = create_run_network(
            self.client, f"gossipcert-{self.run_label}", self._labels(), driver="overlay",
            attachable=True, block=OVERLAY_BLOCK)
        if any(n["id"] != self.manager_id for n in self.swarm_nodes):
            refs = self._distribute([local, tool])
            self.image, self.tool_image = refs[local], refs[tool]
        else:
            self.image, self.tool_image = local, tool
        self._start_agents()
        self.progress(f"swarm: {len(self.swarm_nodes)} node(s) "
                      f"({', '.join(n['hostname'] + '/' + n['id'][:8] for n in self.swarm_nodes)}),"
                      f" overlay {self.network.name} {self.subnet}")

    def _check_manager(self) -> None:
        problem = not_a_manager(self.client)
        if problem is not None:
            raise GossipcertError(f"--backend swarm: {problem}")
        swarm = self.client.info().get("Swarm") or {}
        self.manager_id = str(swarm.get("NodeID") or "")
        self.manager_addr = str(swarm.get("NodeAddr") or "")

    def _ready_nodes(self) -> list[dict[str, Any]]:
        """The swarm nodes tasks can go to (ready and active), the manager first."""
        out = []
        for node in self.client.nodes.list():
            attrs = node.attrs
            status, spec = attrs.get("Status") or {}, attrs.get("Spec") or {}
            if status.get("State") != "ready" or spec.get("Availability") != "active":
                continue
            addr = str(status.get("Addr") or "")
            manager = attrs.get("ManagerStatus") or {}
            if addr in ("", "0.0.0.0") and manager.get("Addr"):
                addr = str(manager["Addr"]).rpartition(":")[0]
            out.append({"id": node.id, "addr": addr,
                        "hostname": (attrs.get("Description") or {}).get("Hostname", "?")})
        if not out:
            raise GossipcertError("--backend swarm: the swarm has no ready, active node")
        out.sort(key=lambda n: (n["id"] != self.manager_id, n["hostname"], n["id"]))
        return out

    def _engine_host(self) -> tuple[str, str]:
        """(address the harness reaches the manager's published ports at, address to
        publish them on): loopback for a local engine, DOCKER_HOST's host otherwise."""
        url = urlparse(self.client.api.base_url)
        if url.scheme in ("http", "https") and url.hostname not in (None, "localhost"):
            return str(url.hostname), "0.0.0.0"
        return "127.0.0.1", "127.0.0.1"

    def _service(self, role: str, image: str, command: list[str], name: str,
                 **kwargs: Any) -> Any:
        import docker.errors

        labels = self._labels(**{ROLE_LABEL: role, **kwargs.pop("extra_labels", {})})
        try:
            return self.client.services.create(
                image, command=command, name=name, labels=labels, container_labels=labels,
                **kwargs)
        except docker.errors.APIError as exc:
            raise LaunchError(f"swarm service {name} not created: "
                              f"{exc.explanation or exc}") from None

    def _tasks_of(self, service: Any) -> list[dict[str, Any]]:
        with contextlib.suppress(Exception):
            tasks = self.client.api.tasks(filters={"service": service.id})
            return sorted(tasks, key=lambda t: (t.get("CreatedAt", ""), t.get("ID", "")))
        return []

    def _distribute(self, images: list[str]) -> dict[str, str]:
        """Start the run's registry on the manager, push ``images`` to it; returns the
        name every node pulls each image by."""
        from docker.types import EndpointSpec, RestartPolicy

        registry_image = build_registry(self.client, self.progress)
        port = free_port("0.0.0.0")
        service = self._service(
            "registry", registry_image, [], f"gossipcert-{self.run_label}-registry",
            constraints=[f"node.id=={self.manager_id}"],
            endpoint_spec=EndpointSpec(mode="dnsrr",
                                       ports={port: (REGISTRY_PORT, "tcp", "host")}),
            restart_policy=RestartPolicy(condition="none"), stop_grace_period=_ns(1))
        self._support.append(service)
        host = os.environ.get(REGISTRY_HOST_ENV) or self.manager_addr
        started = time.monotonic()
        refs: dict[str, str] = {}
        for image in dict.fromkeys(images):
            repo = image.rpartition(":")[0] if ":" in image else image
            tag = image.rpartition(":")[2] if ":" in image else "latest"
            local_ref = f"127.0.0.1:{port}/{repo}"
            self.client.images.get(image).tag(local_ref, tag)
            self._pushed.append(f"{local_ref}:{tag}")
            last = ""

            def pushed(local_ref: str = local_ref, tag: str = tag) -> bool:
                nonlocal last
                errors = [str(c.get("error")) for c in self.client.images.push(
                    local_ref, tag, stream=True, decode=True) if "error" in c]
                last = "; ".join(errors)
                return not errors

            if wait_until(pushed, 60.0, every_s=1.0) is None:
                raise GossipcertError(f"--backend swarm: cannot push {image} to the run's "
                                      f"registry at 127.0.0.1:{port}: {last}")
            ref = f"{host}:{port}/{repo}:{tag}"
            self.client.images.get(image).tag(f"{host}:{port}/{repo}", tag)
            self._pushed.append(ref)
            refs[image] = ref
        self.progress(f"swarm: images in the run's registry {host}:{port} after "
                      f"{time.monotonic() - started:.1f} s")
        return refs

    def _start_agents(self) -> None:
        from docker.types import Mount, RestartPolicy, ServiceMode

        self.agent_port = random.Random().randint(*AGENT_PORTS)
        service = self._service(
            "agent", self.tool_image,
            ["python3", "-m", "gossipcert.chaos.swarm_agent", "--listen",
             f"0.0.0.0:{self.agent_port}"],
            f"gossipcert-{self.run_label}-agent", mode=ServiceMode("global"),
            networks=["host"], cap_add=AGENT_CAPS,
            env=[f"{TOKEN_ENV}={self.token}", f"{RUN_ENV}={self.run_label}"],
            mounts=[Mount("/var/run/docker.sock", "/var/run/docker.sock", type="bind"),
                    Mount("/host/proc", "/proc", type="bind", read_only=True)],
            restart_policy=RestartPolicy(condition="on-failure", delay=_ns(1)),
            stop_grace_period=_ns(1))
        self._agent_service = service
        for index, node in enumerate(self.swarm_nodes):
            self._agent_index[node["id"]] = index
        waiting = {n["id"]: n for n in self.swarm_nodes}

        def all_answer() -> bool:
            for node_id, node in list(waiting.items()):
                agent = AgentClient(node["addr"], self.agent_port, self.token, timeout_s=2.0)
                try:
                    health = agent.health()
                except AgentError:
                    agent.close()
                    continue
                if health.get("node_id") != node_id:
                    agent.close()
                    raise GossipcertError(
                        f"--backend swarm: the agent port {node['addr']}:{self.agent_port} "
                        f"answers for swarm node {health.get('node_id')}, not {node_id}")
                self.agents[node_id] = agent
                del waiting[node_id]
            return not waiting

        if wait_until(all_answer, 90.0, every_s=0.5) is None:
            errors = sorted({str((t.get("Status") or {}).get("Err") or "")
                             for t in self._tasks_of(service)} - {""})
            missing = ", ".join(f"{n['hostname']}/{i[:8]} at {n['addr']}"
                                for i, n in waiting.items())
            raise GossipcertError(
                f"--backend swarm: no fault agent answers on {missing} "
                f"(port {self.agent_port}){': ' + '; '.join(errors) if errors else ''}")

    def _open_gateway(self, ports: int) -> None:
        """The link plane's server on the manager, on the overlay, with its API and
        ``ports`` control proxy ports published on the manager's host."""
        import docker.errors

        reach, bind = self._engine_host()
        inner = [TOXIPROXY_PORT, *(CONTROL_PROXY_BASE + i + 1 for i in range(ports))]
        api = self.client.api
        assert self.network is not None
        try:
            created = api.create_container(
                self.tool_image, command=["python3", "-m", "gossipcert.chaos.toxiproxy",
                                          "serve", "--listen", f"0.0.0.0:{TOXIPROXY_PORT}"],
                hostname="toxiproxy", name=f"gossipcert-{self.run_label}-toxiproxy",
                labels=self._labels(**{NODE_LABEL: "toxiproxy", ROLE_LABEL: "toxiproxy"}),
                detach=True, ports=inner,
                host_config=api.create_host_config(port_bindings={p: (bind,) for p in inner}),
                networking_config=api.create_networking_config({
                    self.network.name: api.create_endpoint_config(aliases=["toxiproxy"])}),
            )
            self.gateway = self.client.containers.get(created["Id"])
            self.gateway.start()
        except docker.errors.APIError as exc:
            raise ToxiproxyUnavailable(f"the link plane container on the overlay did not "
                                       f"start: {exc.explanation or exc}") from None
        self.gateway.reload()
        settings = self.gateway.attrs.get("NetworkSettings") or {}
        self.gateway_overlay_ip = str(
            ((settings.get("Networks") or {}).get(self.network.name) or {}).get("IPAddress"))
        for port in inner:
            bound = (settings.get("Ports") or {}).get(f"{port}/tcp") or []
            if bound:
                self._gateway_ports[port] = int(bound[0]["HostPort"])
        if TOXIPROXY_PORT not in self._gateway_ports:
            raise ToxiproxyUnavailable("the link plane container's API port is not published")
        self.gateway_host = reach
        self.gateway_url = f"http://{reach}:{self._gateway_ports[TOXIPROXY_PORT]}"
        if not DockerBackend._wait_http(reach, self._gateway_ports[TOXIPROXY_PORT], "/version",
                                        self.gateway, 30.0):
            tail = ""
            with contextlib.suppress(Exception):
                tail = self.gateway.logs(stdout=False, stderr=True, tail=5).decode(
                    errors="replace").strip().replace("\n", " | ")
            raise ToxiproxyUnavailable(
                f"the link plane container did not answer at {self.gateway_url}: "
                f"{tail or '(no output)'}")
        self._control_proxies = ToxiproxyClient(self.gateway_url)

    def allocate(self, node_ids: list[str], base_port: int | None) -> dict[str, NodeAddress]:
        """Gossip at ``<node id>:<port>`` on the overlay; control through the gateway."""
        if self.network is None:
            raise GossipcertError("the swarm backend was not prepared (no run network)")
        gossip = base_port if base_port is not None else GOSSIP_PORT
        control = base_port + 1 if base_port is not None else CONTROL_PORT
        self.template_values = {"python": "python3", "data_dir": "/data",
                                "control_addr": f"0.0.0.0:{control}",
                                "control_host": "0.0.0.0", "control_port": str(control)}
        if self.gateway is None:
            self._open_gateway(len(node_ids) + SPARE_CONTROL_PORTS)
        if not self._placement:
            self._placement = spread(node_ids, [n["id"] for n in self.swarm_nodes])
        assert self._control_proxies is not None
        out = {}
        for node_id in node_ids:
            if node_id not in self._control_ports:
                inner = CONTROL_PROXY_BASE + len(self._control_ports) + 1
                if inner not in self._gateway_ports:
                    raise LaunchError(f"node {node_id}: no control port left on the gateway")
                try:
                    self._control_proxies.create_proxy(
                        f"{self.run_label}:control:{node_id}", f"0.0.0.0:{inner}",
                        f"{node_id}:{control}")
                except (ToxiproxyError, OSError) as exc:
                    raise ToxiproxyUnavailable(
                        f"node {node_id}: control proxy not created: {exc}") from None
                self._control_ports[node_id] = inner
            published = self._gateway_ports[self._control_ports[node_id]]
            out[node_id] = NodeAddress(node_id, (node_id, gossip),
                                       (self.gateway_host, published))
        return out

    # ---- nodes -----------------------------------------------------------------------

    def start(self, addr: NodeAddress, argv: list[str], env: dict[str, str],
              cwd: str | None, log_dir: Path) -> None:
        from docker.types import EndpointSpec, Mount, NetworkAttachmentConfig, RestartPolicy

        assert self.network is not None
        node_id = addr.node_id
        log_dir.mkdir(parents=True, exist_ok=True)
        self._log_dirs[node_id] = log_dir
        place = self._placement.get(node_id)
        if place is None:  # a node added later (a wrong-key intruder): the next in turn
            place = self.swarm_nodes[len(self._placement) % len(self.swarm_nodes)]["id"]
            self._placement[node_id] = place
        env = {k: v for k, v in env.items() if k != RUN_LABEL_ENV}
        self._services[node_id] = self._service(
            "node", self.image, argv, f"gossipcert-{self.run_label}-{node_id}",
            extra_labels={NODE_LABEL: node_id}, hostname=node_id,
            env=[f"{k}={v}" for k, v in env.items()], workdir=cwd,
            networks=[NetworkAttachmentConfig(self.network.id, aliases=[node_id])],
            endpoint_spec=EndpointSpec(mode="dnsrr"),
            restart_policy=RestartPolicy(condition="none"),
            constraints=[f"node.id=={place}"],
            mounts=[Mount("/data", None, type="tmpfs")],
            stop_grace_period=SERVICE_STOP_GRACE_NS)
        self._started_at[node_id] = time.monotonic()
        self._tasks.pop(node_id, None)

    def _task(self, node_id: str, max_age_s: float = 0.0) -> dict[str, Any] | None:
        """The node's newest task, looked up afresh unless the last look is recent."""
        seen_at, task = self._tasks.get(node_id, (-1e9, None))
        if time.monotonic() - seen_at > max_age_s or task is None:
            tasks = self._tasks_of(self._services[node_id])
            task = tasks[-1] if tasks else None
            if task is not None:
                self._tasks[node_id] = (time.monotonic(), task)
        return task

    def _container(self, node_id: str) -> tuple[AgentClient, str] | None:
        """The node's running container and the agent of its host, or None."""
        task = self._task(node_id)
        status = (task or {}).get("Status") or {}
        cid = (status.get("ContainerStatus") or {}).get("ContainerID")
        if task is None or not cid or status.get("State") in TASK_ENDED:
            return None
        agent = self.agents.get(str(task.get("NodeID")))
        if agent is None:
            raise LaunchError(f"node {node_id}: no fault agent on swarm node "
                              f"{task.get('NodeID')}")
        return agent, str(cid)

    def exited(self, node_id: str) -> int | None:
        if node_id not in self._services:
            return None
        task = self._task(node_id, max_age_s=0.5)
        if task is None:
            return None
        status = task.get("Status") or {}
        state = status.get("State")
        err = str(status.get("Err") or "")
        if state in TASK_ENDED:
            if err:
                self._task_errors[node_id] = f"swarm task {state}: {err}"
            code = (status.get("ContainerStatus") or {}).get("ExitCode")
            return int(code) if code is not None and (code or state != "rejected") else 125
        waited = time.monotonic() - self._started_at.get(node_id, time.monotonic())
        if state == "pending" and err and waited > PLACEMENT_GRACE_S:
            raise LaunchError(f"node {node_id}: the swarm cannot place its task: {err}")
        return None

    def save_logs(self, node_id: str) -> None:
        """The service's output (every task of it) to ``nodes/<id>/stdout.log`` and
        ``stderr.log``."""
        log_dir, service = self._log_dirs.get(node_id), self._services.get(node_id)
        if log_dir is None or service is None:
            return
        for stream, path in (("stdout", log_dir / "stdout.log"),
                             ("stderr", log_dir / "stderr.log")):
            with contextlib.suppress(Exception):
                chunks = self.client.api.service_logs(
                    service.id, stdout=stream == "stdout", stderr=stream == "stderr",
                    is_tty=False)
                path.write_bytes(b"".join(chunks))

    def stderr_tail(self, node_id: str, lines: int = 10) -> str:
        self.save_logs(node_id)
        path = self._log_dirs.get(node_id, Path("/nonexistent")) / "stderr.log"
        text = []
        if path.exists():
            text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        if node_id in self._task_errors:
            text.append(self._task_errors[node_id])
        else:  # where the swarm says the node is, for a node that never answered
            task = self._task(node_id) or {}
            status = task.get("Status") or {}
            text.append(f"(swarm task {str(task.get('ID', '?'))[:12]}: "
                        f"{status.get('State', 'none')} on node "
                        f"{str(task.get('NodeID', '?'))[:12]}, overlay address "
                        f"{self.overlay_ip(node_id) or 'none'}: {status.get('Message', '')})")
        return "\n".join(text[-lines:])

    def _wait_ended(self, node_id: str, timeout_s: float = 15.0) -> None:
        def ended() -> bool:
            task = self._task(node_id)
            return task is None or ((task.get("Status") or {}).get("State") in TASK_ENDED)

        wait_until(ended, timeout_s, every_s=0.1)

    def kill(self, node_id: str) -> None:
        found = self._container(node_id)
        if found is None:
            return
        agent, cid = found
        with contextlib.suppress(AgentError):
            if agent.state(cid).get("Paused"):
                agent.container(cid, "unpause")
        with contextlib.suppress(AgentError):
            agent.container(cid, "kill")
        self._wait_ended(node_id)

    def _running(self, node_id: str) -> tuple[AgentClient, str]:
        """The agent and container of a node that runs; LaunchError when none does."""
        found = self._container(node_id)
        if found is None:
            raise LaunchError(f"node {node_id} is not running")
        return found

    def pause(self, node_id: str) -> None:
        agent, cid = self._running(node_id)
        agent.container(cid, "pause")

    def resume(self, node_id: str) -> None:
        agent, cid = self._running(node_id)
        agent.container(cid, "unpause")

    def paused(self, node_id: str) -> bool:
        found = self._container(node_id)
        if found is None:
            return False
        agent, cid = found
        try:
            return bool(agent.state(cid).get("Paused"))
        except AgentError:
            return False

    def restart(self, node_id: str) -> None:
        """A new task of the node's service (same name, hostname, alias, argv, swarm node;
        a new container, so an empty ``/data`` and maybe a new overlay address)."""
        self._tasks.pop(node_id, None)
        old = self._task(node_id)
        if self.exited(node_id) is None:
            self.kill(node_id)
        self._reset_links(node_id)
        service = self._services[node_id]
        service.reload()
        service.force_update()
        self._started_at[node_id] = time.monotonic()
        self._task_errors.pop(node_id, None)

        def new_task() -> bool:
            task = self._task(node_id)
            return task is not None and (old is None or task.get("ID") != old.get("ID"))

        if wait_until(new_task, 30.0, every_s=0.1) is None:
            raise LaunchError(f"node {node_id}: the swarm made no new task on restart")

    def _reset_links(self, node_id: str) -> None:
        """Close every proxied connection to the node (each proxy disabled and enabled
        again, toxics kept). A restarted node gets a new overlay address, so a peer's
        connection to its old one would hang unanswered until TCP gives up, where a
        restart on the same address (the Docker backend) answers with a reset; the peers
        dial again and reach the new one."""
        if self._control_proxies is None:
            return
        try:
            for name, proxy in self._control_proxies.proxies().items():
                upstream = str(proxy.get("upstream", ""))
                if name.startswith(f"{self.run_label}:") and \
                        upstream.rpartition(":")[0] == node_id:
                    self._control_proxies.disable_proxy(name)
                    self._control_proxies.enable_proxy(name)
        except (ToxiproxyError, OSError) as exc:
            raise LaunchError(f"node {node_id}: the proxies to it could not be reset for "
                              f"its restart: {exc}") from None

    def netns_pid(self, node_id: str) -> int | None:
        """A key of the node's network namespace for the packet plane (its agent and the
        container's host pid, see :meth:`packet_plane`), None when it is not running."""
        found = self._container(node_id)
        if found is None:
            return None
        agent, cid = found
        try:
            state = agent.state(cid)
        except AgentError:
            return None
        pid = int(state.get("Pid") or 0)
        if pid <= 0 or not state.get("Running"):
            return None
        task = self._task(node_id) or {}
        key = (self._agent_index[str(task.get("NodeID"))] + 1) * NETNS_KEY + pid
        self._netns[key] = (agent, pid)
        return key

    def packet_plane(self, run_label: str) -> PacketPlane:
        """The packet plane, its iptables commands run by each node's agent."""
        return PacketPlane(run_label, runner=self._iptables)

    def _iptables(self, pid: int | None, args: Sequence[str], *, check: bool = True) -> str:
        if pid is None or pid not in self._netns:
            raise PacketPlaneError("on the swarm backend every rule goes into a node's own "
                                   "namespace, through the agent of its host")
        agent, host_pid = self._netns[pid]
        args = self._addresses_in(args)
        try:
            code, out, err = agent.iptables(host_pid, args)
        except AgentError as exc:
            raise PacketPlaneError(str(exc)) from None
        if check and code != 0:
            raise PacketPlaneError(f"iptables (netns of pid {host_pid} via the agent at "
                                   f"{agent.address}) refused {' '.join(args)}: {err.strip()}")
        return out

    def _addresses_in(self, args: Sequence[str]) -> list[str]:
        """What the harness knows a node by, made what its namespace sees: node ids given
        as ``-s``/``-d`` addresses become overlay addresses, and a control port published
        on the gateway (``--sports``) the port the node serves on."""
        out = list(args)
        inner = {str(published): self.template_values.get("control_port", "")
                 for port, published in self._gateway_ports.items()
                 if port in self._control_ports.values()}
        for i in range(1, len(out)):
            if out[i - 1] in ("-s", "-d") and out[i] in self._services:
                out[i] = self.overlay_ip(out[i]) or out[i]
            elif out[i - 1] in ("--sports", "--sport"):
                out[i] = ",".join(inner.get(p) or p for p in out[i].split(","))
        return out

    def overlay_ip(self, node_id: str) -> str | None:
        """The node's current address on the run's overlay."""
        task = self._task(node_id) or {}
        for attachment in task.get("NetworksAttachments") or []:
            if (attachment.get("Network") or {}).get("ID") == getattr(self.network, "id", None):
                for cidr in attachment.get("Addresses") or []:
                    return str(cidr).split("/")[0]
        return None

    def placement(self) -> dict[str, str]:
        """Node id -> the swarm node id its service is pinned to."""
        return dict(self._placement)

    # ---- the end ---------------------------------------------------------------------

    def stop_all(self) -> None:
        for node_id in list(self._services):
            self.save_logs(node_id)
        # Nodes and registry first, the agents last: until then each agent tells when its
        # host holds no container of the run any more (the swarm forgets a removed
        # service's tasks before its nodes have removed their containers).
        agents = [self._agent_service] if self._agent_service is not None else []
        first = [*self._services.values(), *self._support]
        for service in first:
            with contextlib.suppress(Exception):
                service.remove()
        if first:
            wait_tasks_gone(self.client, [s.id for s in first])
        if agents:
            self._wait_hosts_clear()
        for service in agents:
            with contextlib.suppress(Exception):
                service.remove()
        if agents:
            wait_tasks_gone(self.client, [s.id for s in agents])
            self._wait_local_clear()
        self._services.clear()
        self._support.clear()
        self._agent_service = None
        for agent in self.agents.values():
            agent.close()
        for ref in self._pushed:
            with contextlib.suppress(Exception):
                self.client.images.remove(ref)
        self._pushed.clear()
        if not self._gateway_handed:
            self._close_gateway()
            self.remove_network()

    def _wait_hosts_clear(self, timeout_s: float = 30.0) -> None:
        """Until no swarm node's agent sees a container of the run but its own."""
        gateway = getattr(self.gateway, "id", None)

        def clear() -> bool:
            for agent in self.agents.values():
                with contextlib.suppress(AgentError):
                    if any(c.get("id") != gateway for c in agent.run_containers()):
                        return False
            return True

        wait_until(clear, timeout_s, every_s=0.3)

    def _wait_local_clear(self, timeout_s: float = 20.0) -> None:
        """Until the manager's engine holds no container of the run's services."""
        def clear() -> bool:
            listed = self.client.containers.list(
                all=True, filters={"label": [f"{RUN_LABEL}={self.run_label}",
                                             f"{ROLE_LABEL}"]})
            return not [c for c in listed if c.labels.get(ROLE_LABEL) != "toxiproxy"]

        with contextlib.suppress(Exception):
            wait_until(clear, timeout_s, every_s=0.3)

    def _close_gateway(self) -> None:
        if self._control_proxies is not None:
            self._control_proxies.close()
            self._control_proxies = None
        if self.gateway is not None:
            with contextlib.suppress(Exception):
                self.gateway.remove(force=True)
            self.gateway = None

    def remove_network(self) -> None:
        """Remove the overlay once the swarm has let go of every task on it."""
        if self.network is None:
            return
        network = self.network

        def removed() -> bool:
            try:
                network.remove()
            except Exception as exc:
                return "not found" in str(exc).lower() or "no such" in str(exc).lower()
            return True

        if wait_until(removed, 60.0, every_s=0.5) is not None:
            self.network = None
            # The manager drops it at once; the engine's own list follows a moment later.
            with contextlib.suppress(Exception):
                wait_until(lambda: not self.client.networks.list(ids=[network.id]), 15.0,
                           every_s=0.3)

    # ---- the link plane --------------------------------------------------------------

    def open_link_server(self, log_dir: Path, url: str | None = None) -> DockerLinkServer:
        """The gateway's Toxiproxy server (on the overlay), or a given one."""
        if url is not None:
            return given_link_server(url, "an address the swarm's containers can reach")
        if self.gateway is None:
            raise ToxiproxyUnavailable("the swarm backend has no link plane container")
        self._gateway_handed = True
        return DockerLinkServer(url=self.gateway_url, listen_host=self.gateway_overlay_ip,
                                container=self.gateway, log_dir=log_dir,
                                on_close=self._after_link_server)

    def _after_link_server(self) -> None:
        self.gateway = None  # removed by the link server's close
        self._close_gateway()
        self.remove_network()
