"""A stored interval is sealed by the run that drew it; per-unit values stay inside their declared ranges.

An edited ``ci`` block used to be shown as if evalkit had drawn it, and a cosine of 1.5
passed every check because a rank correlation does not see a monotone edit. Both are
silent wrong numbers; both are refused (or, for an interval without a seal, redrawn).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evalkit.adapters import ADAPTERS, adapter_for
from evalkit.cli import main as evalkit
from evalkit.errors import DataError
from evalkit.reading import interval, read_result
from evalkit.results import CellResult
from evalkit.stats import Bootstrap, spearman


def sts_cell(n: int = 40, seed: int = 0) -> CellResult:
    """A valid STS result whose interval is drawn from its units and sealed, as a run writes it."""
    rng = np.random.default_rng(seed)
    gold = rng.uniform(0, 1, n).round(6)
    cosine = np.tanh(gold + rng.normal(0, 0.3, n))  # inside (-1, 1), no ties
    main = spearman(gold, cosine)
    result = CellResult(
        encoder="tfidf:lexical",
        task="Tiny",
        task_type="sts",
        split="test",
        scores={"cosine_spearman": main},
        main_metric="cosine_spearman",
        main_score=main,
        config_hash="abc",
        created_at="2026-01-01T00:00:00+00:00",
        n_units=n,
        units={"gold": gold.tolist(), "cosine": cosine.tolist()},
    )
    drawn = interval(result, Bootstrap(n_boot=200))
    assert drawn is not None
    return result.replace(ci=drawn.as_dict()).sealed()


def write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_a_run_writes_a_sealed_interval_and_readers_use_it(tmp_path: Path) -> None:
    task = tmp_path / "tiny.toml"
    (tmp_path / "tiny.tsv").write_text(
        "sentence1\tsentence2\tscore\n" + "".join(f"a cat {i} sits\ta cat {i % 5} sat\t{i % 6}\n" for i in range(30)), encoding="utf-8"
    )
    task.write_text('name = "Tiny"\ntype = "sts"\nsplit = "test"\n[files]\ntest = "tiny.tsv"\n', encoding="utf-8")
    out = ["-o", str(tmp_path / "out"), "--no-cache", "--no-progress", "--no-report"]
    assert evalkit(["run", "-e", "tfidf:lexical", "-t", str(task), *out]) == 0
    (path,) = (tmp_path / "out").glob("*/*.json")
    result = read_result(path)
    assert result.ci_sealed and len(result.ci["digest"]) == 64
    stored = interval(result)
    assert stored is not None and (stored.low, stored.high) == (result.ci["low"], result.ci["high"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    key=st.sampled_from(["low", "high", "level", "n_boot", "seed", "n_units", "main_score", "unit"]),
    shift=st.floats(min_value=1e-4, max_value=0.2),
)
def test_an_edit_under_a_seal_is_refused_naming_the_interval(tmp_path: Path, key: str, shift: float) -> None:
    data = sts_cell().model_dump()
    if key in ("low", "high"):
        data["ci"][key] = data["ci"][key] - shift
    elif key in ("level", "n_boot", "seed", "n_units"):
        data["ci"][key] = data["ci"][key] + (1 if key != "level" else -shift)
    elif key == "main_score":  # the score and its entry edited together, units re-ordered to keep the rank check quiet
        data["main_score"] = data["scores"]["cosine_spearman"] = data["main_score"] + shift / 1e3
    else:  # a unit nudged by a monotone-invisible amount: the rank correlation cannot see it, the seal does
        data["units"]["cosine"][0] = float(np.clip(data["units"]["cosine"][0] + shift / 1e6, -1, 1)) or 1e-9
    path = write(tmp_path / "r.json", data)
    with pytest.raises(DataError) as info:
        read_result(path)
    assert info.value.path == str(path)
    assert info.value.field in ("ci", "main_score"), info.value  # a main score far off its units is refused first


def test_an_unsealed_interval_is_dropped_and_redrawn_from_the_units(tmp_path: Path) -> None:
    cell = sts_cell()
    data = cell.model_dump()
    del data["ci"]["digest"]
    data["ci"]["low"] = data["ci"]["low"] - 0.3  # a hand-written interval, much wider
    result = read_result(write(tmp_path / "r.json", data))
    assert result.ci == {}
    redrawn = interval(result, Bootstrap(n_boot=200))
    assert redrawn is not None and redrawn.low == pytest.approx(cell.ci["low"])


def test_the_cli_names_the_edited_interval_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = sts_cell().model_dump()
    data["ci"]["high"] = 0.999
    folder = tmp_path / "res" / "tfidf_lexical-00000000"
    folder.mkdir(parents=True)
    write(folder / "Tiny.test.json", data)
    assert evalkit(["report", str(tmp_path / "res")]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("evalkit: error:")]
    assert len(lines) == 1 and "'ci'" in lines[0] and "Traceback" not in err


@pytest.mark.parametrize("value", [1.5, -1.2, 7.0])
def test_a_cosine_outside_minus_one_one_is_refused_though_the_ranks_agree(tmp_path: Path, value: float) -> None:
    data = sts_cell().model_dump()
    data["ci"] = {}
    cosine = data["units"]["cosine"]
    top = int(np.argmax(cosine)) if value > 0 else int(np.argmin(cosine))
    cosine[top] = value  # the same rank: Spearman, and so the main-score check, cannot see it
    with pytest.raises(DataError, match=r"outside \[-1, 1\]") as info:
        read_result(write(tmp_path / "r.json", data))
    assert info.value.field == "units.cosine"


def test_rounding_past_one_and_undefined_units_are_not_refused(tmp_path: Path) -> None:
    data = sts_cell().model_dump()
    data["ci"] = {}
    cosine = data["units"]["cosine"]
    cosine[int(np.argmax(cosine))] = 1.0000001
    assert read_result(write(tmp_path / "r.json", data)).ok


def test_every_declared_bound_names_a_unit_its_adapter_stores() -> None:
    """A bound on a key the adapter never writes would check nothing."""
    declared = {name: getattr(adapter_for(name), "unit_bounds", {}) for name in ADAPTERS.names()}
    assert {name for name, bounds in declared.items() if bounds} >= {"sts", "pair_classification", "retrieval", "reranking", "clustering"}
    for bounds in declared.values():
        for low, high in bounds.values():
            assert low < high
