"""The gate's rules file (``rules/*.toml``) as one typed model.

Every table is closed (an unknown key is an error with "did you mean"), every number
finite and in range, so a typo can never silently loosen the gate. A rule table
says only what it overrides; :meth:`RuleOverrides.set_fields` returns exactly the
keys written in the file, so ``[task."X"]`` layers over ``[task_type.T]`` over
``[defaults]`` over the built-in defaults.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from evalkit.schemas.base import Finite, Name, Schema
from evalkit.schemas.bootstrap import ALPHA_MAX, BootstrapSettings
from evalkit.schemas.speed import SpeedRules


def _false_is_unchecked(value: Any) -> Any:
    """``max_throughput_drop = false`` turns the throughput check off (TOML has no null)."""
    return None if value is False else value


MaxDrop = Annotated[Finite, Field(ge=0)]
Alpha = Annotated[Finite, Field(gt=0, le=ALPHA_MAX)]
ThroughputDrop = Annotated[Annotated[Finite, Field(ge=0, lt=1)] | None, BeforeValidator(_false_is_unchecked)]
Mode = Literal["regression", "non_inferiority"]
Correction = Literal["none", "holm", "bh"]


class RuleOverrides(Schema):
    """One rule table (``[defaults]``, ``[task_type.T]``, ``[task."X"]``): the fields it sets."""

    max_drop: MaxDrop | None = Field(default=None, description="largest allowed drop of the main score, in points (main score × 100)")
    require_significance: bool | None = Field(
        default=None, description="fail a drop only if the paired bootstrap test finds it significant"
    )
    alpha: Alpha | None = Field(default=None, description="significance level of the paired test")
    max_throughput_drop: ThroughputDrop = Field(
        default=None, description="largest allowed relative drop of sentences/s (0.5 = half as fast); false = unchecked"
    )
    allow_data_change: bool | None = Field(
        default=None, description="compare cells whose task, data or protocol differ between the two sides (unpaired test)"
    )
    mode: Mode | None = Field(
        default=None,
        description="'regression' (default): fail a drop beyond max_drop shown to be real; 'non_inferiority': fail unless "
        "the drop's upper confidence bound is under max_drop",
    )

    def set_fields(self) -> dict[str, Any]:
        """Only the keys the file wrote (``false`` for throughput becomes None = unchecked)."""
        return {name: getattr(self, name) for name in sorted(self.model_fields_set)}


class GateSettings(Schema):
    """``[gate]``: settings of the gate as a whole (the family of checks), not of one task."""

    correction: Correction = Field(
        default="none",
        description="multiple-comparison correction over the gate's checks: 'none', 'holm' (family-wise error), "
        "'bh' (Benjamini-Hochberg false discovery rate)",
    )


class RulesFile(Schema):
    """A whole rules file."""

    gate: GateSettings = GateSettings()

    defaults: RuleOverrides = RuleOverrides()
    bootstrap: BootstrapSettings = BootstrapSettings()
    task_type: dict[Name, RuleOverrides] = Field(default_factory=dict, description="per task type (sts, classification, ...)")
    task: dict[Name, RuleOverrides] = Field(default_factory=dict, description="per task, by name (case-insensitive)")
    speed: SpeedRules = SpeedRules()  # [speed]: paired speed comparisons (evalkit.gate.speed)
