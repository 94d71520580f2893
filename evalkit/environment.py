"""The machine and software a result was produced on, recorded in every result file."""

from __future__ import annotations

import functools
import os
import platform
import sys
from importlib import metadata
from typing import Any

PACKAGES = ("evalkit", "torch", "transformers", "sentence-transformers", "model2vec", "scikit-learn", "numpy", "scipy", "mteb")


@functools.cache
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.cache
def _versions() -> tuple[tuple[str, str], ...]:
    """Installed versions of :data:`PACKAGES`, read once per process (reading metadata costs ~10 ms a package)."""
    versions = []
    for name in PACKAGES:
        try:
            versions.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            continue
    return tuple(versions)


def environment() -> dict[str, Any]:
    env: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "packages": dict(_versions()),
        "gpu": None,
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        env["torch_threads"] = torch.get_num_threads()
        env["torch_cuda"] = torch.version.cuda  # the CUDA the wheel was built for (None: CPU build)
        if torch.cuda.is_available() and torch.cuda.is_initialized():  # a GPU this run used; never initialise CUDA here
            props = torch.cuda.get_device_properties(0)
            env["gpu"] = {
                "name": props.name,
                "memory_bytes": int(props.total_memory),
                "cuda": torch.version.cuda,
                "count": torch.cuda.device_count(),
            }
    return env


def lock_differences(lock_dir: str | os.PathLike[str] | None = None) -> tuple[int, list[str]] | None:
    """How the installed packages differ from the lock beside this checkout: (packages locked, differences).

    ``None`` where there is no lock (evalkit installed from a wheel, with the ranges of its metadata).
    Local version labels are ignored (the lock's ``torch==2.13.0`` is the installed ``2.13.0+cpu``).
    """
    import re
    from pathlib import Path

    folder = Path(lock_dir) if lock_dir is not None else Path(__file__).resolve().parent.parent / "lock"
    pins: dict[str, str] = {}
    for name in ("torch.txt", "requirements.txt", "no-deps.txt"):
        try:
            text = (folder / name).read_text(encoding="utf-8")
        except OSError:
            if name == "requirements.txt":
                return None
            continue
        for match in re.finditer(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", text, re.MULTILINE):
            pins[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    differences = []
    for name, locked in sorted(pins.items()):
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            differences.append(f"{name} not installed (locked {locked})")
            continue
        if installed.split("+")[0] != locked.split("+")[0]:
            differences.append(f"{name} {installed} (locked {locked})")
    return len(pins), differences


def version_line(version: str) -> str:
    """``evalkit --version``: the version, and whether the installed set is the tested one (the lock)."""
    found = lock_differences()
    if found is None:
        return f"evalkit {version} (no lock beside this install: dependencies as pip resolved pyproject's ranges)"
    count, differences = found
    if not differences:
        return f"evalkit {version} (installed set = lock/requirements.txt, {count} packages)"
    shown = ", ".join(differences[:3]) + (f", and {len(differences) - 3} more" if len(differences) > 3 else "")
    return (
        f"evalkit {version} (installed set differs from the lock in {len(differences)} of {count} packages: {shown}; "
        "scripts/bootstrap installs the lock)"
    )
