"""Executors: how a matrix of (encoder × task) cells gets run. Local by default."""

from evalkit.execution.cells import Cell, evaluate_cell, plan
from evalkit.execution.local import run_local

__all__ = ["Cell", "evaluate_cell", "plan", "run_local"]
