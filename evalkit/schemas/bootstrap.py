"""Bootstrap settings, defined once for the rules file, ``evalkit report``'s flags and :class:`evalkit.stats.Bootstrap`.

Before this module the rules file allowed 100..100000 resamples and ``Bootstrap``
anything from 10; both now check the same ranges through :func:`check_n_boot` and
:func:`check_level`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator

from evalkit.schemas.base import Finite, Schema, Seed

N_BOOT_MIN = 100
"""Fewer resamples make the 2.5 % tail of a 95 % interval rest on two or three draws."""
N_BOOT_MAX = 100_000
"""More only costs time (a paired test on 10k units at 100k resamples takes minutes)."""
LEVEL_MIN = 0.5
"""Below 0.5 an "interval" holds less than half the resamples."""
ALPHA_MAX = 0.5


def check_n_boot(value: int) -> int:
    """``value`` if it is an allowed number of bootstrap resamples, else ValueError (pydantic's and the CLI's message)."""
    if isinstance(value, bool) or not N_BOOT_MIN <= value <= N_BOOT_MAX:
        raise ValueError(f"must be between {N_BOOT_MIN} and {N_BOOT_MAX} bootstrap resamples")
    return value


def check_level(value: float) -> float:
    """``value`` if it is an allowed confidence level, else ValueError."""
    if isinstance(value, bool) or not LEVEL_MIN <= value < 1:
        raise ValueError(f"confidence level must be at least {LEVEL_MIN:g} and below 1")
    return value


NBoot = Annotated[int, AfterValidator(check_n_boot)]
Level = Annotated[Finite, AfterValidator(check_level)]


class BootstrapSettings(Schema):
    """``[bootstrap]`` of a rules file: resamples of the paired test and of the printed intervals."""

    n_boot: NBoot = 1000
    seed: Seed = 0
    level: Level = 0.95
