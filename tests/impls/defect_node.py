"""The reference node with one seeded defect, chosen by name (see README.md).

``--defect NAME`` picks ``NAME/defect.py`` beside this file, so a defect is its patch and
one line of its manifest rather than a copy of a launcher. The patch module may have:

* ``installed(**flags)``: a context manager that patches the reference node while it
  runs; each ``--defect-flag FLAG`` (repeatable) passes ``FLAG=True``;
* ``node_args(argv)``: the node's arguments rewritten before it parses them;
* ``SERVES_UNDECLARED = True``: keep serving the capabilities the manifest leaves out.

Every other argument goes to the reference node unchanged. The reference node serves
every capability; a defect whose manifest declares fewer answers 501 to the rest, as the
contract wants, so only its seeded defect sets it apart.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml
from aiohttp import web
from gossipcert.reference_node.__main__ import main

DEFECTS = Path(__file__).resolve().parent
sys.path.insert(0, str(DEFECTS))

from control_patch import Middleware, control_patched  # noqa: E402

# Each control path and the capabilities that serve it (docs/contract.md).
_SERVED_BY = (
    ("/v1/members", ("membership", "failure-detection", "leave")),
    ("/v1/join", ("membership",)),
    ("/v1/leave", ("leave",)),
    ("/v1/broadcast", ("broadcast",)),
    ("/v1/kv", ("kv",)),
    ("/v1/crdt/", ("crdt",)),
    ("/v1/events", ("events",)),
    ("/v1/metrics", ("metrics",)),
    ("/v1/keyring", ("encryption",)),
)


def refusing_undeclared(declared: set[str]) -> Middleware:
    """A middleware answering 501 to the paths of capabilities not in ``declared``."""

    @web.middleware
    async def refuse(request: web.Request, handler: Any) -> web.StreamResponse:
        for prefix, capabilities in _SERVED_BY:
            if request.path.startswith(prefix) and not declared & set(capabilities):
                body = {"error": "not_implemented",
                        "message": f"{request.path}: capability not declared"}
                return web.json_response(body, status=501)
        response: web.StreamResponse = await handler(request)
        return response

    return refuse


def _declared(name: str) -> set[str] | None:
    """The capabilities the defect's manifest declares (None: it has none)."""
    path = DEFECTS / name / "manifest.yaml"
    if not path.is_file():
        return None
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {str(c).partition(":")[0] for c in data.get("capabilities", [])}


def load_defect(name: str) -> ModuleType:
    """The patch module of the defect ``name`` (``NAME/defect.py``)."""
    path = DEFECTS / name / "defect.py"
    spec = importlib.util.spec_from_file_location(f"defect_{name}", path)
    if not path.is_file() or spec is None or spec.loader is None:
        raise SystemExit(f"no seeded defect {name!r}: {path} does not exist")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(argv: list[str]) -> int:
    """Run the reference node with the defect ``argv`` names."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--defect", required=True)
    parser.add_argument("--defect-flag", action="append", default=[])
    ours, node_argv = parser.parse_known_args(argv)
    defect = load_defect(ours.defect)
    rewrite = getattr(defect, "node_args", None)
    if rewrite is not None:
        node_argv = rewrite(node_argv)
    patch = getattr(defect, "installed", None)
    flags = {flag: True for flag in ours.defect_flag}
    declared = _declared(ours.defect)
    honest = (control_patched(refusing_undeclared(declared))
              if declared is not None and not getattr(defect, "SERVES_UNDECLARED", False)
              else contextlib.nullcontext())
    with honest, patch(**flags) if patch is not None else contextlib.nullcontext():
        return main(node_argv)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
