"""Implementation manifests: load, validate, fill defaults, expand launch templates."""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from gossipcert.harness.errors import GossipcertError, ManifestError
from gossipcert.harness.judging.verdict import CRDT_TYPES
from gossipcert.harness.profiles import DEFAULT_PROFILE, default_timing, profile_timing
from gossipcert.specs import spec_path

_PACKAGE = Path(__file__).resolve().parent.parent
REFERENCE_MANIFEST = _PACKAGE / "reference_node" / "manifest.yaml"
# Implementations named on the command line instead of by a manifest's path.
NAMED_MANIFESTS = {
    "reference": REFERENCE_MANIFEST,
    "serf": _PACKAGE / "adapters" / "serf" / "manifest.yaml",
    "serf-local": _PACKAGE / "adapters" / "serf" / "manifest-local.yaml",
}

# ``maelstrom:[WORKLOAD:]PATH``: any Maelstrom node binary behind the Maelstrom bridge,
# from this template; the workload decides what the manifest claims.
MAELSTROM_PREFIX = "maelstrom:"
MAELSTROM_TEMPLATE = _PACKAGE / "adapters" / "maelstrom" / "manifest.yaml"
MAELSTROM_WORKLOADS: dict[str, dict[str, Any]] = {
    # Maelstrom's broadcast messages are integers; its nodes keep no payload.
    "broadcast": {"capabilities": ["broadcast", "metrics"], "broadcast_ids": "integer"},
    # A Maelstrom g-counter node keeps one grow-only counter and nothing else.
    "g-counter": {"capabilities": ["crdt", "metrics"], "crdt_types": ["g-counter"],
                  "broadcast_ids": "any"},
}


@dataclass(frozen=True)
class ProcessLaunch:
    command: list[str]
    seed_args: list[str] = field(default_factory=list)
    route_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    ready_timeout_s: float = 20.0
    key_args: list[str] = field(default_factory=list)
    udp_route_args: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DockerLaunch:
    """``launch.docker``: the image and the command run in each node's container."""

    image: str
    command: list[str]
    seed_args: list[str] = field(default_factory=list)
    route_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    ready_timeout_s: float = 30.0
    cwd: str | None = None
    key_args: list[str] = field(default_factory=list)
    udp_route_args: list[str] = field(default_factory=list)


Launch = ProcessLaunch | DockerLaunch


@dataclass(frozen=True)
class Manifest:
    name: str
    path: Path
    capabilities: list[str]
    conflict_policy: str
    routing: str
    timing: dict[str, float]
    process: ProcessLaunch | None
    raw: dict[str, Any]
    docker: DockerLaunch | None = None
    conflict_policies: tuple[str, ...] = ()
    # A run's gossip key (base64), set by :func:`with_run_options` when a scenario asks
    # for encryption and the implementation has it; None: gossip in plaintext.
    gossip_key: str | None = None
    # The timing parameters the manifest itself states (``timing`` adds defaults for the
    # launch placeholders); what a timing profile judges.
    declared_timing: dict[str, float] = field(default_factory=dict)
    # ``integer``: broadcast ids must be decimal strings of integers (Maelstrom nodes).
    broadcast_ids: str = "any"
    # The CRDT types implemented; fewer than all are also listed in ``capabilities`` as
    # ``crdt:<type>`` (see ``harness.judging.verdict.crdt_type_claimed``).
    crdt_types: tuple[str, ...] = CRDT_TYPES

    @property
    def accepts_dial_map(self) -> bool:
        return self.routing == "dial-map"

    def launch_for(self, backend: str) -> Launch:
        """The launch section a backend uses; a missing one is a manifest error."""
        from gossipcert.harness.drivers.backends import BACKENDS

        # docker and swarm both run the launch.docker image
        section = BACKENDS[backend].launch if backend in BACKENDS else "process"
        launch: Launch | None = self.docker if section == "docker" else self.process
        if launch is None:
            raise ManifestError(f"manifest {self.path}: no launch.{section} section "
                                f"(needed by --backend {backend})")
        return launch


def _schema() -> dict[str, Any]:
    with spec_path("manifest.schema.json").open(encoding="utf-8") as f:
        schema: dict[str, Any] = json.load(f)
    return schema


def _where(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    return ".".join(parts) if parts else "(top level)"


def load_manifest(impl: str) -> Manifest:
    """Load a named implementation (``reference``: the shipped reference node; ``serf``:
    HashiCorp Serf through its bridge; ``maelstrom:[WORKLOAD:]PATH``: a Maelstrom node
    binary through the Maelstrom bridge) or the manifest at path ``impl``."""
    if impl.startswith(MAELSTROM_PREFIX):
        return _validated(_maelstrom_data(impl), MAELSTROM_TEMPLATE)
    path = NAMED_MANIFESTS.get(impl, Path(impl))
    if path.is_dir():
        path = path / "manifest.yaml"
    if not path.is_file():
        raise ManifestError(f"manifest {impl}: no such file")
    return _validated(_read_yaml(path), path)


def maelstrom_impl(impl: str, workload: str | None) -> str:
    """The ``--impl`` of a Maelstrom node (``maelstrom:PATH``) run under ``workload``
    (``--workload``; None: the one ``impl`` names, else broadcast)."""
    if not impl.startswith(MAELSTROM_PREFIX):
        raise ManifestError(f"--workload applies to --impl maelstrom:PATH only, not {impl!r}")
    if workload is None:
        return impl
    if workload not in MAELSTROM_WORKLOADS:
        raise ManifestError(f"unknown Maelstrom workload {workload!r} "
                            f"(known: {', '.join(MAELSTROM_WORKLOADS)})")
    _, binary = _maelstrom_parts(impl)
    return f"{MAELSTROM_PREFIX}{workload}:{binary}"


def maelstrom_workload(impl: str) -> str | None:
    """The Maelstrom workload ``impl`` names, or None when it is no Maelstrom node."""
    return _maelstrom_parts(impl)[0] if impl.startswith(MAELSTROM_PREFIX) else None


def _maelstrom_parts(impl: str) -> tuple[str, str]:
    """(workload, binary path) of ``maelstrom:[WORKLOAD:]PATH``."""
    rest = impl.removeprefix(MAELSTROM_PREFIX)
    head, sep, tail = rest.partition(":")
    if sep and head in MAELSTROM_WORKLOADS:
        return head, tail
    return "broadcast", rest


def _maelstrom_data(impl: str) -> dict[str, Any]:
    """The template's manifest with the binary and the workload's claims filled in."""
    workload, binary = _maelstrom_parts(impl)
    if not binary:
        raise ManifestError(f"{impl}: no Maelstrom node binary named (maelstrom:PATH)")
    path = Path(binary).expanduser()
    if not path.exists():
        raise ManifestError(f"Maelstrom node {binary}: no such file")
    if not path.is_file() or not os.access(path, os.X_OK):
        raise ManifestError(f"Maelstrom node {binary}: not an executable file")
    data = _read_yaml(MAELSTROM_TEMPLATE)
    stem = re.sub(r"[^A-Za-z0-9._-]", "-", path.stem).strip("-._") or "node"
    data["name"] = f"maelstrom-{workload}-{stem}"
    data.update(MAELSTROM_WORKLOADS[workload])
    process = data["launch"]["process"]
    process["command"] = [*process["command"], "--workload", workload,
                          "--node", str(path.resolve())]
    return data


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ManifestError(f"manifest {path}: not valid YAML{where}") from None
    if not isinstance(data, dict):
        raise ManifestError(f"manifest {path}: expected a mapping at the top level")
    return data


def _declared_timing(timing: dict[str, Any], path: Path) -> dict[str, Any]:
    """The timing parameters a manifest declares: those it writes, over the shipped
    profile it names (``profile: lan`` for an implementation that runs memberlist's LAN
    configuration as it is), so a profile's numbers are written only in its file."""
    own = {k: v for k, v in timing.items() if k != "profile"}
    if "profile" not in timing:
        return own
    try:
        return {**profile_timing(str(timing["profile"])), **own}
    except GossipcertError as exc:
        raise ManifestError(f"manifest {path}: timing: {exc}") from None


def _validated(data: dict[str, Any], path: Path) -> Manifest:
    """The manifest ``data`` (read from ``path``) states, once the schema passes it."""
    validator = jsonschema.Draft202012Validator(_schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ManifestError(
            f"manifest {path}: {_where(first)}: {first.message}{more}"
        )
    # A manifest that states no timing runs the default profile, as if it named it: an
    # implementation without failure detection (a store) has nothing of its own to declare.
    declared = _declared_timing(data.get("timing") or {"profile": DEFAULT_PROFILE}, path)
    # The default profile (memberlist's LAN) fills the timing parameters left out.
    timing = {**default_timing(), **declared}
    process = None
    if "process" in data["launch"]:
        p = data["launch"]["process"]
        process = ProcessLaunch(
            command=list(p["command"]),
            seed_args=list(p.get("seed_args", [])),
            route_args=list(p.get("route_args", [])),
            env=dict(p.get("env", {})),
            cwd=p.get("cwd"),
            ready_timeout_s=float(p.get("ready_timeout_s", 20.0)),
            key_args=list(p.get("key_args", [])),
            udp_route_args=list(p.get("udp_route_args", [])),
        )
    docker = None
    if "docker" in data["launch"]:
        d = data["launch"]["docker"]
        docker = DockerLaunch(
            image=d["image"],
            command=list(d["command"]),
            seed_args=list(d.get("seed_args", [])),
            route_args=list(d.get("route_args", [])),
            env=dict(d.get("env", {})),
            ready_timeout_s=float(d.get("ready_timeout_s", 30.0)),
            key_args=list(d.get("key_args", [])),
            udp_route_args=list(d.get("udp_route_args", [])),
        )
    _check_routing(data, path)
    policy = str(data.get("conflict_policy", "lww"))
    policies = tuple(data.get("conflict_policies") or [policy])
    if policy not in policies:
        raise ManifestError(f"manifest {path}: conflict_policy {policy!r} is not in "
                            f"conflict_policies {list(policies)}")
    capabilities = [str(c) for c in data["capabilities"]]
    crdt_types = tuple(data.get("crdt_types") or CRDT_TYPES)
    if "crdt_types" in data and "crdt" not in capabilities:
        raise ManifestError(f"manifest {path}: crdt_types without the crdt capability")
    if set(crdt_types) != set(CRDT_TYPES):
        capabilities += [f"crdt:{t}" for t in crdt_types]
    return Manifest(
        name=data["name"],
        path=path.resolve(),
        capabilities=capabilities,
        conflict_policy=policy,
        conflict_policies=policies,
        routing=data.get("routing", "none"),
        timing=timing,
        process=process,
        raw=data,
        docker=docker,
        declared_timing={str(k): float(v) for k, v in declared.items()},
        broadcast_ids=str(data.get("broadcast_ids", "any")),
        crdt_types=crdt_types,
    )


def _check_routing(data: dict[str, Any], path: Path) -> None:
    """A dial map is per transport: ``route_args`` for TCP, ``udp_route_args`` for
    datagrams. Routing datagrams needs ``routing: dial-map`` (the TCP dial map too:
    a node sends what does not fit a datagram over TCP), and each template must name
    the peer and the address it is to use."""
    routing = data.get("routing", "none")
    for section, launch in data["launch"].items():
        for key in ("route_args", "udp_route_args"):
            template = launch.get(key) or []
            if key == "udp_route_args" and template and routing != "dial-map":
                raise ManifestError(f"manifest {path}: launch.{section}.udp_route_args needs "
                                    f"routing: dial-map (a node with a UDP dial map takes a "
                                    f"TCP one too)")
            if key == "udp_route_args" and template and not launch.get("route_args"):
                raise ManifestError(f"manifest {path}: launch.{section}.udp_route_args without "
                                    f"route_args (the TCP dial map)")
            joined = " ".join(template)
            if template and not ("{peer}" in joined and "{addr}" in joined):
                raise ManifestError(f"manifest {path}: launch.{section}.{key} must name "
                                    f"{{peer}} and {{addr}}")


def new_gossip_key() -> str:
    """A fresh random 32-byte gossip key, base64: one per run, shared by every node."""
    return base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def with_run_options(manifest: Manifest, *, conflict_policy: str | None = None,
                     encryption: bool = False) -> Manifest:
    """The manifest a run actually uses: a scenario's conflict policy when the
    implementation supports it (else its declared one, so requirements of the other
    policy are not claimed in that run), and a fresh gossip key when the scenario asks for
    encryption and the implementation has it (capability and ``key_args``)."""
    policy = manifest.conflict_policy
    if conflict_policy is not None and conflict_policy in manifest.conflict_policies:
        policy = conflict_policy
    key = None
    if encryption and "encryption" in manifest.capabilities:
        launches = [x for x in (manifest.process, manifest.docker) if x is not None]
        if any(x.key_args for x in launches):
            key = new_gossip_key()
    return replace(manifest, conflict_policy=policy, gossip_key=key)


def _fmt_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def expand(template: list[str], values: dict[str, str]) -> list[str]:
    """Fill ``{name}`` placeholders; an unknown placeholder is a manifest error."""
    out = []
    for arg in template:
        try:
            out.append(arg.format_map(_Strict(values)))
        except KeyError as exc:
            raise ManifestError(f"launch template {arg!r}: unknown placeholder {exc}") from None
        except (ValueError, IndexError):
            raise ManifestError(f"launch template {arg!r}: malformed placeholder") from None
    return out


class _Strict(dict[str, str]):
    def __missing__(self, key: str) -> str:
        raise KeyError(key)


def process_argv(
    manifest: Manifest,
    *,
    node_id: str,
    gossip: tuple[str, int],
    control: tuple[str, int],
    seeds: list[str],
    routes: dict[str, str],
    data_dir: Path,
) -> list[str]:
    """The argv that launches one node as a local process."""
    return launch_argv(manifest, manifest.launch_for("process"), node_id=node_id,
                       gossip=gossip, control=control, seeds=seeds, routes=routes,
                       data_dir=data_dir)


def launch_argv(
    manifest: Manifest,
    launch: Launch,
    *,
    node_id: str,
    gossip: tuple[str, int],
    control: tuple[str, int],
    seeds: list[str],
    routes: dict[str, str],
    data_dir: Path | str,
    overrides: dict[str, str] | None = None,
    gossip_key: str | None = None,
    udp_routes: dict[str, str] | None = None,
) -> list[str]:
    """The argv of one node from a launch section; ``overrides`` replace placeholder values
    (a container has its own ``{python}`` and ``{data_dir}``); ``gossip_key`` replaces the
    run's key (a node deliberately given a wrong one); ``udp_routes`` is the dial map of
    its datagrams (``udp_route_args``, when the link plane has UDP proxies)."""
    values = {
        "id": node_id,
        "gossip_addr": f"{gossip[0]}:{gossip[1]}",
        "gossip_host": gossip[0],
        "gossip_port": str(gossip[1]),
        "control_addr": f"{control[0]}:{control[1]}",
        "control_host": control[0],
        "control_port": str(control[1]),
        "seeds": ",".join(seeds),
        "data_dir": str(data_dir),
        "python": sys.executable,
        "manifest_dir": str(manifest.path.parent),
        "conflict_policy": manifest.conflict_policy,
        **(overrides or {}),
    }
    for key, value in manifest.timing.items():
        values[f"timing.{key}"] = _fmt_number(value)
    # str.format treats "timing.x" as attribute access; flatten the dots for the lookup.
    flat = {k.replace(".", "__"): v for k, v in values.items()}
    argv = expand([a.replace("{timing.", "{timing__") for a in launch.command], flat)
    for seed in seeds:
        argv += expand(launch.seed_args, {**flat, "seed": seed})
    if manifest.accepts_dial_map:
        for peer, addr in sorted(routes.items()):
            argv += expand(launch.route_args, {**flat, "peer": peer, "addr": addr})
        for peer, addr in sorted((udp_routes or {}).items()):
            argv += expand(launch.udp_route_args, {**flat, "peer": peer, "addr": addr})
    run_key = gossip_key if gossip_key is not None else manifest.gossip_key
    if run_key is not None:
        argv += expand(launch.key_args, {**flat, "key": run_key})
    return argv
