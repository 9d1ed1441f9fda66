"""The contract and the requirement catalogue, shipped as data files beside this module."""

from pathlib import Path

SPECS_DIR = Path(__file__).resolve().parent


def spec_path(name: str) -> Path:
    """Path of a shipped spec file, e.g. ``spec_path("requirements.yaml")``."""
    return SPECS_DIR / name
