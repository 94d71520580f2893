"""``evalkit bench --compare`` and the gate's ``[speed]`` rules, on real encoders.

Timing tests on a shared 2-core machine must not flake. There, one slot in a round can run
10× slower than the next (other jobs take the cores, torch's threads wait at barriers), so:
A vs A is judged at a 99.9 % level over 16 rounds after 3 warm-up passes (a lone outlier
round then cannot pull the whole interval off 1.0), and the injected slowdown is a large one
(a 16× longer token budget on long abstracts, 8 rounds), not thread halving, whose effect on
two busy cores ranges from ~2× to nothing.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evalkit.cli import main
from evalkit.errors import DataError, EvalkitError
from evalkit.gate.speed import judge, speed_checks
from evalkit.report.gate_summary import render_speed_markdown
from evalkit.schemas.base import parse
from evalkit.schemas.rules import RulesFile
from evalkit.schemas.speed import SpeedComparison, SpeedRules
from evalkit.spec import EncoderSpec
from evalkit.speed import CompareConfig, compare, comparison_files, expanded_level, ratio_interval, read_comparison
from tests.conftest import sts_sentences

MINILM = "hf:all-MiniLM-L6-v2?pooling=mean"
STATIC = "static:tokenlearn-static"
STATIC_NORM = "static:tokenlearn-static?normalize=true"


def _short_texts(n: int) -> list[str]:
    return sts_sentences(n)[:n]


def _abstracts(n: int) -> list[str]:
    from evalkit.samples import bench_texts

    return [t for t in bench_texts() if len(t.split()) > 150][:n]


# --- the measurement ---------------------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_a_vs_a_ratio_interval_contains_one() -> None:
    """The calibration case: one spec against itself gives a ratio whose interval holds 1 (ABBA/BAAB cancels drift)."""
    import torch

    before = torch.get_num_threads()
    spec = EncoderSpec.parse(MINILM)
    config = CompareConfig(rounds=16, warmup=3, repeats=1, level=0.999, memory_probes=0)
    result = compare(spec, spec, _short_texts(8), config)
    r = result.ratio
    assert r.low <= 1.0 <= r.high, (r, result.baseline_sentences_per_second, result.candidate_sentences_per_second)
    assert r.low <= r.estimate <= r.high
    assert result.threads == before and torch.get_num_threads() == before  # recorded budget, and restored
    assert result.devices == {"baseline": "cpu", "candidate": "cpu"}
    assert len(result.baseline_sentences_per_second) == 16 and result.memory is None


@pytest.mark.timeout(300)
def test_injected_slowdown_is_detected() -> None:
    """A candidate doing ~16× the work per text (max_length 256 vs 16 on long abstracts) is a slowdown that excludes 1."""
    base = EncoderSpec.parse(f"{MINILM}&max_length=16")
    cand = EncoderSpec.parse(f"{MINILM}&max_length=256")
    result = compare(base, cand, _abstracts(4), CompareConfig(rounds=8, warmup=1, repeats=1, memory_probes=0))
    assert result.ratio.high < 0.85, result.ratio
    assert result.ratio.estimate < 0.6


@pytest.fixture(scope="module")
def static_at_one_thread() -> SpeedComparison:
    """A vs A on the cheapest encoder at a budget of 1 thread, without memory probes."""
    spec = EncoderSpec.parse(STATIC)
    return compare(spec, spec, _short_texts(8), CompareConfig(rounds=4, warmup=0, repeats=5, threads=1, memory_probes=0))


def test_thread_budget_is_applied_and_checked(static_at_one_thread: SpeedComparison) -> None:
    """``threads`` sets the budget both sides run at, and a side found at another count is refused, not timed."""
    import torch

    from evalkit.speed import check_budget, thread_budget

    before = torch.get_num_threads()
    assert static_at_one_thread.threads == 1 and static_at_one_thread.environment["torch_threads"] == 1

    class Pinned:
        threads = 3  # a runtime session fixed at load with another count

    try:
        budget = thread_budget(1)
        with pytest.raises(EvalkitError, match="3 threads"):
            check_budget(budget, "candidate", Pinned())
    finally:
        torch.set_num_threads(before)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0.5, 2.0), min_size=4, max_size=12), st.integers(0, 2**32 - 1))
def test_ratio_interval_is_deterministic_and_brackets_the_geometric_mean(ratios: list[float], seed: int) -> None:
    base = [100.0] * len(ratios)
    cand = [100.0 * r for r in ratios]
    a = ratio_interval(base, cand, 0.95, 500, seed)
    assert a == ratio_interval(base, cand, 0.95, 500, seed)
    geometric = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
    assert math.isclose(a.estimate, geometric, rel_tol=1e-8)
    assert a.low <= a.estimate <= a.high
    assert min(ratios) * (1 - 1e-8) <= a.low and a.high <= max(ratios) * (1 + 1e-8)


def test_expanded_level_widens_small_samples() -> None:
    """Hesterberg's expansion: n = 8 at 95 % takes the 0.6 % / 99.4 % percentiles; large n tends to the nominal level."""
    assert 0.985 < expanded_level(0.95, 8) < 0.992
    assert abs(expanded_level(0.95, 1000) - 0.95) < 0.001


# --- the comparison file -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with one quality cell (tfidf, 40 STS-B pairs) and one speed comparison written by the CLI."""
    root = tmp_path_factory.mktemp("speed")
    assert main(["run", "-e", "tfidf:lexical", "-t", "STSBenchmark", "--limit", "40", "-o", str(root), "--no-progress"]) == 0
    args = ["bench", "--compare", STATIC, STATIC_NORM, "--texts", "32", "--rounds", "4", "--repeats", "5", "--warmup", "1"]
    assert main([*args, "-o", str(root)]) == 0
    return root


def test_comparison_round_trips_through_its_schema(compared: Path) -> None:
    (path,) = comparison_files(compared)
    comparison = read_comparison(path)
    assert comparison == SpeedComparison.model_validate_json(comparison.model_dump_json())
    assert comparison.baseline == STATIC and comparison.candidate == STATIC_NORM
    assert comparison.rounds == 4 and comparison.texts == 32 and comparison.repeats == 5
    assert comparison.memory is not None and comparison.memory.kind.startswith("peak RSS growth")
    assert comparison.memory.baseline_bytes[0] > 0 and comparison.memory.candidate_bytes[0] > 0
    assert comparison.environment["torch_threads"] == comparison.threads
    assert comparison.evalkit_version and comparison.texts_digest


def test_result_readers_ignore_the_comparison(compared: Path) -> None:
    """report, gate and resume read ``<encoder>/<task>.<split>.json`` only; the comparison sits beside those folders."""
    from evalkit.reading import load_results
    from evalkit.results import ResultStore

    results = load_results(compared)
    assert [(r.encoder, r.task) for r in results] == [("tfidf:lexical", "STSBenchmark")]
    assert all("speed-compare" not in str(p) for p in ResultStore(compared).files())
    assert main(["report", str(compared), "-f", "md", "-o", "-"]) == 0
    assert main(["gate", "--baseline", str(compared), "--candidate", str(compared)]) == 0


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda d: d["ratio"].update(low=d["ratio"]["low"] * 0.5), "ratio.low"),
        (lambda d: d["candidate_sentences_per_second"].__setitem__(0, d["candidate_sentences_per_second"][0] * 3), None),
        (lambda d: d["memory"].update(growth=5.0), "memory"),
        (lambda d: d.update(rounds=5), None),
        (lambda d: d.update(speedup=2.0), "speedup"),
    ],
)
def test_an_edited_comparison_is_refused(compared: Path, tmp_path: Path, edit: object, field: str | None) -> None:
    (path,) = comparison_files(compared)
    data = json.loads(path.read_text(encoding="utf-8"))
    edit(data)  # type: ignore[operator]
    copy = tmp_path / path.name
    copy.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(DataError) as info:
        speed_checks(SpeedRules(max_slowdown=0.5), tmp_path, [(STATIC, STATIC_NORM)])
    assert str(copy) in info.value.render()
    if field:
        assert info.value.field is not None and info.value.field.startswith(field)


def test_a_truncated_comparison_is_one_error(compared: Path, tmp_path: Path) -> None:
    (path,) = comparison_files(compared)
    (tmp_path / path.name).write_text(path.read_text(encoding="utf-8")[:100], encoding="utf-8")
    with pytest.raises(DataError, match="not valid JSON"):
        speed_checks(SpeedRules(min_speedup=1.0), tmp_path)


# --- the gate rules ----------------------------------------------------------------------------------

_interval = st.tuples(st.floats(0.01, 20), st.floats(0.01, 20)).map(sorted)
_growth = st.tuples(st.floats(-0.9, 3), st.floats(-0.9, 3)).map(sorted)


@settings(max_examples=200, deadline=None)
@given(
    _interval,
    st.one_of(st.none(), _growth),
    st.one_of(st.none(), st.floats(0.1, 10)),
    st.one_of(st.none(), st.floats(0, 0.99)),
    st.one_of(st.none(), st.floats(0, 2)),
)
def test_a_speed_rule_fails_iff_the_interval_is_wholly_on_the_wrong_side(
    ratio: list[float], memory: list[float] | None, speedup: float | None, slowdown: float | None, growth: float | None
) -> None:
    rules = SpeedRules(min_speedup=speedup, max_slowdown=slowdown, max_memory_growth=growth)
    low, high = ratio
    failures, _ = judge((low, high), None if memory is None else (memory[0], memory[1]), rules)
    expected = [
        speedup is not None and high < speedup,
        slowdown is not None and high < 1 - slowdown,
        growth is not None and memory is not None and memory[0] > growth,
    ]
    assert len(failures) == sum(expected)


def test_speed_checks_pass_and_fail_on_a_real_comparison(compared: Path) -> None:
    (path,) = comparison_files(compared)
    ratio = read_comparison(path).ratio
    passing = speed_checks(SpeedRules(min_speedup=ratio.low * 0.5), compared, [(STATIC, STATIC_NORM)])
    failing = speed_checks(SpeedRules(min_speedup=ratio.high * 2), compared, [(STATIC, STATIC_NORM)])
    assert [c.passed for c in passing] == [True] and [c.passed for c in failing] == [False]
    assert "rule ≥" in failing[0].description and failing[0].description.endswith("FAIL")
    markdown = render_speed_markdown([*passing, *failing])
    assert "✅" in markdown and "❌" in markdown and STATIC_NORM in markdown
    assert speed_checks(SpeedRules(), compared, [("hf:x", "hf:y")]) == []  # no speed rule: nothing read, nothing required


def test_a_speed_rule_without_a_comparison_is_an_input_error(tmp_path: Path, compared: Path) -> None:
    rules = parse(RulesFile, {"speed": {"min_speedup": 2.0}})
    with pytest.raises(DataError) as info:
        speed_checks(rules, tmp_path, [(STATIC, STATIC_NORM)])
    assert info.value.field == "speed" and "no speed comparison" in info.value.render()
    with pytest.raises(DataError) as other:  # a comparison of other specs is no comparison of this pair
        speed_checks(rules, compared, [(MINILM, STATIC_NORM)])
    assert other.value.field == "baseline" and "speed-compare." in other.value.render()


def test_memory_rule_needs_a_memory_measurement(tmp_path: Path, static_at_one_thread: SpeedComparison) -> None:
    from evalkit.speed import write_comparison

    write_comparison(tmp_path, static_at_one_thread)
    with pytest.raises(DataError) as info:
        speed_checks(SpeedRules(max_memory_growth=0.25), tmp_path, [(STATIC, STATIC)])
    assert info.value.field == "memory"


def test_rules_file_speed_table_is_closed() -> None:
    rules = parse(RulesFile, {"speed": {"min_speedup": 2.0, "max_slowdown": 0.1, "max_memory_growth": 0.25}})
    assert rules.speed == SpeedRules(min_speedup=2.0, max_slowdown=0.1, max_memory_growth=0.25)
    with pytest.raises(DataError, match="did you mean 'min_speedup'"):
        parse(RulesFile, {"speed": {"min_sped": 2.0}})
    with pytest.raises(DataError):
        parse(RulesFile, {"speed": {"max_slowdown": 1.5}})


# --- hostile command lines ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--compare", MINILM, MINILM, "--rounds", "2"], "--rounds"),
        (["--compare", MINILM, MINILM, "--rounds", "many"], "--rounds"),
        (["--compare", MINILM, MINILM, "--level", "1.5"], "--level"),
        (["--compare", MINILM, MINILM, "--threads", "0"], "--threads"),
        (["--compare", MINILM, MINILM, "--n-boot", "5"], "--n-boot"),
        (["--compare", MINILM, "hf:all-MiniLM-L6-v2?poolng=mean"], "poolng"),
        (["--compare", "nosuchbackend:m", MINILM], "nosuchbackend"),
        (["--compare", MINILM, MINILM, "-e", STATIC], "-e"),
        (["--compare", MINILM, MINILM, "--batch-size", "8"], "--batch-size"),
        (["--compare", MINILM], "--compare"),
        ([], "--compare"),
    ],
)
def test_bad_compare_inputs_are_one_line_before_any_model_loads(
    extra: list[str], needle: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = main(["bench", *extra, "-o", str(tmp_path / "out")])
    except SystemExit as exc:  # argparse's own refusals (a missing second spec) exit through the parser, also with 2
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and needle in err and "Traceback" not in err
    assert "loading" not in err and not (tmp_path / "out").exists()


# --- the gate, end to end: quality and speed in one command --------------------------------------


@pytest.fixture(scope="module")
def quantisation_pr(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A baseline folder (STATIC on 40 STS-B pairs) and a candidate folder (STATIC_NORM, plus its speed comparison)."""
    root = tmp_path_factory.mktemp("pr")
    base, cand = root / "base", root / "cand"
    for spec, folder in ((STATIC, base), (STATIC_NORM, cand)):
        assert main(["run", "-e", spec, "-t", "STSBenchmark", "--limit", "40", "-o", str(folder), "--no-progress", "--no-report"]) == 0
    args = ["bench", "--compare", STATIC, STATIC_NORM, "--texts", "32", "--rounds", "4", "--repeats", "5", "--warmup", "1"]
    assert main([*args, "--memory-probes", "0", "-o", str(cand)]) == 0
    return base, cand


def gate_with(tmp_path: Path, folders: tuple[Path, Path], rules: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    (tmp_path / "rules.toml").write_text(rules, encoding="utf-8")
    base, cand = folders
    args = ["gate", "--baseline", str(base), "--candidate", str(cand), "--match", f"{STATIC}={STATIC_NORM}"]
    code = main([*args, "--rules", str(tmp_path / "rules.toml"), "--html", str(tmp_path / "gate.html")])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_the_gate_judges_quality_and_speed_in_one_command(
    tmp_path: Path, quantisation_pr: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    (path,) = comparison_files(quantisation_pr[1])
    ratio = read_comparison(path).ratio
    code, out, err = gate_with(tmp_path, quantisation_pr, f"[speed]\nmin_speedup = {ratio.low * 0.5:.4f}\n", capsys)
    assert code == 0, out + err
    assert "### Speed" in out and "✅" in out and "Traceback" not in err
    assert "Speed (paired" in (tmp_path / "gate.html").read_text(encoding="utf-8")

    code, out, err = gate_with(tmp_path, quantisation_pr, f"[speed]\nmin_speedup = {ratio.high * 2:.4f}\n", capsys)
    assert code == 1, out + err
    regressions = [line for line in err.splitlines() if line.startswith("evalkit: regression:")]
    assert len(regressions) == 1 and STATIC_NORM in regressions[0] and "min_speedup" in regressions[0]
    assert "❌" in out


def test_the_gate_refuses_a_speed_rule_it_cannot_check(
    tmp_path: Path, quantisation_pr: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    base, cand = quantisation_pr
    bare = tmp_path / "bare"
    bare.mkdir()
    for folder in cand.iterdir():  # the candidate's quality cells, without its speed comparison
        if folder.is_dir():
            (bare / folder.name).mkdir()
            for file in folder.iterdir():
                (bare / folder.name / file.name).write_bytes(file.read_bytes())
    code, _out, err = gate_with(tmp_path, (base, bare), "[speed]\nmax_slowdown = 0.5\n", capsys)
    lines = [line for line in err.splitlines() if line.startswith("evalkit: error:")]
    assert code == 2 and len(lines) == 1 and "speed" in lines[0] and "Traceback" not in err, err


def test_a_spec_threads_option_runs_the_forward_passes_at_that_count_and_is_recorded() -> None:
    """``threads=1`` is a deliberate per-encoder budget: applied inside encode only, restored after, named in the comparison."""
    import torch

    from evalkit.encoders import load_encoder

    before = torch.get_num_threads()
    encoder: Any = load_encoder(EncoderSpec.parse(f"{MINILM}&threads=1"))
    seen: list[int] = []
    model = encoder.backbone.model
    handle = model.register_forward_pre_hook(lambda *_: seen.append(torch.get_num_threads()))
    try:
        plain: Any = load_encoder(EncoderSpec.parse(MINILM))
        texts = _short_texts(6)
        vectors = encoder.encode(texts)
        assert seen and set(seen) == {1} and torch.get_num_threads() == before
        assert np.allclose(vectors, plain.encode(texts), atol=1e-5)  # same vectors, only the threads differ
        plain.close()
    finally:
        handle.remove()
        encoder.close()
    config = CompareConfig(rounds=4, warmup=1, repeats=1, memory_probes=0)
    result = compare(EncoderSpec.parse(MINILM), EncoderSpec.parse(f"{MINILM}&threads=1"), _short_texts(4), config)
    assert result.declared_threads == {"candidate": 1} and result.threads == before


def test_a_comparison_is_not_written_into_an_encoders_folder(compared: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Readers take every .json in ``ROOT/<encoder>/`` for a cell: writing there would break the results folder."""
    (encoder_folder,) = [p for p in compared.iterdir() if p.is_dir()]
    code = main(["bench", "--compare", STATIC, STATIC, "--texts", "8", "--rounds", "4", "-o", str(encoder_folder)])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("evalkit: error:")]
    assert code == 2 and len(lines) == 1 and "'-o'" in lines[0] and "Traceback" not in err
    assert not list(encoder_folder.glob("speed-compare.*"))


def test_memory_bytes_beyond_any_machine_are_refused_not_a_traceback(compared: Path, tmp_path: Path) -> None:
    (path,) = comparison_files(compared)
    data = json.loads(path.read_text(encoding="utf-8"))
    huge = {"growth": 1e308, "growth_low": 1e308, "growth_high": 1e308}
    data["memory"] = {"kind": "rss", "baseline_bytes": [1], "candidate_bytes": [10**400], **huge}
    (tmp_path / path.name).write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(DataError) as info:
        speed_checks(SpeedRules(max_memory_growth=0.25), tmp_path)
    assert info.value.field is not None and info.value.field.startswith("memory")
