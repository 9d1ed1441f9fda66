"""The layers of the package, read from the source: who may import whom.

``reference_node`` stands alone (an implementation under test knows nothing of the
harness); ``chaos`` (fault planes) knows nothing of ``harness``; ``harness`` does not
know the report formats (``reports`` are plug-ins found through entry points); and no
two modules import each other, directly or round a circle. Every import counts: at the
top, inside a function, under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("harness", "chaos", "reports", "specs", "reference_node", "adapters")

# (importing package, imported package): edges that must not exist.
FORBIDDEN = {
    ("harness", "reports"): "the harness finds report writers through entry points",
    ("chaos", "harness"): "the fault planes are a layer below the harness",
    ("reference_node", "harness"): "the reference node is an implementation like any other",
    ("reference_node", "chaos"): "the reference node is an implementation like any other",
    ("reference_node", "reports"): "the reference node is an implementation like any other",
    ("adapters", "harness"): "a bridge is a process of the system under test, not of the harness",
    ("adapters", "chaos"): "a bridge is a process of the system under test, not of the harness",
    ("adapters", "reports"): "a bridge is a process of the system under test, not of the harness",
    ("adapters", "reference_node"): "a bridge reports what its system said, nothing of ours",
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["gossipcert", *parts])


MODULES = {
    module_name(path): path
    for package in PACKAGES
    for path in sorted((REPO / package).rglob("*.py"))
}


def _owner(name: str) -> str | None:
    """The module of ours that ``name`` (a module, or a name inside one) lives in."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> Iterator[tuple[str, int]]:
    """(module of ours it imports, line) for every import statement in ``module``."""
    path = MODULES[module]
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            # ``from package import submodule`` imports the submodule, not the package.
            targets = [
                f"{source}.{alias.name}" if f"{source}.{alias.name}" in MODULES else source
                for alias in node.names
            ]
        for target in targets:
            owner = _owner(target)
            if owner is not None and owner != module:
                yield owner, node.lineno


GRAPH = {module: sorted(set(imports_of(module))) for module in MODULES}


def _package(module: str) -> str:
    return module.split(".")[1]


def _where(module: str, line: int) -> str:
    return f"{MODULES[module].relative_to(REPO)}:{line}"


def test_the_graph_sees_every_kind_of_import() -> None:
    assert "gossipcert.harness.commands.cli" in MODULES and "gossipcert.chaos.packet" in MODULES
    imported = {target for target, _ in GRAPH["gossipcert.harness.commands.cli"]}
    assert "gossipcert.harness.errors" in imported  # at the top
    assert "gossipcert.harness.run.certify" in imported  # inside a function
    # ``from gossipcert.specs import gossipcert_version`` is the package, not a submodule.
    assert "gossipcert.specs" in {t for t, _ in GRAPH["gossipcert.harness.run.report"]}


@pytest.mark.parametrize(("importer", "imported"), sorted(FORBIDDEN))
def test_no_import_across_a_forbidden_layer(importer: str, imported: str) -> None:
    edges = [
        f"{_where(module, line)} imports {target}"
        for module, targets in GRAPH.items()
        if _package(module) == importer
        for target, line in targets
        if _package(target) == imported
    ]
    assert not edges, f"{importer} must not import {imported} " \
        f"({FORBIDDEN[(importer, imported)]}):\n" + "\n".join(edges)


def _cycles() -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        order[module] = low[module] = len(order)
        stack.append(module)
        on_stack.add(module)
        for target, _ in GRAPH[module]:
            if target not in order:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], order[target])
        if low[module] == order[module]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(GRAPH):
        if module not in order:
            visit(module)
    return found


def test_no_import_cycle() -> None:
    described = []
    for component in _cycles():
        members = set(component)
        edges = [
            f"  {_where(module, line)} imports {target}"
            for module in component
            for target, line in GRAPH[module]
            if target in members
        ]
        described.append(" <-> ".join(component) + "\n" + "\n".join(edges))
    assert not described, "import cycles:\n" + "\n".join(described)


# Inside the harness: a run goes commands -> run -> workloads -> drivers | judging, and
# nothing imports a layer above its own. The modules at the top of the harness (errors,
# history, manifest, profiles) are shared by every layer and import none of the upper ones.
HARNESS_LAYERS = ("commands", "run", "workloads", "drivers", "judging")
# Same-level layers that must not know each other: nodes and fault planes on one side,
# verdicts on the other, so a history judged from disk needs no driver.
APART = {("drivers", "judging"), ("judging", "drivers")}


def _harness_layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[1] != "harness":
        return None
    if len(parts) > 2 and parts[2] in HARNESS_LAYERS:
        return parts[2]
    return "top"


def _layer_edge_allowed(importer: str, imported: str) -> bool:
    if importer == imported or imported == "top":
        return True
    if importer == "top":
        return imported in ("judging", "drivers")  # the catalogue's bounds, the backend table
    if (importer, imported) in APART:
        return False
    return HARNESS_LAYERS.index(importer) < HARNESS_LAYERS.index(imported)


def test_harness_layers_import_only_downwards() -> None:
    edges = [
        f"{_where(module, line)} ({_harness_layer(module)}) imports {target} "
        f"({_harness_layer(target)})"
        for module, targets in GRAPH.items()
        if _harness_layer(module) is not None and not module.endswith("__main__")
        for target, line in targets
        if _harness_layer(target) is not None
        and not _layer_edge_allowed(str(_harness_layer(module)), str(_harness_layer(target)))
    ]
    assert not edges, ("harness layers: " + " -> ".join(HARNESS_LAYERS)
                       + " (drivers and judging apart):\n" + "\n".join(edges))


def test_no_harness_folder_holds_more_than_fifteen_modules() -> None:
    folders: dict[Path, int] = {}
    for path in MODULES.values():
        if path.is_relative_to(REPO / "harness") and path.name != "__init__.py":
            folders[path.parent] = folders.get(path.parent, 0) + 1
    crowded = {str(f.relative_to(REPO)): n for f, n in folders.items() if n > 15}
    assert not crowded, f"folders over 15 modules: {crowded}"
