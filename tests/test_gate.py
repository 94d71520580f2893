"""The regression gate on real runs: real models, real STS-B pairs, the committed baseline.

Fresh runs made here (MiniLM with another batch size, the static model again) and
committed real runs (``results/baseline``: the packaged MiniLM and the static model;
``results/examples/pooling``: MiniLM pooled four ways) are gated against each other.
A real regression must fail (exit 1) and name the task and the drop; noise must
pass; anything that cannot be compared must be exit 2 with one clear line, never a pass.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from evalkit.cli import main as evalkit
from evalkit.execution import plan, run_local
from evalkit.results import ResultStore
from evalkit.spec import EncoderSpec
from evalkit.taskspec import TaskIndex

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
BASELINE = REPO / "results" / "baseline"
POOLING = REPO / "results" / "examples" / "pooling"
CLS = "hf:all-MiniLM-L6-v2?layer=-1&pooling=cls"
SBERT = "sbert:all-MiniLM-L6-v2"
STATIC = "static:tokenlearn-static"


def stsb_only(source: Path, target: Path, *encoders: str) -> Path:
    """A results folder with the baseline's STSBenchmark cells of ``encoders`` (all if none given)."""
    store = ResultStore(source)
    for result in store:
        if result.task == "STSBenchmark" and (not encoders or result.encoder in encoders):
            path = ResultStore(target).path_for(result.encoder, result.task, result.split)
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(store.path_for(result.encoder, result.task, result.split), path)
    return target


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Fresh real runs on STSBenchmark (one folder per candidate), plus committed subsets."""
    root = tmp_path_factory.mktemp("gate")
    task = TaskIndex().get("STSBenchmark")
    specs = {"batch": f"{SBERT}?batch_size=8", "static": STATIC}
    for name, spec in specs.items():
        run_local(plan([EncoderSpec.parse(spec)], [task]), ResultStore(root / name), progress=False)
    return {
        **{name: root / name for name in specs},
        "cls": stsb_only(POOLING, root / "cls", CLS),
        "sbert": stsb_only(BASELINE, root / "base-sbert", SBERT),
        "base-static": stsb_only(BASELINE, root / "base-static", STATIC),
        "both": stsb_only(BASELINE, root / "base-both"),
    }


def gate(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = evalkit(["gate", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_input_error(code: int, out: str, err: str, *fragments: str) -> None:
    assert code == 2, out + err
    lines = [line for line in err.splitlines() if line.startswith("evalkit: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err and "pass" not in out
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_cls_pooling_candidate_fails_naming_the_task_and_the_drop(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = gate(capsys, "--baseline", runs["sbert"], "--candidate", runs["cls"])
    assert code == 1, out + err
    assert "## evalkit gate: ❌ regression" in out
    assert f"STSBenchmark ({CLS}): main score dropped by 8.5" in out
    assert "(82.03 → 73.50)" in out and "significant" in out
    assert "evalkit: regression: STSBenchmark" in err
    table = [line for line in out.splitlines() if line.startswith("|")]
    assert table[0].startswith("| task | metric | baseline | candidate | Δ | p |") and set(table[1]) <= set("|-: ")
    assert "82.03 [" in table[2] and "73.50 [" in table[2] and "❌" in table[2]


def test_the_same_encoder_against_itself_passes(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = gate(capsys, "--baseline", runs["sbert"], "--candidate", runs["sbert"])
    assert code == 0 and "✅ pass" in out and "+0.00 [+0.00, +0.00]" in out


def test_a_change_of_batch_size_is_noise_and_passes(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    base = next(iter(ResultStore(runs["sbert"])))
    cand = next(iter(ResultStore(runs["batch"])))
    assert cand.encoder != base.encoder  # different specs, paired because each side holds one encoder
    assert abs(cand.main_score - base.main_score) < 0.002  # type: ignore[operator]
    code, out, err = gate(capsys, "--baseline", runs["sbert"], "--candidate", runs["batch"])
    assert code == 0, out + err
    assert "✅ pass" in out and "batch_size=8" in out


def test_the_same_run_repeated_passes(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = gate(capsys, "--baseline", runs["base-static"], "--candidate", runs["static"], "--rules", REPO / "rules" / "ci.toml")
    assert code == 0, out + err
    assert "✅ pass" in out


def test_a_drop_beyond_the_rule_that_is_not_significant_passes_with_a_note(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two different encoders 1.3 points apart on 1,379 pairs: more than max_drop, but the paired test cannot tell."""
    baseline = stsb_only(POOLING, tmp_path / "layer3", "hf:all-MiniLM-L6-v2?layer=3&pooling=mean")
    code, out, err = gate(capsys, "--baseline", baseline, "--candidate", runs["base-static"])
    assert code == 0, out + err
    assert "drop of 1.29 points is within noise (paired bootstrap p = 0.5" in out
    strict = tmp_path / "strict.toml"
    strict.write_text("[defaults]\nrequire_significance = false\n", encoding="utf-8")
    code, out, _ = gate(capsys, "--baseline", baseline, "--candidate", runs["base-static"], "--rules", strict)
    assert code == 1 and "main score dropped by 1.29 points" in out


def test_match_pairs_two_specs_in_multi_encoder_folders(runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    candidate = tmp_path / "candidate"
    shutil.copytree(runs["both"], candidate)
    shutil.copytree(runs["cls"], candidate, dirs_exist_ok=True)
    code, out, err = gate(capsys, "--baseline", runs["both"], "--candidate", candidate)
    assert_input_error(code, out, err, f"candidate encoder(s) with no baseline: {CLS}", "--match")
    # STATIC pairs with itself; the match pairs the MiniLM recipes: a regression
    code, out, err = gate(capsys, "--baseline", runs["both"], "--candidate", candidate, "--match", f"{SBERT}={CLS}")
    assert code == 2, "sbert is still in the candidate, unpaired"
    shutil.rmtree(ResultStore(candidate).path_for(SBERT, "STSBenchmark", "test").parent)
    code, out, err = gate(capsys, "--baseline", runs["both"], "--candidate", candidate, "--match", f"{SBERT}={CLS}")
    assert code == 1, out + err
    assert out.count(f"| {CLS} |") == 1 and out.count(f"| {STATIC} |") == 1


def test_throughput_rule_fails_a_slower_candidate(runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text("[defaults]\nmax_drop = 100\nmax_throughput_drop = 0.5\n", encoding="utf-8")
    code, out, err = gate(capsys, "--baseline", runs["base-static"], "--candidate", runs["batch"], "--rules", rules)
    assert code == 1, out + err  # MiniLM is far slower than a static model
    assert "throughput dropped by" in out and "allowed 50 %" in out
    # a pooling whose vectors came from a sibling's forward pass has no speed of its own: not comparable
    code, out, err = gate(capsys, "--baseline", runs["base-static"], "--candidate", runs["cls"], "--rules", rules)
    assert_input_error(code, out, err, "the rules check throughput but the candidate result has no sentences/s")


# --- inputs that cannot be compared: exit 2, one line, never a pass -------------------------------


def copy_baseline(tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(BASELINE, target, ignore=shutil.ignore_patterns("*.md"))
    return target


def edit(path: Path, **changes: object) -> None:
    """A hand edit: the sealed interval no longer vouches for the file, so it goes (readers redraw it)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    data.pop("ci", None)
    data.update(changes)
    path.write_text(json.dumps(data), encoding="utf-8")


def a_cell(folder: Path, encoder: str = SBERT, task: str = "STSBenchmark") -> Path:
    return ResultStore(folder).path_for(encoder, task, "test")


def test_missing_cells_are_an_input_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    candidate = copy_baseline(tmp_path)
    a_cell(candidate).unlink()
    code, out, err = gate(capsys, "--baseline", BASELINE, "--candidate", candidate)
    assert_input_error(code, out, err, "different tasks", f"candidate {SBERT} lacks STSBenchmark/test")


def test_different_tasks_are_an_input_error(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = gate(capsys, "--baseline", BASELINE, "--candidate", runs["both"])
    assert_input_error(code, out, err, "different tasks", "lacks AmazonCounterfactualClassification/test")


def test_unknown_schema_version_is_an_input_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    candidate = copy_baseline(tmp_path)
    edit(a_cell(candidate), schema_version=99)
    code, out, err = gate(capsys, "--baseline", BASELINE, "--candidate", candidate)
    assert_input_error(code, out, err, "schema_version", "99", "STSBenchmark.test.json")


def test_truncated_result_file_is_an_input_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    candidate = copy_baseline(tmp_path)
    path = a_cell(candidate)
    path.write_text(path.read_text(encoding="utf-8")[:500], encoding="utf-8")
    code, out, err = gate(capsys, "--baseline", BASELINE, "--candidate", candidate)
    assert_input_error(code, out, err, "not valid JSON", str(path))


def test_different_data_is_an_input_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The candidate scored the first 1,000 STS-B pairs only: a consistent file, but not the same data."""
    from evalkit.stats import spearman

    candidate = copy_baseline(tmp_path)
    path = a_cell(candidate)
    data = json.loads(path.read_text(encoding="utf-8"))
    gold, cosine = data["units"]["gold"][:1000], data["units"]["cosine"][:1000]
    score = spearman(gold, cosine)
    scores = {**data["scores"], "cosine_spearman": score, "spearman": score}
    edit(path, n_units=1000, units={"gold": gold, "cosine": cosine}, main_score=score, scores=scores, ci={})
    code, out, err = gate(capsys, "--baseline", BASELINE, "--candidate", candidate)
    assert_input_error(code, out, err, "different data", "number of units (1379 vs 1000)", "--allow-data-change")
    code, out, err = gate(capsys, "--baseline", BASELINE, "--candidate", candidate, "--allow-data-change")
    assert code in (0, 1) and "the bootstrap test is unpaired" in out, out + err


def test_a_tampered_main_score_is_an_input_error_not_a_pass(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """CLS pooling's 73.50 edited up to 82.03 would pass; its own per-unit outcomes give it away."""
    candidate = tmp_path / "forged"
    shutil.copytree(runs["cls"], candidate)
    path = next(candidate.glob("*/*.json"))
    data = json.loads(path.read_text(encoding="utf-8"))
    edit(path, main_score=0.8203, scores={**data["scores"], "cosine_spearman": 0.8203})
    code, out, err = gate(capsys, "--baseline", runs["sbert"], "--candidate", candidate)
    assert_input_error(code, out, err, str(path), "field 'main_score'", "disagrees with the 0.734996")


def test_a_misspelt_task_rule_is_an_input_error_not_a_pass(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text('[defaults]\nmax_drop = 60\n\n[task."STSBenchmrak"]\nmax_drop = 1\n', encoding="utf-8")
    code, out, err = gate(capsys, "--baseline", runs["sbert"], "--candidate", runs["cls"], "--rules", rules)
    assert_input_error(code, out, err, f"{rules}:4", "task.STSBenchmrak", "did you mean 'STSBenchmark'?")
    rules.write_text('[defaults]\nmax_drop = 60\n\n[task."stsbenchmark"]\nmax_drop = 1\n', encoding="utf-8")
    code, out, _ = gate(capsys, "--baseline", runs["sbert"], "--candidate", runs["cls"], "--rules", rules)
    assert code == 1 and "rule allows 1" in out


def test_fresh_results_carry_the_data_identity(runs: dict[str, Path]) -> None:
    """Fresh runs of one task agree on task_hash and data_hash whatever the encoder, and with the committed baseline's."""
    fresh = [next(iter(ResultStore(runs[name]))) for name in ("batch", "static", "sbert")]
    assert all(r.task_hash and r.data_hash for r in fresh)
    assert len({(r.task_hash, r.data_hash) for r in fresh}) == 1


def test_failed_baseline_cell_is_an_input_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    baseline = copy_baseline(tmp_path)
    edit(a_cell(baseline), status="failed", main_score=None, scores={}, error="RuntimeError: out of memory")
    code, out, err = gate(capsys, "--baseline", baseline, "--candidate", BASELINE)
    assert_input_error(code, out, err, "baseline cell", "failed", "out of memory")


def test_failed_candidate_cell_is_a_regression(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    candidate = copy_baseline(tmp_path)
    edit(a_cell(candidate), status="failed", main_score=None, scores={}, error="RuntimeError: out of memory")
    code, out, _ = gate(capsys, "--baseline", BASELINE, "--candidate", candidate)
    assert code == 1 and "the candidate cell failed: RuntimeError: out of memory" in out


def test_missing_or_empty_folders_are_input_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert_input_error(*gate(capsys, "--baseline", BASELINE, "--candidate", tmp_path / "nope"), "candidate folder does not exist")
    (tmp_path / "empty").mkdir()
    assert_input_error(*gate(capsys, "--baseline", tmp_path / "empty", "--candidate", BASELINE), "baseline folder holds no result files")


def test_bad_rules_are_input_errors_naming_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = tmp_path / "rules.toml"
    cases = {
        "[defaults]\nmax_dorp = 1\n": ("defaults.max_dorp", "did you mean 'max_drop'"),
        '[task."STSBenchmark"]\nmax_drop = -1\n': ("task.STSBenchmark.max_drop", "greater than or equal to 0"),
        "[task_type.sts]\nrequire_significance = 'yes'\n": ("task_type.sts.require_significance", "valid boolean"),
        "[bootstrap]\nn_boot = 5\n": ("bootstrap.n_boot", "between 100"),
        "[defaults\n": ("not valid TOML",),
    }
    for text, fragments in cases.items():
        rules.write_text(text, encoding="utf-8")
        assert_input_error(*gate(capsys, "--baseline", BASELINE, "--candidate", BASELINE, "--rules", rules), str(rules), *fragments)


def test_significance_without_units_is_an_input_error(runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    candidate = tmp_path / "no-units"
    shutil.copytree(runs["cls"], candidate)
    path = next(candidate.glob("*/*.json"))
    edit(path, units={}, ci={})
    code, out, err = gate(capsys, "--baseline", runs["sbert"], "--candidate", candidate)
    assert_input_error(code, out, err, "the candidate result of", "has no per-unit outcomes", "re-run the candidate")
    # both sides without units (e.g. MTEB imports): a drop beyond the rule needs the test, which is impossible
    baseline = tmp_path / "no-units-base"
    shutil.copytree(runs["sbert"], baseline)
    edit(next(baseline.glob("*/*.json")), units={}, ci={})
    code, out, err = gate(capsys, "--baseline", baseline, "--candidate", candidate)
    assert_input_error(code, out, err, "needs a significance test", "no per-unit outcomes", "require_significance = false")


def test_a_bad_match_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = gate(capsys, "--baseline", BASELINE, "--candidate", BASELINE, "--match", "sbert:nope=static:nope")
    assert_input_error(code, out, err, "--match", "does not name")


# --- the pytest plugin ------------------------------------------------------------------------------


def test_pytest_plugin_option_and_fixture(runs: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "test_model.py").write_text(
        "def test_candidate_is_no_worse(evalkit_gate):\n"
        f"    evalkit_gate({str(runs['sbert'])!r}, {str(runs['batch'])!r})\n\n"
        "def test_cls_is_caught(evalkit_gate):\n"
        f"    evalkit_gate({str(runs['sbert'])!r}, {str(runs['cls'])!r})\n",
        encoding="utf-8",
    )
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path), str(tmp_path)]
    result = subprocess.run(
        [*command, "--evalkit-gate", str(runs["sbert"]), "--evalkit-candidate", str(runs["cls"])],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "2 failed, 1 passed" in result.stdout
    assert "FAILED test_model.py::test_cls_is_caught" in result.stdout and "evalkit-gate" in result.stdout
    assert "main score dropped by 8.5" in result.stdout
