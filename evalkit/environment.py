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
