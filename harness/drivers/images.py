"""The images the Docker backend runs, built offline and cached by a hash of their inputs.

No registry can be pulled from, so the base image is made from scratch: ``debootstrap
--variant=minbase`` (mirror and suite read from the host's apt sources, never stored in
the repo) plus python3, iptables and iproute2, imported with ``docker import``. The
reference image adds the project's node and link-plane code and their Python
dependencies (installed on the host as wheels for the image's Python) with ``docker
build``. The harness image installs the package itself, as a wheel built on the host
from this checkout, with its runtime dependencies. Each image's tag is the hash of its
inputs: it is rebuilt only when they change.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from gossipcert.harness.errors import EXIT_UNAVAILABLE, GossipcertError
from gossipcert.specs import gossipcert_version

IMAGE_LABEL = "gossipcert.image"
HASH_LABEL = "gossipcert.hash"
BASE_REPO = "gossipcert-base"
REFERENCE_REPO = "gossipcert-reference"
# The harness itself (``gossipcert`` as the entrypoint): certify on the process backend
# inside a container, for machines or CI runners with Docker and nothing else.
HARNESS_REPO = "gossipcert-harness"
# An image registry (Debian's docker-registry, copied from the host) that the swarm
# backend runs as a service, so images reach every swarm node without an outside registry.
REGISTRY_REPO = "gossipcert-registry"
REGISTRY_BINARY = Path("/usr/bin/docker-registry")

ROOT = Path(__file__).resolve().parents[2]
DOCKER_DIR = Path(__file__).resolve().parent / "docker"
BASE_PACKAGES = ("python3", "iptables", "iproute2", "serf")
# The Python packages the node, the link-plane server, the fault agent and the bridges
# import (aiohttp serves each one's HTTP API), at the host's versions (the image build runs
# the node's, both servers' and the serf bridge's ``--help``, so a missing one fails it).
RUNTIME_DEPS = ("aiohttp", "cryptography", "pyyaml", "msgpack")
# Sources copied into the reference image (only what runs inside a container).
IMAGE_PACKAGES = ("reference_node", "chaos", "specs", "adapters")

Progress = Callable[[str], None]


class DockerSdkMissing(GossipcertError):
    """The Docker SDK for Python (the extra ``docker``) is not installed: nothing that
    talks to an engine can run, as when no engine answers."""

    exit_code = EXIT_UNAVAILABLE


class ImageError(GossipcertError):
    """An image could not be built or found."""


@dataclass(frozen=True)
class AptSource:
    mirror: str
    suite: str


def _sources_files() -> list[Path]:
    files = [Path("/etc/apt/sources.list")]
    d = Path("/etc/apt/sources.list.d")
    if d.is_dir():
        files += sorted(d.glob("*.list")) + sorted(d.glob("*.sources"))
    return [f for f in files if f.is_file()]


def parse_apt_sources(texts: Iterable[tuple[str, str]]) -> AptSource:
    """The main Debian mirror and release from apt sources (one-line or deb822 format).

    ``texts`` are ``(file name, content)`` pairs; -updates, -security and -backports
    suites and other components' repositories are skipped.
    """
    candidates: list[AptSource] = []
    for name, text in texts:
        if name.endswith(".sources"):
            for stanza in re.split(r"\n\s*\n", text):
                fields: dict[str, str] = {}
                for line in stanza.splitlines():
                    if line.lstrip().startswith("#") or ":" not in line:
                        continue
                    key, value = line.split(":", 1)
                    fields[key.strip().lower()] = value.strip()
                if "deb" not in fields.get("types", "").split():
                    continue
                if fields.get("enabled", "yes").lower() == "no":
                    continue
                for uri in fields.get("uris", "").split():
                    for suite in fields.get("suites", "").split():
                        candidates.append(AptSource(uri, suite))
        else:
            for line in text.splitlines():
                parts = line.split("#", 1)[0].split()
                if len(parts) < 3 or parts[0] != "deb":
                    continue
                rest = [p for p in parts[1:] if not p.startswith("[")]
                if len(rest) >= 2:
                    candidates.append(AptSource(rest[0], rest[1]))
    for source in candidates:
        if re.search(r"-(updates|security|backports|proposed)$", source.suite):
            continue
        if "security" in source.mirror or "/" in source.suite:
            continue
        return source
    raise ImageError("no Debian mirror found in the host's apt sources "
                     "(/etc/apt/sources.list, /etc/apt/sources.list.d/)")


def host_apt_source() -> AptSource:
    return parse_apt_sources(
        (f.name, f.read_text(encoding="utf-8", errors="replace")) for f in _sources_files()
    )


def _digest(parts: Iterable[bytes]) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()[:16]


def _tree_files(root: Path) -> list[Path]:
    return sorted(
        p for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo")
    )


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def base_inputs(source: AptSource) -> dict[str, Any]:
    """What the base image is made of; the mirror is where, not what, so it is left out."""
    recipe = DOCKER_DIR / "base-finish.sh"
    return {
        "suite": source.suite,
        "arch": _arch(),
        "variant": "minbase",
        "packages": list(BASE_PACKAGES),
        "finish": recipe.read_text(encoding="utf-8"),
    }


def base_tag(source: AptSource | None = None) -> str:
    inputs = base_inputs(source or host_apt_source())
    return f"{BASE_REPO}:{_digest([json.dumps(inputs, sort_keys=True).encode()])}"


def _deps_pins() -> list[str]:
    pins = []
    for name in RUNTIME_DEPS:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pins.append(name)
    return pins


def reference_tag(base: str) -> str:
    dockerfile = DOCKER_DIR / "reference.Dockerfile"
    parts = [base.encode(), dockerfile.read_bytes(), json.dumps(_deps_pins()).encode(),
             gossipcert_version().encode()]
    for package in IMAGE_PACKAGES:
        for path in _tree_files(ROOT / package):
            parts.append(str(path.relative_to(ROOT)).encode())
            parts.append(path.read_bytes())
    return f"{REFERENCE_REPO}:{_digest(parts)}"


def docker_timeout_s() -> float:
    """How long one Docker API call may take: ``GOSSIPCERT_DOCKER_TIMEOUT_S``, default
    120 s (an engine that takes longer has stopped answering: the run ends as a harness
    error)."""
    raw = os.environ.get("GOSSIPCERT_DOCKER_TIMEOUT_S", "120")
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if value <= 0:
        raise GossipcertError(f"GOSSIPCERT_DOCKER_TIMEOUT_S must be a positive number of "
                              f"seconds, not {raw!r}")
    return value


def docker_client() -> Any:
    """A client of the local engine, or one clear line on how to get one."""
    try:
        import docker
    except ImportError:  # the Docker SDK is an extra: the process backend needs none
        raise DockerSdkMissing("the Docker SDK for Python is not installed; "
                               "pip install 'gossipcert[docker]'") from None
    timeout_s = docker_timeout_s()
    try:
        client = docker.from_env(timeout=timeout_s)
        client.ping()
    except Exception as exc:
        raise GossipcertError(
            f"no Docker engine answers ({type(exc).__name__}); install docker.io and start "
            "dockerd (sh scripts/ci-setup.sh does both)"
        ) from None
    return client


def image_exists(client: Any, tag: str) -> bool:
    import docker.errors

    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        return False
    return True


def _run(argv: list[str], what: str, **kw: Any) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, **kw)
    if result.returncode != 0:
        tail = " | ".join((result.stderr or result.stdout).strip().splitlines()[-4:])
        raise ImageError(f"{what} failed (exit {result.returncode}): {tail}")


def build_base(client: Any, progress: Progress, source: AptSource | None = None) -> str:
    """Build (or find cached) the debootstrapped base image; returns its tag."""
    source = source or host_apt_source()
    tag = base_tag(source)
    if image_exists(client, tag):
        progress(f"image {tag}: cached")
        return tag
    if shutil.which("debootstrap") is None:
        raise ImageError("building the base image needs debootstrap "
                         "(apt-get install debootstrap; sh scripts/ci-setup.sh does)")
    if os.geteuid() != 0:
        raise ImageError("building the base image needs root (debootstrap makes a root fs)")
    started = time.monotonic()
    progress(f"image {tag}: debootstrap {source.suite} minbase + "
             f"{', '.join(BASE_PACKAGES)} (about a minute)")
    work = Path(tempfile.mkdtemp(prefix="gossipcert-base-", dir="/var/tmp"))
    try:
        rootfs = work / "rootfs"
        _run(["debootstrap", "--variant=minbase", f"--arch={_arch()}",
              f"--include={','.join(BASE_PACKAGES)}", source.suite, str(rootfs),
              source.mirror], "debootstrap", timeout=1800)
        progress(f"image {tag}: root fs ready after {time.monotonic() - started:.0f} s; "
                 "trimming and importing")
        _run(["sh", str(DOCKER_DIR / "base-finish.sh"), str(rootfs)], "trimming the root fs")
        tarball = work / "rootfs.tar"
        _run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(tarball), "."],
             "packing the root fs")
        repo, _, hash_ = tag.partition(":")
        client.api.import_image_from_file(
            str(tarball), repository=repo, tag=hash_,
            changes=[f"LABEL {IMAGE_LABEL}=base {HASH_LABEL}={hash_}",
                     'CMD ["/bin/bash"]'],
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if not image_exists(client, tag):
        raise ImageError(f"docker import did not produce {tag}")
    size = client.images.get(tag).attrs.get("Size", 0) / 1e6
    progress(f"image {tag}: built in {time.monotonic() - started:.0f} s ({size:.0f} MB)")
    return tag


def _deps_cache() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "gossipcert" / "image-deps" / _digest([json.dumps(_deps_pins()).encode()])


def _install_deps(target: Path) -> None:
    """Wheels of the runtime deps for the image's CPython 3.11 on glibc (bookworm).

    Installed once per set of pinned versions into a host cache, then copied.
    """
    cache = _deps_cache()
    if not cache.is_dir():
        partial = cache.with_name(cache.name + f".partial-{os.getpid()}")
        shutil.rmtree(partial, ignore_errors=True)
        _pip_install_deps(partial)
        with contextlib.suppress(OSError):
            partial.rename(cache)
        shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(cache, target)


def _pip_install_deps(target: Path, requirements: list[str] | None = None) -> None:
    """``pip install --target`` of wheels for the image's CPython 3.11 on glibc (the
    reference image's runtime deps unless ``requirements`` names others)."""
    machine = platform.machine()
    platforms = [f"manylinux2014_{machine}", f"manylinux_2_17_{machine}",
                 f"manylinux_2_28_{machine}", f"manylinux_2_34_{machine}"]
    argv = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
            "--no-compile", "--target", str(target), "--only-binary=:all:",
            "--implementation", "cp", "--python-version", "3.11", "--abi", "cp311"]
    for p in platforms:
        argv += ["--platform", p]
    reqs = _deps_pins() if requirements is None else requirements
    _run(argv + reqs, "installing the image's Python dependencies", timeout=900)


def _build(client: Any, ctx: Path, tag: str, base: str, kind: str) -> None:
    """``docker build`` of ``ctx`` on ``base`` as ``tag`` (``repo:hash``), labelled as an
    image of ours of ``kind``; :class:`ImageError` with the builder's errors."""
    hash_ = tag.partition(":")[2]
    errors = []
    for chunk in client.api.build(path=str(ctx), tag=tag, rm=True, forcerm=True,
                                  decode=True,
                                  buildargs={"BASE": base, "VERSION": gossipcert_version()},
                                  labels={IMAGE_LABEL: kind, HASH_LABEL: hash_}):
        if "error" in chunk:
            errors.append(str(chunk["error"]).strip())
    if errors or not image_exists(client, tag):
        raise ImageError(f"docker build of {tag} failed: {' | '.join(errors) or 'no image'}")


def build_reference(client: Any, progress: Progress) -> str:
    """Build (or find cached) the reference node image; returns its tag."""
    base = build_base(client, progress)
    tag = reference_tag(base)
    if image_exists(client, tag):
        progress(f"image {tag}: cached")
        return tag
    started = time.monotonic()
    progress(f"image {tag}: building on {base}")
    with tempfile.TemporaryDirectory(prefix="gossipcert-ctx-") as tmp:
        ctx = Path(tmp)
        shutil.copy(DOCKER_DIR / "reference.Dockerfile", ctx / "Dockerfile")
        _install_deps(ctx / "deps")
        for package in IMAGE_PACKAGES:
            for path in _tree_files(ROOT / package):
                dest = ctx / "src" / "gossipcert" / path.relative_to(ROOT)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, dest)
        _build(client, ctx, tag, base, "reference")
    size = client.images.get(tag).attrs.get("Size", 0) / 1e6
    progress(f"image {tag}: built in {time.monotonic() - started:.0f} s ({size:.0f} MB)")
    _drop_superseded(client, "reference", keep=tag)
    _drop_superseded(client, "base", keep=base)
    return tag


def _drop_superseded(client: Any, kind: str, keep: str) -> None:
    """Remove older builds of one project image that no container uses (disk stays small)."""
    for image in client.images.list(filters={"label": f"{IMAGE_LABEL}={kind}"}):
        if keep in image.tags:
            continue
        with contextlib.suppress(Exception):
            client.images.remove(image.id)  # refused while a container uses it


# The harness image: the package as a wheel built from this checkout, its runtime
# dependencies (at the host's versions where the host has them) and the entrypoint.
HARNESS_DOCKERFILE = DOCKER_DIR / "harness.Dockerfile"
HARNESS_ENTRY = DOCKER_DIR / "harness-gossipcert.sh"


def _project() -> dict[str, Any]:
    pyproject = ROOT / "pyproject.toml"
    if not pyproject.is_file():
        raise ImageError(f"building the harness image needs a source checkout of gossipcert "
                         f"(no {pyproject}); run it from a clone of the repository")
    with pyproject.open("rb") as f:
        return tomllib.load(f)


def _wheel_sources() -> list[Path]:
    """The files the package's wheel is built from: pyproject.toml, the README (its long
    description) and every folder the package maps to."""
    project = _project()
    files = [ROOT / "pyproject.toml"]
    readme = project.get("project", {}).get("readme")
    if isinstance(readme, str):
        files.append(ROOT / readme)
    dirs = sorted(set(project.get("tool", {}).get("setuptools", {})
                      .get("package-dir", {}).values()))
    for d in dirs:
        files += _tree_files(ROOT / d)
    return files


def harness_deps() -> list[str]:
    """The package's runtime dependencies, pinned to the host's versions where the host
    has them installed (the image then runs what the host's tests ran)."""
    pins = []
    for req in _project().get("project", {}).get("dependencies", []):
        name = re.split(r"[\s<>=!~;\[(]", req, maxsplit=1)[0]
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pins.append(req)
    return pins


def harness_tag(base: str) -> str:
    parts = [base.encode(), HARNESS_DOCKERFILE.read_bytes(), HARNESS_ENTRY.read_bytes(),
             json.dumps(harness_deps()).encode()]
    for path in _wheel_sources():
        parts.append(str(path.relative_to(ROOT)).encode())
        parts.append(path.read_bytes())
    return f"{HARNESS_REPO}:{_digest(parts)}"


def _build_wheel(out: Path) -> Path:
    """The package's wheel, built from a copy of its sources (the checkout gets no build/
    or egg-info folders)."""
    with tempfile.TemporaryDirectory(prefix="gossipcert-wheel-") as tmp:
        src = Path(tmp) / "src"
        for path in _wheel_sources():
            dest = src / path.relative_to(ROOT)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, dest)
        _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
              "--no-deps", "--wheel-dir", str(out), str(src)],
             "building the gossipcert wheel", timeout=600)
    wheels = sorted(out.glob("gossipcert-*.whl"))
    if not wheels:
        raise ImageError("pip wheel made no gossipcert wheel")
    return wheels[-1]


def build_harness(client: Any, progress: Progress) -> str:
    """Build (or find cached) the harness image; returns its tag (also tagged ``latest``)."""
    base = build_base(client, progress)
    tag = harness_tag(base)
    if not image_exists(client, tag):
        started = time.monotonic()
        progress(f"image {tag}: building on {base}")
        with tempfile.TemporaryDirectory(prefix="gossipcert-ctx-") as tmp:
            ctx = Path(tmp)
            shutil.copy(HARNESS_DOCKERFILE, ctx / "Dockerfile")
            shutil.copy(HARNESS_ENTRY, ctx / "gossipcert")
            deps = harness_deps()
            cache = _deps_cache().with_name("harness-" + _digest([json.dumps(deps).encode()]))
            if not cache.is_dir():
                partial = cache.with_name(cache.name + f".partial-{os.getpid()}")
                shutil.rmtree(partial, ignore_errors=True)
                _pip_install_deps(partial, deps)
                with contextlib.suppress(OSError):
                    partial.rename(cache)
                shutil.rmtree(partial, ignore_errors=True)
            shutil.copytree(cache, ctx / "deps")
            wheel = _build_wheel(ctx / "wheel")
            _run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                  "--disable-pip-version-check", "--no-compile", "--target",
                  str(ctx / "site"), str(wheel)], "unpacking the gossipcert wheel")
            # pip writes console scripts for the host's interpreter; the image has its own.
            shutil.rmtree(ctx / "site" / "bin", ignore_errors=True)
            shutil.rmtree(ctx / "wheel")
            _build(client, ctx, tag, base, "harness")
        size = client.images.get(tag).attrs.get("Size", 0) / 1e6
        progress(f"image {tag}: built in {time.monotonic() - started:.0f} s ({size:.0f} MB)")
    else:
        progress(f"image {tag}: cached")
    client.images.get(tag).tag(HARNESS_REPO, "latest")
    _drop_superseded(client, "harness", keep=tag)
    return tag


REGISTRY_CONFIG = """version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: /var/lib/registry
  delete:
    enabled: true
http:
  addr: 0.0.0.0:5000
"""
REGISTRY_DOCKERFILE = """ARG BASE
FROM ${BASE}
COPY docker-registry /usr/bin/docker-registry
COPY config.yml /etc/docker/registry/config.yml
CMD ["/usr/bin/docker-registry", "serve", "/etc/docker/registry/config.yml"]
"""


def build_registry(client: Any, progress: Progress) -> str:
    """Build (or find cached) the registry image: the base image plus the host's
    ``docker-registry`` binary (Debian package docker-registry); returns its tag."""
    if not REGISTRY_BINARY.is_file():
        raise ImageError(f"the swarm backend's image registry needs {REGISTRY_BINARY} "
                         "(apt-get install docker-registry; sh scripts/ci-setup.sh does)")
    base = build_base(client, progress)
    binary = REGISTRY_BINARY.read_bytes()
    hash_ = _digest([base.encode(), REGISTRY_DOCKERFILE.encode(), REGISTRY_CONFIG.encode(),
                     binary])
    tag = f"{REGISTRY_REPO}:{hash_}"
    if image_exists(client, tag):
        return tag
    progress(f"image {tag}: building on {base}")
    with tempfile.TemporaryDirectory(prefix="gossipcert-registry-") as tmp:
        ctx = Path(tmp)
        (ctx / "Dockerfile").write_text(REGISTRY_DOCKERFILE, encoding="utf-8")
        (ctx / "config.yml").write_text(REGISTRY_CONFIG, encoding="utf-8")
        shutil.copy(REGISTRY_BINARY, ctx / "docker-registry")
        _build(client, ctx, tag, base, "registry")
    _drop_superseded(client, "registry", keep=tag)
    return tag


def resolve_image(client: Any, name: str, progress: Progress) -> str:
    """The tag to run for a manifest's ``image``: project images are built on demand."""
    if name in (REFERENCE_REPO, f"{REFERENCE_REPO}:latest"):
        return build_reference(client, progress)
    if name in (HARNESS_REPO, f"{HARNESS_REPO}:latest"):
        return build_harness(client, progress)
    if name in (BASE_REPO, f"{BASE_REPO}:latest"):
        return build_base(client, progress)
    if not image_exists(client, name):
        raise ImageError(f"image {name!r} is not present locally (no registry is reachable "
                         "from here: docker load or docker build it first)")
    return name


def project_images(client: Any) -> list[Any]:
    return list(client.images.list(filters={"label": IMAGE_LABEL}))


def remove_images(client: Any, keep_current: bool = False) -> list[str]:
    """Remove the images the project built (all, or all but the current hashes)."""
    keep: set[str] = set()
    if keep_current:
        with contextlib.suppress(GossipcertError):
            base = base_tag()
            keep = {base, reference_tag(base)}
        with contextlib.suppress(GossipcertError):
            keep.add(harness_tag(base_tag()))
    removed = []
    # Remove the images built on top first, so the base is free to go.
    images = sorted(project_images(client),
                    key=lambda im: im.labels.get(IMAGE_LABEL) == "base")
    for image in images:
        tags = list(image.tags)
        if keep & set(tags):
            continue
        with contextlib.suppress(Exception):
            client.images.remove(image.id, force=True)
            removed += tags or [image.short_id]
    return removed
