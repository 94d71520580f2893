"""The gate refuses what it cannot compare: exit 2 with one line, never a pass.

Result folders here are small but real (STS per-unit outcomes whose Spearman is the
stored main score, scored by the real adapter and bootstrap), so each gate run takes
milliseconds and the properties can be checked over many generated rule files and
folders. Exit codes: 0 pass, 1 a real regression, 2 anything that cannot be compared
or bad input.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from evalkit.cli import main as evalkit
from evalkit.errors import EvalkitError
from evalkit.gate.rules import load_rules
from evalkit.results import CellResult, ResultStore
from evalkit.schemas.bootstrap import N_BOOT_MAX, N_BOOT_MIN, BootstrapSettings
from evalkit.stats import Bootstrap, spearman

ENCODER = "tfidf:lexical"
FAST = "[bootstrap]\nn_boot = 200\n"


def sts_cell(task: str, quality: float, *, n: int = 60, seed: int = 0, encoder: str = ENCODER, **changes: Any) -> CellResult:
    """A real-shaped STS result: cosine = gold + noise, so ``quality`` (0..1) sets how well it ranks."""
    rng = np.random.default_rng([seed, n])
    gold = rng.uniform(0, 1, n).round(6)
    noise = np.random.default_rng([seed, n, 1]).normal(0, 1, n)
    cosine = np.clip(quality * gold + (1 - quality) * noise, -1, 1).astype(np.float32)  # a cosine: in [-1, 1]
    main = spearman(gold, cosine)
    fields: dict[str, Any] = {
        "encoder": encoder,
        "task": task,
        "task_type": "sts",
        "split": "test",
        "main_metric": "cosine_spearman",
        "main_score": main,
        "scores": {"cosine_spearman": main},
        "config_hash": "c",
        "created_at": "2026-01-01T00:00:00+00:00",
        "n_units": n,
        "units": {"gold": gold.tolist(), "cosine": cosine.tolist()},
        "task_hash": f"protocol-of-{task}",
        "data_hash": f"data-of-{task}",
        "throughput": {"sentences_per_second": 100.0},
    }
    fields.update(changes)
    return CellResult(**fields)


def folder(root: Path, cells: Sequence[CellResult]) -> Path:
    store = ResultStore(root)
    for cell in cells:
        store.write(cell)
    return root


def gate(capsys: pytest.CaptureFixture[str], base: Path, cand: Path, rules: str | None = None, *flags: str) -> tuple[int, str, str]:
    args = ["gate", "--baseline", str(base), "--candidate", str(cand), *flags]
    if rules is not None:
        path = base.parent / "rules.toml"
        path.write_text(rules, encoding="utf-8")
        args += ["--rules", str(path)]
    code = evalkit(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def refused(code: int, out: str, err: str, *fragments: str) -> str:
    """Exit 2, one ``evalkit: error:`` line holding every fragment, no traceback, no verdict on stdout."""
    assert code == 2, out + err
    lines = [line for line in err.splitlines() if line.startswith("evalkit: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "✅" not in out
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def sides(tmp_path: Path) -> tuple[Path, Path]:
    """Baseline: T3 and STSB scored well. Candidate: T3 collapses by ~50 points, STSB unchanged."""
    base = folder(tmp_path / "base", [sts_cell("T3", 0.9), sts_cell("STSB", 0.9, seed=1)])
    cand = folder(tmp_path / "cand", [sts_cell("T3", 0.2), sts_cell("STSB", 0.9, seed=1)])
    return base, cand


def test_the_collapse_is_a_regression_under_default_rules(sides: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = gate(capsys, *sides, FAST)
    assert code == 1, out + err
    assert "T3 (tfidf:lexical): main score dropped by" in out and "significant (paired bootstrap" in out


# --- rules naming tasks that are not there -------------------------------------------------------------


def test_a_rule_for_a_task_in_neither_folder_is_refused_with_did_you_mean(
    sides: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """`[task.T33]` meant for T3: ignored, the lax default would pass a 50-point drop."""
    rules = FAST + "[defaults]\nmax_drop = 60\n\n[task.T33]\nmax_drop = 1\n"
    line = refused(
        *gate(capsys, *sides, rules), "rules.toml:6", "field 'task.T33'", "neither the baseline nor the candidate", "did you mean 'T3'?"
    )
    assert "regression" not in line
    # the same rules with the name right: a regression, not a pass
    code, out, _ = gate(capsys, *sides, rules.replace("T33", "T3"))
    assert code == 1 and "rule allows 1" in out


def test_task_rules_match_names_case_insensitively(sides: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = gate(capsys, *sides, FAST + '[defaults]\nmax_drop = 60\n[task."t3"]\nmax_drop = 1\n')
    assert code == 1 and "rule allows 1" in out
    refused(*gate(capsys, *sides, FAST + "[task.t3]\nmax_drop = 1\n[task.T3]\nmax_drop = 2\n"), "field 'task.T3'", "two rule tables")


def test_a_rule_for_a_task_on_one_side_only_is_the_missing_task_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = folder(tmp_path / "base", [sts_cell("T3", 0.9), sts_cell("Extra", 0.9)])
    cand = folder(tmp_path / "cand", [sts_cell("T3", 0.9)])
    refused(*gate(capsys, base, cand, FAST + "[task.Extra]\nmax_drop = 1\n"), "cover different tasks", "lacks Extra/test")


def test_a_match_naming_no_encoder_is_refused(sides: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    refused(*gate(capsys, *sides, FAST, "--match", "tfidf:lexicall=tfidf:lexical"), "--match")


# --- data and protocol identity ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "what"),
    [({"data_hash": "edited"}, "data files differ"), ({"task_hash": "other-settings"}, "protocol (task type, split, settings or seeds) ")],
)
def test_different_data_or_protocol_is_refused_unless_allowed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], changes: dict[str, str], what: str
) -> None:
    base = folder(tmp_path / "base", [sts_cell("T3", 0.9)])
    cand = folder(tmp_path / "cand", [sts_cell("T3", 0.9, **changes)])
    refused(*gate(capsys, base, cand, FAST), "T3/test: the two sides scored different data", what.strip(), "--allow-data-change")
    code, out, err = gate(capsys, base, cand, FAST, "--allow-data-change")
    assert code == 0, out + err
    assert "(allowed); the bootstrap test is unpaired" in out
    code, out, _ = gate(capsys, base, cand, FAST + "[task.T3]\nallow_data_change = true\n")
    assert code == 0 and "unpaired" in out


def test_a_different_number_of_units_is_refused_unless_allowed_and_then_tested_unpaired(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = folder(tmp_path / "base", [sts_cell("T3", 0.9, n=80)])
    cand = folder(tmp_path / "cand", [sts_cell("T3", 0.1, n=60, data_hash="data-of-T3-trimmed")])
    refused(*gate(capsys, base, cand, FAST), "number of units (80 vs 60)")
    code, out, err = gate(capsys, base, cand, FAST + "[defaults]\nallow_data_change = true\n")
    assert code == 1, out + err  # a real collapse still fails, by the unpaired test
    assert "significant (unpaired bootstrap p" in out


def test_results_that_predate_the_hashes_compare_with_a_note(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = folder(tmp_path / "base", [sts_cell("T3", 0.9, task_hash=None, data_hash=None)])
    cand = folder(tmp_path / "cand", [sts_cell("T3", 0.9)])
    code, out, err = gate(capsys, base, cand, FAST)
    assert code == 0, out + err
    assert "cannot verify that both sides used the same data and protocol (the baseline result predates data\\_hash)" in out


# --- tampered or unreadable candidate files ------------------------------------------------------------------


def test_a_candidate_stripped_of_its_units_is_refused(sides: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """Without units a forged score could not be checked: one side with units and one without do not compare."""
    base, cand = sides
    path = ResultStore(cand).path_for(ENCODER, "T3", "test")
    data = json.loads(path.read_text(encoding="utf-8"))
    data.update(units={}, n_units=0, main_score=0.99, scores={"cosine_spearman": 0.99})
    path.write_text(json.dumps(data), encoding="utf-8")
    refused(*gate(capsys, base, cand, FAST), "T3/test: the candidate result of tfidf:lexical has no per-unit outcomes")


def raise_score(path: Path, by: float) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    data["main_score"] += by
    data["scores"][data["main_metric"]] = data["main_score"]
    path.write_text(json.dumps(data), encoding="utf-8")


def test_a_candidate_with_a_forged_main_score_is_refused_not_passed(sides: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    base, cand = sides
    path = ResultStore(cand).path_for(ENCODER, "T3", "test")
    raise_score(path, 0.7)  # back up to the baseline's level: the drop disappears, the units still say otherwise
    refused(*gate(capsys, base, cand, FAST), str(path), "field 'main_score'", "disagrees with the")


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("spoil", "fragment"),
    [
        (lambda p: p.write_text(p.read_text(encoding="utf-8").replace('"n_units": 60', '"n_units": 1e999'), encoding="utf-8"), "finite"),
        (
            lambda p: p.write_text(p.read_text(encoding="utf-8").replace('"main_metric"', '"x": NaN, "main_metric"'), encoding="utf-8"),
            "finite",
        ),
        (lambda p: p.write_text('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}", encoding="utf-8"), "nested"),
        (lambda p: (p.unlink(), p.symlink_to("/dev/zero")), "character device"),
        (lambda p: (p.unlink(), os.mkfifo(p)), "FIFO"),
        (lambda p: (p.unlink(), p.mkdir()), "directory"),
        (lambda p: p.write_bytes(b"\xef\xbb\xbf" + p.read_bytes()), None),  # a BOM is fine
    ],
    ids=["inf", "nan", "deep", "dev-zero", "fifo", "directory", "bom"],
)
def test_an_unreadable_candidate_file_is_exit_2(
    sides: tuple[Path, Path], capsys: pytest.CaptureFixture[str], spoil: Any, fragment: str | None
) -> None:
    base, cand = sides
    path = ResultStore(cand).path_for(ENCODER, "STSB", "test")
    spoil(path)
    code, out, err = gate(capsys, base, cand, FAST)
    if fragment is None:
        assert code == 1, out + err  # the T3 collapse, as without the BOM
    else:
        refused(code, out, err, path.name, fragment)


# --- the rules file is one model ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rules", "fragments"),
    [
        ("[defaults]\nmax_dorp = 1\n", ("rules.toml:2", "field 'defaults.max_dorp'", "did you mean 'max_drop'")),
        ("[task.T3]\nmax_dorp = 1\n", ("rules.toml:2", "field 'task.T3.max_dorp'", "did you mean 'max_drop'")),
        ("[task_type.sts]\nalhpa = 0.1\n", ("field 'task_type.sts.alhpa'", "did you mean 'alpha'")),
        ("[bootstrap]\nnboot = 500\n", ("field 'bootstrap.nboot'", "did you mean 'n_boot'")),
        ("[defualts]\nmax_drop = 1\n", ("field 'defualts'", "did you mean 'defaults'")),
        ("[task_type.stss]\nmax_drop = 1\n", ("field 'task_type.stss'", "did you mean 'sts'")),
        ("[defaults]\nmax_drop = inf\n", ("field 'defaults.max_drop'", "finite")),
        ("[defaults]\nmax_drop = -inf\n", ("field 'defaults.max_drop'",)),
        ("[defaults]\nalpha = nan\n", ("field 'defaults.alpha'", "finite")),
        ("[defaults]\nalpha = 0\n", ("field 'defaults.alpha'", "greater than 0")),
        ("[defaults]\nalpha = 0.6\n", ("field 'defaults.alpha'", "less than or equal to 0.5")),
        ("[defaults]\nmax_throughput_drop = 1\n", ("field 'defaults.max_throughput_drop'", "less than 1")),
        ("[defaults]\nmax_throughput_drop = true\n", ("field 'defaults.max_throughput_drop'",)),
        ("[defaults]\nrequire_significance = 1\n", ("field 'defaults.require_significance'", "valid boolean")),
        ("[defaults]\nmax_drop = '1'\n", ("field 'defaults.max_drop'", "valid number")),
        ("[bootstrap]\nn_boot = 99\n", ("field 'bootstrap.n_boot'", f"between {N_BOOT_MIN} and {N_BOOT_MAX}")),
        ("[bootstrap]\nn_boot = 100001\n", ("field 'bootstrap.n_boot'", f"between {N_BOOT_MIN} and {N_BOOT_MAX}")),
        ("[bootstrap]\nlevel = 1.0\n", ("field 'bootstrap.level'", "below 1")),
        ("[bootstrap]\nseed = -1\n", ("field 'bootstrap.seed'",)),
        ("[bootstrap]\nseed = 4294967296\n", ("field 'bootstrap.seed'",)),
        ("task = 3\n", ("field 'task'", "valid dictionary")),
        ("[task]\nT3 = 1\n", ("field 'task.T3'",)),
        ('[task."\\ud800"]\nmax_drop = 1\n', ("rules.toml", "not valid TOML")),
        ("a = " + "[" * 5000 + "]" * 5000 + "\n", ("rules.toml", "nested too deeply")),
    ],
)
def test_bad_rules_are_one_line_naming_the_field(
    sides: tuple[Path, Path], capsys: pytest.CaptureFixture[str], rules: str, fragments: tuple[str, ...]
) -> None:
    refused(*gate(capsys, *sides, rules), *fragments)


def test_one_definition_of_the_bootstrap_ranges(tmp_path: Path) -> None:
    """The rules file and Bootstrap (what `evalkit report --n-boot` builds) accept and refuse the same values."""
    for n_boot in (N_BOOT_MIN - 1, N_BOOT_MIN, 1000, N_BOOT_MAX, N_BOOT_MAX + 1, 10):
        valid = N_BOOT_MIN <= n_boot <= N_BOOT_MAX
        rules = tmp_path / f"r{n_boot}.toml"
        rules.write_text(f"[bootstrap]\nn_boot = {n_boot}\n", encoding="utf-8")
        outcomes = []
        for build, argument in (
            (lambda v: Bootstrap(n_boot=v), n_boot),
            (lambda v: BootstrapSettings(n_boot=v), n_boot),
            (load_rules, rules),
        ):
            try:
                build(argument)
                outcomes.append(True)
            except (EvalkitError, ValueError):
                outcomes.append(False)
        assert outcomes == [valid] * 3, (n_boot, outcomes)
    for level in (0.4, 0.5, 0.95, 1.0, float("nan")):
        ok = level == level and 0.5 <= level < 1
        try:
            Bootstrap(level=level)
            assert ok
        except EvalkitError as exc:
            assert not ok and exc.field == "level"


def test_the_shipped_rule_files_load() -> None:
    repo = Path(__file__).resolve().parent.parent
    ci = load_rules(repo / "rules" / "ci.toml")
    assert ci.defaults.max_drop == 0.5 and ci.defaults.max_throughput_drop is None
    assert ci.for_task("AmazonCounterfactualClassification", "classification").max_drop == 1.0
    example = load_rules(repo / "rules" / "example.toml")
    rule = example.for_task("sick-r", "sts")
    assert rule.max_drop == 0.3 and rule.max_throughput_drop is None and rule.source == "task.sick-r"
    assert example.for_task("STSBenchmark", "sts").max_throughput_drop == 0.5
    assert example.correction == "none" and example.defaults.mode == "regression"
    assert (example.speed.min_speedup, example.speed.max_slowdown, example.speed.max_memory_growth) == (1.0, 0.1, 0.5)


# --- properties: generated rule files and folders --------------------------------------------------------------


def mostly(valid: st.SearchStrategy[Any], *invalid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Valid values three times as often as each kind of invalid one, so both branches of the property are exercised."""
    return st.one_of(valid, valid, valid, *invalid)


RULE_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "max_drop": mostly(st.floats(0, 100), st.floats(-5, -0.01), st.just(float("inf")), st.just(float("nan")), st.text("ab1 ", max_size=3)),
    "require_significance": mostly(st.booleans(), st.integers(0, 2)),
    "alpha": mostly(st.floats(0.001, 0.5), st.floats(0.51, 2), st.just(0.0)),
    "max_throughput_drop": mostly(st.just(False) | st.floats(0, 0.99), st.floats(1, 3)),
    "allow_data_change": st.booleans(),
    "max_dorp": st.floats(0, 1),
}


def valid_rule(table: dict[str, Any]) -> bool:
    """Independent statement of the rule ranges (the model must agree)."""
    checks = {
        "max_drop": lambda v: isinstance(v, float) and 0 <= v < float("inf"),
        "require_significance": lambda v: isinstance(v, bool),
        "alpha": lambda v: isinstance(v, float) and 0 < v <= 0.5,
        "max_throughput_drop": lambda v: v is False or (isinstance(v, float) and 0 <= v < 1),
        "allow_data_change": lambda v: isinstance(v, bool),
    }
    return all(key in checks and checks[key](value) for key, value in table.items())


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if value != value else ("inf" if value == float("inf") else repr(value))
    return json.dumps(value)


rule_tables = st.dictionaries(st.sampled_from([*sorted(RULE_VALUES), *sorted(RULE_VALUES)[:-1]]), st.none(), max_size=3).flatmap(
    lambda keys: st.fixed_dictionaries({k: RULE_VALUES[k] for k in keys})
)


RARELY = st.sampled_from([False, False, False, True])


@pytest.mark.timeout(600)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    defaults=rule_tables,
    task_name=st.sampled_from(["T3", "t3", "STSB", "sTsB", "T33", "Nope"]),
    task_rule=rule_tables,
    n_boot=st.sampled_from([100, 300, 300, 50, 200_000]),
    drop=st.sampled_from([0.0, 0.3, 0.7]),
    tamper=RARELY,
    other_data=RARELY,
    allow=st.booleans(),
)
def test_any_rules_and_folders_give_0_1_or_2_and_2_for_every_invalid_input(
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
    defaults: dict[str, Any],
    task_name: str,
    task_rule: dict[str, Any],
    n_boot: int,
    drop: float,
    tamper: bool,
    other_data: bool,
    allow: bool,
) -> None:
    root = tmp_path_factory.mktemp("prop")
    base = folder(root / "base", [sts_cell("T3", 0.9), sts_cell("STSB", 0.9, seed=1)])
    cand_cells = [sts_cell("T3", 0.9 - drop, **({"data_hash": "changed"} if other_data else {})), sts_cell("STSB", 0.9, seed=1)]
    cand = folder(root / "cand", cand_cells)
    if tamper:
        raise_score(ResultStore(cand).path_for(ENCODER, "STSB", "test"), 0.01)
    text = f"[bootstrap]\nn_boot = {n_boot}\n"
    text += "[defaults]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in defaults.items())
    text += f'[task."{task_name}"]\n' + "".join(f"{k} = {toml_value(v)}\n" for k, v in task_rule.items())
    assert tomllib.loads(text)  # the generator writes TOML; only its content may be wrong
    flags = ["--allow-data-change"] if allow else []
    code, out, err = gate(capsys, base, cand, text, *flags)
    assert code in (0, 1, 2) and "Traceback" not in err
    event(f"exit {code}")
    allowed = (
        allow or defaults.get("allow_data_change") is True or (task_name.lower() == "t3" and task_rule.get("allow_data_change") is True)
    )
    invalid = (
        not valid_rule(defaults)
        or not valid_rule(task_rule)
        or not N_BOOT_MIN <= n_boot <= N_BOOT_MAX
        or task_name.lower() not in {"t3", "stsb"}
        or tamper
        or (other_data and not allowed)
    )
    if invalid:
        refused(code, out, err)
    else:
        assert code in (0, 1), out + err
        assert (code == 1) == ("❌" in out)
        if drop == 0.0 and not other_data:
            assert code == 0, out + err  # identical results never regress
