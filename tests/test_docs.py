"""The project's documentation stands on its own: no file points outside the repository,
every relative link of the Markdown docs leads somewhere, the contract page keeps up
with the specs, and the examples import names that exist."""

from __future__ import annotations

import ast
import importlib
import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from gossipcert.harness.judging.verdict import load_catalogue
from gossipcert.specs import spec_path

REPO = Path(__file__).resolve().parents[1]

# Documents that lived beside the repository, never in it; a reader of a clone cannot
# open them, so nothing tracked may send them there. Built here rather than spelled out,
# so this file does not name them itself.
OUTSIDE_DOCUMENTS = tuple(f"{stem}.md" for stem in ("DESIGN", "REFERENCE", "STYLE"))

LINK = re.compile(r"(?<!!)\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
IMAGE = re.compile(r"!\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEFINITION = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$",
                                  re.MULTILINE)
FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)


def tracked_files() -> list[Path]:
    """Every file git tracks in this checkout (the test needs a git checkout)."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True,
                             check=True, timeout=60).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"not a git checkout: {exc}")
    return [REPO / name for name in out.decode().split("\0") if name]


def markdown_docs() -> list[Path]:
    """README.md, BENCHMARKS.md and every Markdown file under docs/."""
    return [REPO / "README.md", REPO / "BENCHMARKS.md", *sorted((REPO / "docs").rglob("*.md"))]


def is_module(name: str) -> bool:
    """Whether ``name`` imports as a module (``from package import submodule``)."""
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def prose(text: str) -> str:
    """Markdown without code: links inside fenced blocks or backticks are not links."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def github_anchor(heading: str) -> str:
    """The fragment GitHub gives a heading: lower case, punctuation dropped, spaces to
    hyphens (links and emphasis reduced to their text first)."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"[`*_]", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading fragment of a Markdown file, with GitHub's -1, -2 for repeats."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    for heading in HEADING.findall(FENCE.sub("", path.read_text(encoding="utf-8"))):
        slug = github_anchor(heading)
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def relative_targets(path: Path) -> list[str]:
    """Every link and image target of a Markdown file that points inside the repository."""
    text = prose(path.read_text(encoding="utf-8"))
    targets = [*LINK.findall(text), *IMAGE.findall(text), *REFERENCE_DEFINITION.findall(text)]
    return [t for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:", t, re.IGNORECASE)]


def test_no_tracked_file_points_outside_the_repository() -> None:
    offenders = []
    for path in tracked_files():
        if not path.is_file():
            continue
        data = path.read_bytes()
        offenders += [f"{path.relative_to(REPO)}: {name}" for name in OUTSIDE_DOCUMENTS
                      if name.encode() in data]
    assert offenders == [], "files that name documents outside the repository"


def test_the_docs_exist_and_readme_links_them() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for name in ("architecture.md", "contract.md", "protocol-notes.md"):
        assert (REPO / "docs" / name).is_file(), name
        assert f"docs/{name}" in readme, f"README.md does not link docs/{name}"


@pytest.mark.parametrize("doc", markdown_docs(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_markdown_link_resolves(doc: Path) -> None:
    broken = []
    for target in relative_targets(doc):
        file_part, _, fragment = target.partition("#")
        destination = (doc.parent / file_part).resolve() if file_part else doc
        if not destination.exists():
            broken.append(f"{target}: no such file")
        elif fragment and destination.suffix == ".md" and fragment not in anchors(destination):
            broken.append(f"{target}: no heading with that anchor")
    assert broken == [], f"{doc.relative_to(REPO)} has broken links"


def test_the_contract_page_covers_every_path_and_requirement() -> None:
    """docs/contract.md explains the specs; a path or requirement added there shows up
    here until the page says where it belongs."""
    page = (REPO / "docs" / "contract.md").read_text(encoding="utf-8")
    api = yaml.safe_load(spec_path("control-api.yaml").read_text(encoding="utf-8"))
    missing = [path for path in api["paths"] if path not in page]
    assert missing == [], "control API paths docs/contract.md does not mention"
    rows = {line.split("|")[1].strip().strip("`"): line
            for line in page.splitlines() if line.startswith("| `")}
    misplaced = [f"{r.id} ({r.capability})" for r in load_catalogue()
                 if r.id not in rows.get(r.capability, "")]
    assert misplaced == [], "requirements missing from their capability's row"


@pytest.mark.parametrize("doc", markdown_docs(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_name_a_python_example_imports_exists(doc: Path) -> None:
    """An example that imports a moved or renamed name would fail its reader first."""
    missing = []
    for block in PYTHON_BLOCK.findall(doc.read_text(encoding="utf-8")):
        for node in ast.walk(ast.parse(block)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("gossipcert"):
                module = importlib.import_module(node.module or "")
                missing += [f"{node.module}.{alias.name}" for alias in node.names
                            if not hasattr(module, alias.name)
                            and not is_module(f"{node.module}.{alias.name}")]
    assert missing == [], f"{doc.relative_to(REPO)} imports names that do not exist"


SOURCE_PATH = re.compile(
    r"`((?:harness|chaos|reference_node|reports|adapters|specs|benchmarks|scripts|tests)"
    r"/[\w./-]*\.(?:py|yaml|json|sh|md))`")


@pytest.mark.parametrize("doc", markdown_docs(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_source_file_a_doc_names_exists(doc: Path) -> None:
    """A file named in backticks (``harness/run/pipeline.py``) is one a reader can open:
    a restructuring that moves it moves the docs with it."""
    text = doc.read_text(encoding="utf-8")
    missing = sorted({p for p in SOURCE_PATH.findall(text)
                      if "<" not in p and "*" not in p and not (REPO / p).exists()})
    assert missing == [], f"{doc.relative_to(REPO)} names files that do not exist: {missing}"


TABLE_START = "<!-- capability table: generated from the specs by `python tests/test_docs.py` -->"
TABLE_END = "<!-- end of capability table -->"
HTTP_METHODS = ("get", "put", "post", "delete", "patch")


def capability_table() -> str:
    """docs/integrate.md's table of capability -> endpoints -> requirements, built from
    the manifest schema (the capabilities), the control API (each operation's
    ``x-capability``) and the catalogue (each requirement's capability, level, policy)."""
    manifest = json.loads(spec_path("manifest.schema.json").read_text(encoding="utf-8"))
    names = manifest["properties"]["capabilities"]["items"]["enum"]
    api = yaml.safe_load(spec_path("control-api.yaml").read_text(encoding="utf-8"))
    endpoints: dict[str, list[str]] = {name: [] for name in names}
    for path, item in api["paths"].items():
        for method in HTTP_METHODS:
            owner = (item.get(method) or {}).get("x-capability")
            if owner is not None:
                endpoints[owner].append(f"`{method.upper()} {path}`")
    catalogue = load_catalogue()

    def ids(name: str, level: str) -> str:
        found = [f"`{r.id}`" + (f" ({r.policy})" if r.policy else "")
                 for r in catalogue if r.capability == name and r.level == level]
        return ", ".join(found) or "none"

    rows = [f"| `{name}` | {', '.join(endpoints[name]) or 'none of its own'} "
            f"| {ids(name, 'MUST')} | {ids(name, 'SHOULD')} |" for name in names]
    head = ["| capability | endpoints (501 while not claimed) | MUST requirements "
            "| SHOULD requirements |", "|---|---|---|---|"]
    return "\n".join(head + rows)


def test_the_integration_guide_capability_table_matches_the_specs() -> None:
    """A capability, endpoint or requirement added to the specs shows up here until the
    guide's table is generated again (``python tests/test_docs.py`` prints it)."""
    page = (REPO / "docs" / "integrate.md").read_text(encoding="utf-8")
    assert TABLE_START in page and TABLE_END in page, "docs/integrate.md lost its table markers"
    table = page.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0].strip()
    assert table == capability_table(), "regenerate it: python tests/test_docs.py"


def test_every_control_api_operation_names_its_capability() -> None:
    """The table above rests on ``x-capability``: every operation but ``GET /v1/node``
    names a capability the manifest schema knows."""
    manifest = json.loads(spec_path("manifest.schema.json").read_text(encoding="utf-8"))
    known = set(manifest["properties"]["capabilities"]["items"]["enum"])
    api = yaml.safe_load(spec_path("control-api.yaml").read_text(encoding="utf-8"))
    wrong = [f"{method.upper()} {path}" for path, item in api["paths"].items()
             for method in HTTP_METHODS if method in item
             and (item[method].get("x-capability") in known) == (path == "/v1/node")]
    assert wrong == [], "operations without a known x-capability (or GET /v1/node with one)"


if __name__ == "__main__":
    print(capability_table())
