"""The reference node with one seeded defect, chosen by name (see README.md).

``--defect NAME`` picks ``NAME/defect.py`` beside this file, so a defect is its patch and
one line of its manifest rather than a copy of a launcher. The patch module may have:

* ``installed(**flags)``: a context manager that patches the reference node while it
  runs; each ``--defect-flag FLAG`` (repeatable) passes ``FLAG=True``;
* ``node_args(argv)``: the node's arguments rewritten before it parses them.

Every other argument goes to the reference node unchanged.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from gossipcert.reference_node.__main__ import main

DEFECTS = Path(__file__).resolve().parent


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
    with patch(**flags) if patch is not None else contextlib.nullcontext():
        return main(node_argv)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
