"""Helpers for the container tests: build the images with aelimg once per
session and run them under podman with the flags this machine needs
(see ../shared/ORACLES.md). Every container is removed by its ID."""

from __future__ import annotations

import json
import os
import platform
import re
import secrets
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

from support import require, wait_until

REPO = Path(__file__).resolve().parents[2]

PODMAN = ["podman", "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--runtime", "runc"]
RUN_LIMITS = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=4096:4096"]

_LOCK = threading.Lock()
_IMAGES: dict[str, Any] = {}


def _cleanup_images() -> None:
    d = _IMAGES.get("dir")
    if d:
        shutil.rmtree(d, ignore_errors=True)


def host_platform() -> str:
    """The OCI platform of this machine, so podman runs the images natively."""
    __tracebackhide__ = True
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine)
    require(arch, f"aelimg builds linux/amd64 and linux/arm64 images; this machine is {machine}")
    return f"linux/{arch}"


# One path component of a reference (distribution/reference's grammar):
# lower-case letters and digits, joined by `.`, `_`, `__` or runs of `-`.
_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")


def _reference_safe_dir() -> Path:
    """A fresh directory under /tmp whose every path component is valid in an
    image reference. podman names an image pulled from `oci:DIR:TAG` after DIR,
    so a tempfile.mkdtemp name that happens to end in `_` (its alphabet has
    one) makes `podman run` fail with "invalid reference format"."""
    for _ in range(100):
        base = Path("/tmp") / f"aelimg-py-images-{os.getpid()}-{secrets.token_hex(6)}"
        try:
            base.mkdir(mode=0o700)
        except FileExistsError:
            continue
        bad = [c for c in base.parts[1:] if not _PATH_COMPONENT.fullmatch(c)]
        assert not bad, f"{base}: {bad} cannot be part of an image reference"
        return base
    raise AssertionError("could not create a fresh directory under /tmp")


def build_images() -> tuple[Path, dict]:
    """Build both images for the host's platform with aelimg into a fresh temporary
    directory, once per process; return (output dir, the build's JSON report).

    The oci: references podman takes must have no upper-case letters and no
    `:`, so the directory is made under /tmp with a fixed lower-case prefix."""
    with _LOCK:
        if "dir" not in _IMAGES:
            base = _reference_safe_dir()
            out = base / "out"
            # The dev build of aelimg (the Rust tests built it; its hot crates
            # are optimized) avoids a second, release host build in CI.
            cmd = ["cargo", "run", "-q", "--locked", "--", "build",
                   "--platform", host_platform(), "--output", f"oci:{out}", "--json"]
            r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=2400)
            if r.returncode != 0:
                shutil.rmtree(base, ignore_errors=True)
                raise AssertionError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr[-4000:]}")
            _IMAGES["dir"] = str(base)
            _IMAGES["out"] = out
            _IMAGES["report"] = json.loads(r.stdout)
            import atexit
            atexit.register(_cleanup_images)
        return _IMAGES["out"], _IMAGES["report"]


def oci_ref(images: Path, name: str) -> str:
    return f"oci:{images / name}:latest"


def podman(*args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([*PODMAN, *args], capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def remove_container(cid: str) -> None:
    """Stop and remove one container we started, by its ID."""
    if cid:
        podman("rm", "-f", "-t", "0", cid, timeout=60, check=False)


def container_logs(cid: str) -> str:
    r = podman("logs", cid, timeout=30, check=False)
    return r.stdout + r.stderr


def read_cidfile(path: Path, timeout: float = 0.0) -> str:
    """The container ID podman wrote to `path`, waiting up to `timeout` s for it; "" if none."""
    def cid() -> str:
        try:
            return path.read_text().strip()
        except OSError:
            return ""

    try:
        return wait_until(cid, timeout, f"a container ID in {path}", interval=0.1)
    except AssertionError:
        return ""


def podman_env() -> dict[str, str]:
    """The environment for a podman child (the MCP SDK's stdio client otherwise
    passes only a few variables)."""
    return dict(os.environ)


def example_workflow_names() -> set[str]:
    names = set()
    for p in (REPO / "images" / "workflows").iterdir():
        if p.suffix in (".yaml", ".yml"):
            for line in p.read_text().splitlines():
                if line.startswith("name:"):
                    names.add(line.split(":", 1)[1].strip().strip("\"'"))
                    break
    assert len(names) >= 2, names
    return names
