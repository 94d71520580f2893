"""A sharper gate: multiple-comparison correction, non-inferiority, and the drill-down of failed checks.

Adjusted p-values are checked against hand-computed Holm and Benjamini-Hochberg values
and against their defining properties; the verdicts on real STS-B runs (``tfidf`` and
the static model, full and ``--limit 60``) and on real-shaped synthetic results whose
per-unit outcomes are perturbed and rescored consistently (the gate refuses a main
score that disagrees with its units).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evalkit.cli import main as evalkit
from evalkit.gate.correction import adjust, benjamini_hochberg, holm
from evalkit.results import CellResult, ResultStore
from evalkit.stats import spearman
from tests.test_gate_refusals import folder, refused, sts_cell

FAST = "[bootstrap]\nn_boot = 1000\n"


def perturb(cell: CellResult, sigma: float, seed: int) -> CellResult:
    """The same cell with noise added to its cosines, and its main score rescored from them (a consistent result)."""
    cosine = np.asarray(cell.units["cosine"], dtype=np.float64)
    noisy = np.clip(cosine + sigma * np.random.default_rng(seed).normal(size=cosine.size), -1, 1).astype(np.float32).tolist()
    main = spearman(np.asarray(cell.units["gold"]), np.asarray(noisy))
    units = {**cell.units, "cosine": noisy}
    update = {"units": units, "main_score": main, "scores": {**cell.scores, "cosine_spearman": main}, "ci": {}}  # interval: recomputed
    return cell.model_copy(update=update)


def gate(capsys: pytest.CaptureFixture[str], base: Path, cand: Path, rules: str | None, *flags: str | Path) -> tuple[int, str, str]:
    args = ["gate", "--baseline", str(base), "--candidate", str(cand), *map(str, flags)]
    if rules is not None:
        path = base.parent / "rules.toml"
        path.write_text(rules, encoding="utf-8")
        args += ["--rules", str(path)]
    code = evalkit(args)
    out = capsys.readouterr()
    return code, out.out, out.err


# --- adjusted p-values -------------------------------------------------------------------------------


def test_holm_and_bh_equal_hand_computed_values() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    # Holm, sorted 0.005, 0.01, 0.03, 0.04: ×4, ×3, ×2, ×1 = 0.02, 0.03, 0.06, 0.04 → running max 0.02, 0.03, 0.06, 0.06
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # BH: 0.005·4/1, 0.01·4/2, 0.03·4/3, 0.04·4/4 = 0.02, 0.02, 0.04, 0.04 → running min from the top: unchanged
    assert benjamini_hochberg(p) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert adjust(p, "none") == p
    assert holm([0.6, 0.6]) == [1.0, 1.0] and holm([]) == [] and benjamini_hochberg([]) == []
    with pytest.raises(ValueError):
        adjust(p, "bonferoni")


@settings(max_examples=80, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=30))
def test_adjusted_p_values_are_monotone_at_least_raw_and_bh_at_most_holm(p: list[float]) -> None:
    m = len(p)
    h, b = holm(p), benjamini_hochberg(p)
    for raw, hp, bp in zip(p, h, b, strict=True):
        assert raw - 1e-12 <= bp <= hp + 1e-12 <= 1 + 1e-12  # raw ≤ BH ≤ Holm ≤ 1
        assert hp <= min(1.0, m * raw) + 1e-12  # Holm never exceeds Bonferroni
    order = np.argsort(p, kind="stable")
    for adjusted in (h, b):
        ranked = np.asarray(adjusted)[order]
        assert np.all(np.diff(ranked) >= -1e-12)  # a smaller raw p never gets a larger adjusted p


# --- correction in the gate ----------------------------------------------------------------------------


def scaled_cell(task: str, n: int, seed: int) -> CellResult:
    """A real-shaped STS cell of middling quality: cosine = gold + noise, scaled into [-1, 1]."""
    gold = np.random.default_rng([seed, n]).uniform(0, 1, n).round(6)
    raw = 0.5 * gold + 0.5 * np.random.default_rng([seed, n, 1]).normal(0, 1, n)
    cosine = (raw / (1.01 * np.abs(raw).max())).astype(np.float32)
    main = spearman(gold, cosine)
    return sts_cell(
        task,
        0.9,
        n=n,
        seed=seed,
        units={"gold": gold.tolist(), "cosine": cosine.tolist()},
        main_score=main,
        scores={"cosine_spearman": main},
    )


@pytest.fixture
def ten_tasks(tmp_path: Path) -> tuple[Path, Path]:
    """Ten STS tasks; the candidate is the baseline except T0, whose cosines are noisier (raw paired p ≈ 0.019)."""
    base = [scaled_cell(f"T{i}", 300, i) for i in range(10)]
    cand = [perturb(base[0], 0.15, 4), *base[1:]]
    return folder(tmp_path / "base", base), folder(tmp_path / "cand", cand)


def test_a_drop_that_fails_alone_passes_under_holm_and_bh_over_ten_checks(
    ten_tasks: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    rules = FAST + "[defaults]\nmax_drop = 0.5\n"
    code, out, err = gate(capsys, *ten_tasks, rules)
    assert code == 1, out + err
    assert "T0 (tfidf:lexical): main score dropped by 6.87 points" in out and "p adj." not in out
    for method, name in (("holm", "Holm"), ("bh", "Benjamini-Hochberg")):
        code, out, err = gate(capsys, *ten_tasks, rules + f'[gate]\ncorrection = "{method}"\n')
        assert code == 0, out + err
        assert f"Multiple comparisons: {name} over a family of 10 check(s)" in out
        row = next(line for line in out.splitlines() if line.startswith("| T0 |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        head = [c.strip() for c in next(line for line in out.splitlines() if line.startswith("| task |")).strip("|").split("|")]
        raw, adjusted = float(cells[head.index("p")]), cells[head.index("p adj.")]
        assert 0.005 < raw < 0.05 and adjusted == "0.19 ✗", row  # 10 × 0.019 (every other p is 1)
        assert "✅ pass (borderline)" in row
        assert "significant alone (paired bootstrap p = 0.019) but not after the correction" in out
        assert f"{method} over 10 checks: adjusted p 0.19" in out
        assert "Drill-down: T0, borderline" in out  # it passed only because of the correction
        assert "texts not shown: task 'T0' is not available here" in out


# --- non-inferiority -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stsb(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real STS-B runs: tfidf and the static model on the full test set, tfidf on a 60-pair subset."""
    root = tmp_path_factory.mktemp("sharp")
    common = ["--no-progress", "--no-report", "-t", "STSBenchmark"]
    assert evalkit(["run", "-e", "tfidf:lexical", "-e", "static:tokenlearn-static", "-o", str(root / "full"), *common]) == 0
    assert evalkit(["run", "-e", "tfidf:lexical", "--limit", "60", "-o", str(root / "small"), *common]) == 0
    return {"full": root / "full", "small": root / "small"}


def one(root: Path, encoder: str = "tfidf:lexical") -> CellResult:
    return next(r for r in ResultStore(root) if r.encoder == encoder)


def test_non_inferiority_fails_a_tiny_test_set_and_passes_a_big_one(
    stsb: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same small perturbation: 60 pairs cannot show it is under 1 point, 1,379 pairs can."""
    verdicts = {}
    for size in ("small", "full"):
        cell = one(stsb[size])
        base, cand = folder(tmp_path / size / "base", [cell]), folder(tmp_path / size / "cand", [perturb(cell, 0.01, 0)])
        code, out, err = gate(capsys, base, cand, FAST + '[defaults]\nmax_drop = 1.0\nmode = "non_inferiority"\n')
        verdicts[size] = code, out, err
        if size == "small":  # the default mode passes it: the drop is under the margin and not significant
            assert gate(capsys, base, cand, FAST + "[defaults]\nmax_drop = 1.0\n")[0] == 0
    code, out, err = verdicts["small"]
    assert code == 1, out + err
    assert "non-inferiority not shown: the drop is 0.11 points" in out
    assert "upper 95 % bound (paired bootstrap) is 1.41, not under the margin 1" in out
    assert "non-inferior: drop bound < 1 (upper 95 % bound 1.41)" in out
    assert "failed: the 5 pair(s) of 60 that hurt most" in out
    code, out, err = verdicts["full"]
    assert code == 0, out + err
    assert "non-inferior: the drop's upper 95 % bound is 0.12, under the margin 1" in out


def test_non_inferiority_under_holm_uses_the_bonferroni_level(ten_tasks: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    rules = FAST + '[defaults]\nmax_drop = 100\nmode = "non_inferiority"\n[gate]\ncorrection = "holm"\n'
    code, out, err = gate(capsys, *ten_tasks, rules)
    assert code == 0, out + err
    assert out.count("(upper 99.5 % bound") == 10  # one-sided 1 − 0.05/10 for each of the ten checks


def test_non_inferiority_without_units_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = folder(tmp_path / "base", [sts_cell("T1", 0.9, units={})])
    cand = folder(tmp_path / "cand", [sts_cell("T1", 0.9, seed=0, units={})])
    code, out, err = gate(capsys, base, cand, '[task_type.sts]\nmode = "non_inferiority"\n')
    refused(code, out, err, "T1", "non-inferiority cannot be shown", "no per-unit outcomes")


@pytest.mark.parametrize(
    ("rules", "line", "where", "fragment"),
    [
        ('[gate]\ncorrection = "holms"\n', 2, "gate.correction", "holm"),
        ('[defaults]\nmax_drop = 1\n\n[task_type.sts]\nmode = "noninferiority"\n', 5, "task_type.sts.mode", "non_inferiority"),
        ("[gate]\ncorection = 'holm'\n", 2, "gate.corection", "correction"),
    ],
)
def test_a_bad_correction_or_mode_is_one_line_naming_file_line_and_field(
    ten_tasks: tuple[Path, Path], capsys: pytest.CaptureFixture[str], rules: str, line: int, where: str, fragment: str
) -> None:
    code, out, err = gate(capsys, *ten_tasks, rules)
    text = refused(code, out, err, "rules.toml", where, fragment)
    assert f"rules.toml:{line}" in text or f"line {line}" in text, text


# --- drill-down ----------------------------------------------------------------------------------------


def test_drilldown_lists_the_units_that_hurt_most_with_texts_and_both_scores(
    stsb: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = folder(tmp_path / "base", [one(stsb["full"])])
    cand = folder(tmp_path / "cand", [one(stsb["full"], "static:tokenlearn-static")])
    summary, page = tmp_path / "gate.md", tmp_path / "gate.html"
    code, out, err = gate(capsys, base, cand, None, "--summary", summary, "--html", page)
    assert code == 1, out + err
    assert summary.read_text(encoding="utf-8") == out  # the terminal and the PR comment say the same
    assert "<details>\n<summary>Drill-down: STSBenchmark, failed: the 5 pair(s) of 1,379 that hurt most</summary>" in out
    rows = [line for line in out.split("<details>")[1].splitlines() if line.startswith("| pair ") and not line.startswith("| pair |")]
    assert len(rows) == 5
    # the worst pair, checked against the result files and the task's data
    b, c = one(stsb["full"]), one(stsb["full"], "static:tokenlearn-static")
    from evalkit.adapters import adapter_for
    from evalkit.taskspec import TaskIndex

    data = adapter_for("sts").load(TaskIndex().get("STSBenchmark"), "test")
    unit, text, reference, base_score, cand_score = (cell.strip() for cell in rows[0].strip("|").split(" | "))
    i = int(unit.split()[1]) - 1
    assert float(base_score) == pytest.approx(b.units["cosine"][i], abs=5e-4)
    assert float(cand_score) == pytest.approx(c.units["cosine"][i], abs=5e-4)
    assert reference == f"gold {b.units['gold'][i]:.2f}"
    assert data.sentences1[i][:20] in text and data.sentences2[i][:20] in text
    html = page.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and '<details class="drilldown" open>' in html
    assert "the 10 pair(s) of 1,379 that hurt most" in html and html.count('<td class="texts">') == 10
    assert "<script" not in html


HOSTILE = [
    "<script>alert(1)</script> a | b",
    "line one\nline two | `code` **bold**",
    "</details><img src=x onerror=alert(2)>",
    "plain text about cats",
    "a dog runs in the park",
    "\x1b[31mred\x1b[0m and &amp; entity",
]


def test_hostile_texts_are_escaped_in_markdown_and_html(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    tasks = tmp_path / "tasks"
    (tasks / "data").mkdir(parents=True)
    rows = [{"sentence1": HOSTILE[i % 6], "sentence2": HOSTILE[(i * 5 + 1) % 6] + f" {i}", "score": i % 6} for i in range(24)]
    (tasks / "data" / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (tasks / "hostile.toml").write_text(
        'name = "Hostile|Task"\ntype = "sts"\nsplit = "test"\n[files]\ntest = "data/test.jsonl"\n'
        "[settings]\nmin_score = 0\nmax_score = 5\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("EVALKIT_TASKS_PATH", str(tasks))
    run = tmp_path / "run"
    assert evalkit(["run", "-e", "tfidf:lexical", "-t", "Hostile|Task", "-o", str(run), "--no-progress", "--no-report"]) == 0
    capsys.readouterr()
    cell = one(run)
    perfect = perturb(cell.model_copy(update={"units": {**cell.units, "cosine": cell.units["gold"]}}), 0.0, 0)  # ranks as gold
    base, cand = folder(tmp_path / "base", [perfect]), folder(tmp_path / "cand", [cell])
    page = tmp_path / "gate.html"
    code, out, err = gate(capsys, base, cand, "[defaults]\nmax_drop = 0\nrequire_significance = false\n", "--html", page)
    assert code == 1, out + err
    drill = out.split("<details>")[1]
    assert "texts not shown" not in drill
    assert "<script" not in out and "<img" not in out and "\x1b" not in out and "</details><" not in out
    assert "&lt;script&gt;alert(1)&lt;/script&gt; a \\| b" in drill
    table = [line for line in drill.splitlines() if line.startswith("| pair ") and not line.startswith("| pair |")]
    assert len(table) == 5 and all(line.endswith(" |") and line.count(" | ") == 4 for line in table)  # no pipe or newline escapes a cell
    assert "line one\\\\x0aline two \\| \\`code\\` \\*\\*bold\\*\\*" in drill  # the newline shown, never a line break
    html = page.read_text(encoding="utf-8")
    assert "<script" not in html and "<img" not in html and "\x1b" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; a | b" in html and "line one\\x0aline two | `code` **bold**" in html
    assert "&lt;/details&gt;&lt;img src=x onerror=alert(2)&gt;" in html
