"""Implementation manifests: load, validate, fill defaults, expand launch templates."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from harness.errors import ManifestError
from specs import spec_path

REFERENCE_MANIFEST = Path(__file__).resolve().parent.parent / "reference_node" / "manifest.yaml"

# memberlist's LAN profile (REFERENCE.md) fills timing parameters a manifest leaves out.
TIMING_DEFAULTS: dict[str, float] = {
    "probe_interval_ms": 1000,
    "probe_timeout_ms": 500,
    "indirect_checks": 3,
    "suspicion_mult": 4,
    "suspicion_max_timeout_mult": 6,
    "gossip_interval_ms": 200,
    "fanout": 3,
    "retransmit_mult": 4,
    "push_pull_interval_ms": 30000,
}


@dataclass(frozen=True)
class ProcessLaunch:
    command: list[str]
    seed_args: list[str] = field(default_factory=list)
    route_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    ready_timeout_s: float = 20.0


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

    @property
    def accepts_dial_map(self) -> bool:
        return self.routing == "dial-map"


def _schema() -> dict[str, Any]:
    with spec_path("manifest.schema.json").open(encoding="utf-8") as f:
        schema: dict[str, Any] = json.load(f)
    return schema


def _where(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    return ".".join(parts) if parts else "(top level)"


def load_manifest(impl: str) -> Manifest:
    """Load ``reference`` (the shipped reference node) or the manifest at path ``impl``."""
    path = REFERENCE_MANIFEST if impl == "reference" else Path(impl)
    if path.is_dir():
        path = path / "manifest.yaml"
    if not path.is_file():
        raise ManifestError(f"manifest {impl}: no such file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ManifestError(f"manifest {path}: not valid YAML{where}") from None
    if not isinstance(data, dict):
        raise ManifestError(f"manifest {path}: expected a mapping at the top level")
    validator = jsonschema.Draft202012Validator(_schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ManifestError(
            f"manifest {path}: {_where(first)}: {first.message}{more}"
        )
    timing = {**TIMING_DEFAULTS, **data["timing"]}
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
        )
    return Manifest(
        name=data["name"],
        path=path.resolve(),
        capabilities=list(data["capabilities"]),
        conflict_policy=data.get("conflict_policy", "lww"),
        routing=data.get("routing", "none"),
        timing=timing,
        process=process,
        raw=data,
    )


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
    if manifest.process is None:
        raise ManifestError(f"manifest {manifest.path}: no launch.process section")
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
    }
    for key, value in manifest.timing.items():
        values[f"timing.{key}"] = _fmt_number(value)
    # str.format treats "timing.x" as attribute access; flatten the dots for the lookup.
    flat = {k.replace(".", "__"): v for k, v in values.items()}
    argv = expand([a.replace("{timing.", "{timing__") for a in manifest.process.command], flat)
    for seed in seeds:
        argv += expand(manifest.process.seed_args, {**flat, "seed": seed})
    if manifest.accepts_dial_map:
        for peer, addr in sorted(routes.items()):
            argv += expand(manifest.process.route_args, {**flat, "peer": peer, "addr": addr})
    return argv
