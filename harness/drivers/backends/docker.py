"""Each node a container on a per-run Docker network, with its own IP and hostname.

Every container and network carries ``gossipcert.run=<run label>`` and the owning
harness process (``gossipcert.owner``), so ``gossipcert clean`` and the sweep at the
start of every run find what a crashed run left. A node's data directory is a bind mount
of ``<run dir>/nodes/<id>/data`` at ``/data``: a restart keeps identity, address and data.
"""

from __future__ import annotations

import contextlib
import ipaddress
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gossipcert.chaos.jsonhttp import JsonHttpClient, TransportError
from gossipcert.chaos.runlabels import (
    NODE_LABEL,
    OWNER_LABEL,
    RUN_LABEL,
    RUN_LABEL_ENV,
    owner_label,
)
from gossipcert.harness.drivers.backends.base import NodeAddress
from gossipcert.harness.drivers.clean import sweep_docker
from gossipcert.harness.drivers.images import REFERENCE_REPO, docker_client, resolve_image
from gossipcert.harness.drivers.waiting import wait_until
from gossipcert.harness.errors import (
    GossipcertError,
    HarnessError,
    LaunchError,
    ManifestError,
    ToxiproxyUnavailable,
)

GOSSIP_PORT = 7946
CONTROL_PORT = 7947
TOXIPROXY_PORT = 8474
# Real Toxiproxy images, used for the link plane when one is present locally.
TOXIPROXY_IMAGES = ("ghcr.io/shopify/toxiproxy", "shopify/toxiproxy")
# Per-run /24 networks are carved from this block; taken ones are skipped.
SUBNET_BLOCK = ipaddress.IPv4Network("172.29.0.0/16")
STOP_GRACE_S = 2


def _local_routes() -> list[ipaddress.IPv4Network]:
    """Destinations of the host's IPv4 routes, so a run's subnet never shadows one."""
    nets = []
    with contextlib.suppress(OSError), open("/proc/net/route", encoding="ascii") as f:
        next(f)
        for line in f:
            cols = line.split()
            if len(cols) < 8 or cols[1] == "00000000":
                continue
            dest = ipaddress.IPv4Address(bytes.fromhex(cols[1])[::-1])
            mask = ipaddress.IPv4Address(bytes.fromhex(cols[7])[::-1])
            with contextlib.suppress(ValueError):
                nets.append(ipaddress.IPv4Network(f"{dest}/{mask}", strict=False))
    return nets


def create_run_network(client: Any, name: str, labels: dict[str, str], *,
                       driver: str = "bridge", attachable: bool = False,
                       block: ipaddress.IPv4Network = SUBNET_BLOCK,
                       ) -> tuple[Any, ipaddress.IPv4Network]:
    """A run's network on the first free /24 of ``block``: none of the engine's networks
    nor the host's routes overlap it (the swarm backend makes its overlay the same way)."""
    import docker.errors
    from docker.types import IPAMConfig, IPAMPool

    taken = _local_routes()
    for net in client.networks.list():
        for cfg in (net.attrs.get("IPAM") or {}).get("Config") or []:
            with contextlib.suppress(ValueError, KeyError):
                net_range = ipaddress.ip_network(cfg["Subnet"])
                if isinstance(net_range, ipaddress.IPv4Network):
                    taken.append(net_range)
    last_error = "no free /24 left"
    for subnet in block.subnets(new_prefix=24):
        if any(subnet.overlaps(t) for t in taken):
            continue
        ipam = IPAMConfig(pool_configs=[IPAMPool(subnet=str(subnet), gateway=str(subnet[1]))])
        try:
            network = client.networks.create(
                name, driver=driver, ipam=ipam, labels=labels, check_duplicate=True,
                attachable=attachable or None)
        except docker.errors.APIError as exc:
            last_error = str(exc.explanation or exc)
            continue  # taken by a run that started meanwhile: try the next one
        return network, subnet
    raise GossipcertError(f"cannot create the run's Docker network ({driver}): {last_error}")


@dataclass
class DockerLinkServer:
    """The link plane's server as seen by a run: its API URL and where proxies listen."""

    url: str
    listen_host: str
    container: Any = None
    log_dir: Path | None = None
    on_close: Callable[[], None] | None = None

    def close(self) -> None:
        if self.container is None:
            return
        if self.log_dir is not None:
            _save_logs(self.container, self.log_dir / "toxiproxy.stdout.log",
                       self.log_dir / "toxiproxy.stderr.log")
        with contextlib.suppress(Exception):
            self.container.remove(force=True)
        self.container = None
        if self.on_close is not None:
            self.on_close()


def given_link_server(url: str, reachable: str) -> DockerLinkServer:
    """A Toxiproxy given by ``--toxiproxy-url`` to containers: it opens its proxies on the
    address it is reached at, which must not be the host's loopback."""
    from urllib.parse import urlparse

    host = urlparse(url).hostname or ""
    if not host or host == "localhost" or host.startswith("127."):
        raise ToxiproxyUnavailable(
            f"--toxiproxy-url {url}: containers cannot reach the host's loopback; give "
            f"{reachable}")
    return DockerLinkServer(url=url, listen_host=host)


def _save_logs(container: Any, stdout_path: Path, stderr_path: Path) -> None:
    with contextlib.suppress(Exception):
        stdout_path.parent.mkdir(parents=True, exist_ok=True)
        stdout_path.write_bytes(container.logs(stdout=True, stderr=False))
        stderr_path.write_bytes(container.logs(stdout=False, stderr=True))


class DockerBackend:
    name = "docker"
    # Placeholders of launch.docker that differ from launch.process.
    template_values = {"python": "python3", "data_dir": "/data"}

    def __init__(self) -> None:
        self._client: Any = None
        self.run_label = ""
        self.image = ""
        self.network: Any = None
        self.subnet: ipaddress.IPv4Network | None = None
        self.progress: Callable[[str], None] = lambda line: None
        self._containers: dict[str, Any] = {}
        self._log_dirs: dict[str, Path] = {}
        # Containers start in the background (the daemon's network set-up is slow), so a
        # cluster's nodes come up together; failures surface through exited().
        self._starter = ThreadPoolExecutor(max_workers=8, thread_name_prefix="docker-start")
        self._starting: dict[str, Future[None]] = {}
        self._start_errors: dict[str, str] = {}
        self._seen: dict[str, tuple[float, dict[str, Any]]] = {}

    # ---- set-up ----------------------------------------------------------------------

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = docker_client()
        return self._client

    def prepare(self, manifest: Any, run_label: str, run_dir: Path,
                progress: Callable[[str], None] | None = None) -> None:
        """Sweep dead runs' leftovers, make sure the image exists, create the run network."""
        if manifest.docker is None:
            raise ManifestError(f"manifest {manifest.path}: no launch.docker section "
                                "(needed by --backend docker)")
        self.run_label = run_label
        if progress is not None:
            self.progress = progress
        swept = sweep_docker(self.client)
        if swept.containers or swept.networks:
            self.progress(f"swept leftovers of dead runs: {len(swept.containers)} "
                          f"container(s), {len(swept.networks)} network(s)")
        self.image = resolve_image(self.client, manifest.docker.image, self.progress)
        self._create_network()

    def _labels(self, **extra: str) -> dict[str, str]:
        return {RUN_LABEL: self.run_label, OWNER_LABEL: owner_label(), **extra}

    def _create_network(self) -> None:
        self.network, self.subnet = create_run_network(
            self.client, f"gossipcert-{self.run_label}", self._labels())

    def allocate(self, node_ids: list[str], base_port: int | None) -> dict[str, NodeAddress]:
        if self.subnet is None:
            raise GossipcertError("the Docker backend was not prepared (no run network)")
        gossip = base_port if base_port is not None else GOSSIP_PORT
        control = base_port + 1 if base_port is not None else CONTROL_PORT
        out = {}
        for i, node_id in enumerate(node_ids):
            ip = str(self.subnet[10 + i])
            out[node_id] = NodeAddress(node_id, (ip, gossip), (ip, control))
        return out

    # ---- nodes -----------------------------------------------------------------------

    def start(self, addr: NodeAddress, argv: list[str], env: dict[str, str],
              cwd: str | None, log_dir: Path) -> None:
        import docker.errors

        assert self.network is not None
        data = log_dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        self._log_dirs[addr.node_id] = log_dir
        api = self.client.api
        env = {k: v for k, v in env.items() if k != RUN_LABEL_ENV}
        try:
            created = api.create_container(
                self.image, command=argv, hostname=addr.node_id,
                name=f"gossipcert-{self.run_label}-{addr.node_id}",
                labels=self._labels(**{NODE_LABEL: addr.node_id}), environment=env,
                working_dir=cwd, detach=True,
                host_config=api.create_host_config(binds=[f"{data.resolve()}:/data:rw"]),
                networking_config=api.create_networking_config({
                    self.network.name: api.create_endpoint_config(
                        ipv4_address=addr.gossip[0], aliases=[addr.node_id]),
                }),
            )
        except docker.errors.APIError as exc:
            raise LaunchError(
                f"node {addr.node_id}: container not created: {exc.explanation or exc}"
            ) from None
        container = self.client.containers.get(created["Id"])
        self._containers[addr.node_id] = container
        self._start_errors.pop(addr.node_id, None)
        self._starting[addr.node_id] = self._starter.submit(container.start)

    def _start_failed(self, node_id: str) -> bool:
        """Whether the background start of the node's container raised (kept as its error)."""
        future = self._starting.get(node_id)
        if future is None or not future.done():
            return node_id in self._start_errors
        del self._starting[node_id]
        exc = future.exception()
        if exc is not None:
            self._start_errors[node_id] = (
                f"container did not start: {getattr(exc, 'explanation', None) or exc}")
        return node_id in self._start_errors

    def _started(self, node_id: str) -> None:
        """Wait for the background start (a fault must not race it)."""
        future = self._starting.get(node_id)
        if future is not None:
            with contextlib.suppress(Exception):
                future.result(timeout=60)

    def _state(self, node_id: str, max_age_s: float = 0.0) -> dict[str, Any]:
        """The container's state, inspected afresh unless the last look is recent enough."""
        seen_at, state = self._seen.get(node_id, (-1e9, {}))
        if time.monotonic() - seen_at > max_age_s:
            container = self._containers[node_id]
            container.reload()
            state = container.attrs.get("State") or {}
            self._seen[node_id] = (time.monotonic(), state)
        return state

    def exited(self, node_id: str) -> int | None:
        if node_id not in self._containers:
            return None
        if self._start_failed(node_id):
            return 125  # docker run's code for "the daemon could not run it"
        # Polled while nodes start: a look every half second spares the daemon.
        state = self._state(node_id, max_age_s=0.5)
        if state.get("Status") in ("exited", "dead"):
            return int(state.get("ExitCode", -1))
        return None

    def save_logs(self, node_id: str) -> None:
        """Copy the container's output to ``nodes/<id>/stdout.log`` and ``stderr.log``."""
        log_dir = self._log_dirs.get(node_id)
        container = self._containers.get(node_id)
        if log_dir is not None and container is not None:
            _save_logs(container, log_dir / "stdout.log", log_dir / "stderr.log")

    def stderr_tail(self, node_id: str, lines: int = 10) -> str:
        if node_id in self._start_errors:
            return self._start_errors[node_id]
        self.save_logs(node_id)
        path = self._log_dirs.get(node_id, Path("/nonexistent")) / "stderr.log"
        if not path.exists():
            return ""
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        return "\n".join(text[-lines:])

    def kill(self, node_id: str) -> None:
        self._started(node_id)
        container = self._containers[node_id]
        with contextlib.suppress(Exception):
            if self._state(node_id).get("Paused"):
                container.unpause()
        with contextlib.suppress(Exception):
            container.kill()  # SIGKILL (refused when it already stopped: checked below)
        with contextlib.suppress(Exception):
            container.wait(timeout=10)
        self._seen.pop(node_id, None)
        # A kill the engine never carried out must not pass for one: the history would
        # say the node died while it ran on.
        if self._state(node_id).get("Running"):
            raise HarnessError(f"the Docker engine did not kill {node_id}")

    def pause(self, node_id: str) -> None:
        """Freeze every process of the node (cgroup freezer): it neither sends nor answers."""
        self._started(node_id)
        self._containers[node_id].pause()

    def resume(self, node_id: str) -> None:
        self._containers[node_id].unpause()

    def paused(self, node_id: str) -> bool:
        return bool(self._state(node_id).get("Paused"))

    def restart(self, node_id: str) -> None:
        """Start the node again in the same container: same name, hostname, IP and /data."""
        self._started(node_id)
        self._seen.pop(node_id, None)
        if self.exited(node_id) is None:
            self.kill(node_id)
        self._containers[node_id].start()
        self._seen.pop(node_id, None)

    def netns_pid(self, node_id: str) -> int | None:
        """A host pid inside the node's network namespace (for nsenter), None if stopped."""
        state = self._state(node_id)
        pid = int(state.get("Pid") or 0)
        return pid if pid > 0 and state.get("Running") else None

    def stop_all(self) -> None:
        def stop(node_id: str) -> None:
            self._started(node_id)
            container = self._containers[node_id]
            with contextlib.suppress(Exception):
                if self._state(node_id).get("Paused"):
                    container.unpause()
            with contextlib.suppress(Exception):
                container.stop(timeout=STOP_GRACE_S)
            self.save_logs(node_id)
            with contextlib.suppress(Exception):
                container.remove(force=True)

        try:
            if self._containers:
                with ThreadPoolExecutor(max_workers=8) as pool:
                    list(pool.map(stop, list(self._containers)))
            self._containers.clear()
        finally:
            self._starter.shutdown(wait=False)
            self.remove_network()

    def remove_network(self) -> None:
        """Remove the run network once nothing is attached (the link server goes last)."""
        if self.network is None:
            return
        with contextlib.suppress(Exception):
            self.network.reload()
            if self.network.containers:
                return
        with contextlib.suppress(Exception):
            self.network.remove()
            self.network = None

    # ---- the link plane --------------------------------------------------------------

    def open_link_server(self, log_dir: Path, url: str | None = None) -> DockerLinkServer:
        """The Toxiproxy server the run's containers reach: given, real, or ours."""
        if url is not None:
            return given_link_server(url, "an address on the run's network or the Docker "
                                          "bridge")
        assert self.subnet is not None and self.network is not None
        ip = str(self.subnet[2])
        real = self._real_toxiproxy_image()
        if real is not None:
            image, command = real, ["-host=0.0.0.0", f"-port={TOXIPROXY_PORT}"]
            self.progress(f"link plane: Toxiproxy from image {real}")
        else:
            image = self.image if self.image.startswith(REFERENCE_REPO) else resolve_image(
                self.client, REFERENCE_REPO, self.progress)
            command = ["python3", "-m", "gossipcert.chaos.toxiproxy", "serve", "--listen",
                       f"0.0.0.0:{TOXIPROXY_PORT}"]
        api = self.client.api
        created = api.create_container(
            image, command=command, hostname="toxiproxy",
            name=f"gossipcert-{self.run_label}-toxiproxy",
            labels=self._labels(**{NODE_LABEL: "toxiproxy"}), detach=True,
            networking_config=api.create_networking_config({
                self.network.name: api.create_endpoint_config(ipv4_address=ip,
                                                              aliases=["toxiproxy"]),
            }),
        )
        container = self.client.containers.get(created["Id"])
        server = DockerLinkServer(url=f"http://{ip}:{TOXIPROXY_PORT}", listen_host=ip,
                                  container=container, log_dir=log_dir,
                                  on_close=self.remove_network)
        container.start()
        if not self._wait_http(ip, TOXIPROXY_PORT, "/version", container, 20.0):
            tail = ""
            with contextlib.suppress(Exception):
                tail = container.logs(stdout=False, stderr=True, tail=5).decode(
                    errors="replace").strip().replace("\n", " | ")
            server.close()
            raise ToxiproxyUnavailable(
                f"the Toxiproxy container did not answer at {server.url}: {tail or '(no output)'}")
        return server

    def _real_toxiproxy_image(self) -> str | None:
        for name in TOXIPROXY_IMAGES:
            with contextlib.suppress(Exception):
                images = self.client.images.list(name=name)
                if images and images[0].tags:
                    return str(images[0].tags[0])
        return None

    @staticmethod
    def _wait_http(host: str, port: int, path: str, container: Any, timeout_s: float) -> bool:
        """Whether ``GET path`` answers 200 within ``timeout_s``; False as soon as the
        container has exited."""
        exited = False

        def answered_or_exited() -> bool:
            nonlocal exited
            client = JsonHttpClient(host, port, timeout_s=1.0)
            with client, contextlib.suppress(TransportError):
                if client.exchange("GET", path).status == 200:
                    return True
            with contextlib.suppress(Exception):
                container.reload()
                exited = container.status in ("exited", "dead")
            return exited

        return wait_until(answered_or_exited, timeout_s, every_s=0.1) is not None and not exited
