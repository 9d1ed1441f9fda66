"""The contract and the requirement catalogue, shipped as data files beside this module."""

import os
from functools import cache
from pathlib import Path

SPECS_DIR = Path(__file__).resolve().parent
DISTRIBUTION = "gossipcert"


def spec_path(name: str) -> Path:
    """Path of a shipped spec file, e.g. ``spec_path("requirements.yaml")``."""
    return SPECS_DIR / name


@cache
def gossipcert_version() -> str:
    """The version of the installed distribution: pyproject.toml is the one place it is
    written, so the CLI, the reports and the reference node all ask here. Sources run
    without an install (the reference image puts them on PYTHONPATH) read the version the
    image was built with from ``GOSSIPCERT_VERSION``, else say so instead of guessing.
    importlib.metadata is imported here, when asked: it loads ``socket``, which
    the reference node's sans-IO simulator must not import."""
    from importlib import metadata

    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return os.environ.get("GOSSIPCERT_VERSION") or "0+unknown"
