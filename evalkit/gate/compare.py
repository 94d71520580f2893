"""Which cells a gate can compare: encoder pairing (``--match``), tasks, subsets, and data or protocol changes.

Anything that would make a comparison meaningless is a ``DataError`` (exit 2), never a pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from evalkit.errors import DataError, EvalkitError
from evalkit.gate.rules import Rule, Rules
from evalkit.results.schema import CellResult
from evalkit.results.store import limit_of
from evalkit.schemas.base import did_you_mean
from evalkit.spec import EncoderSpec


def canonical(spec: str) -> str:
    try:
        return str(EncoderSpec.parse(spec))
    except EvalkitError:
        return spec.strip()


def split_match(text: str, baseline: Sequence[str], candidate: Sequence[str]) -> tuple[str, str]:
    """``BASE=CAND``: specs contain '=' themselves, so take the split that names an encoder on each side."""
    options = []
    for i, char in enumerate(text):
        if char == "=":
            left, right = canonical(text[:i]), canonical(text[i + 1 :])
            if left in baseline and right in candidate:
                options.append((left, right))
    if len(options) == 1:
        return options[0]
    raise EvalkitError(
        f"--match {text!r} does not name one baseline encoder and one candidate encoder",
        field="--match",
        hint=f"baseline has: {', '.join(baseline)}; candidate has: {', '.join(candidate)}",
    )


def pair_encoders(baseline: Sequence[CellResult], candidate: Sequence[CellResult], match: Sequence[str] = ()) -> list[tuple[str, str]]:
    """Which baseline encoder each candidate encoder is judged against.

    ``--match`` pairs first; a single encoder on each side pairs with the other
    whatever its spec; everything else pairs by identical spec, and anything left
    unpaired on either side is an error (a silently ungated encoder is a pass by omission).
    """
    base = list(dict.fromkeys(r.encoder for r in baseline))
    cand = list(dict.fromkeys(r.encoder for r in candidate))
    pairs = [split_match(m, base, cand) for m in match]
    if not pairs and len(base) == 1 and len(cand) == 1:
        return [(base[0], cand[0])]
    left_b = [b for b in base if b not in {p[0] for p in pairs}]
    left_c = [c for c in cand if c not in {p[1] for p in pairs}]
    pairs += [(b, b) for b in left_b if b in left_c]
    unpaired_b = [b for b in left_b if b not in left_c]
    unpaired_c = [c for c in left_c if c not in left_b]
    if unpaired_b or unpaired_c:
        what = []
        if unpaired_b:
            what.append("baseline encoder(s) with no candidate: " + ", ".join(unpaired_b))
        if unpaired_c:
            what.append("candidate encoder(s) with no baseline: " + ", ".join(unpaired_c))
        raise DataError("; ".join(what), hint="compare different specs with --match BASE_SPEC=CAND_SPEC")
    return pairs


TaskKey = tuple[str, str, int | None]
"""(task, split, subset limit or None): a full run and a --limit run of one task are different checks."""


def cells_by_task(results: Sequence[CellResult], encoder: str) -> dict[TaskKey, CellResult]:
    return {(r.task, r.split, limit_of(r)): r for r in results if r.encoder == encoder}


def kind(limit: int | None) -> str:
    return "the full task" if limit is None else f"a subset (--limit {limit})"


def subset_mismatch(b_cells: Mapping[TaskKey, CellResult], c_cells: Mapping[TaskKey, CellResult]) -> DataError | None:
    """The error for a task the two sides scored on different subsets (one full, one --limit, or two limits), if any."""
    for side, mine, theirs in (("baseline", b_cells, c_cells), ("candidate", c_cells, b_cells)):
        for task, split, limit in sorted(set(mine) - set(theirs), key=str):
            other = [k[2] for k in theirs if k[:2] == (task, split) and k not in mine]
            if other:
                base, cand = (limit, other[0]) if side == "baseline" else (other[0], limit)
                return DataError(
                    f"{task}/{split}: cannot compare {kind(base)} in the baseline with {kind(cand)} in the candidate",
                    hint="a subset score is a smoke test; gate full runs against full runs, or both sides with the same --limit",
                )
    return None


def check_rule_names(rules: Rules, baseline: Sequence[CellResult], candidate: Sequence[CellResult]) -> None:
    """Refuse a ``[task."X"]`` rule for a task neither folder holds: a misspelt rule would silently not apply."""
    tasks = sorted({r.task for r in [*baseline, *candidate]}, key=str.lower)
    known = {t.lower() for t in tasks}
    for key, written in rules.task_names.items():
        if key not in known:
            raise DataError(
                f"rule names task '{written}', which is in neither the baseline nor the candidate",
                path=rules.path,
                line=rules.task_lines.get(key),
                field=f"task.{written}",
                hint=did_you_mean(written, tasks),
            )


def same_data(b: CellResult, c: CellResult) -> bool | None:
    """Whether both cells scored the same task protocol and data (None: a side predates the hashes)."""
    if None in (b.task_hash, b.data_hash, c.task_hash, c.data_hash):
        return None
    return b.task_hash == c.task_hash and b.data_hash == c.data_hash


def data_differs(b: CellResult, c: CellResult) -> bool:
    """The two cells certainly scored different data or protocols (hashes differ, or the unit counts do)."""
    return same_data(b, c) is False or bool(c.ok and b.n_units and c.n_units and b.n_units != c.n_units)


def check_comparable(b: CellResult, c: CellResult, rule: Rule | None = None, allow_data_change: bool = False) -> list[str]:
    """Refuse to compare cells that did not score the same thing; returns notes about what could not be verified."""
    where = f"{b.task}/{b.split}"
    allowed = allow_data_change or (rule is not None and rule.allow_data_change)
    notes: list[str] = []
    if b.task_type != c.task_type:
        raise DataError(f"{where}: task type differs (baseline {b.task_type}, candidate {c.task_type})")
    if not b.ok:
        raise DataError(f"{where}: the baseline cell for {b.encoder} failed ({b.error}); re-run the baseline")
    if b.main_score is None:
        raise DataError(f"{where}: the baseline main score of {b.encoder} is undefined; it cannot serve as a baseline")
    if c.ok and b.main_metric != c.main_metric:
        raise DataError(f"{where}: main metric differs (baseline {b.main_metric}, candidate {c.main_metric})")
    if limit_of(b) != limit_of(c):
        raise DataError(f"{where}: cannot compare {kind(limit_of(b))} in the baseline with {kind(limit_of(c))} in the candidate")
    if c.ok and bool(b.units) != bool(c.units):  # stripping units would also strip the check of a forged main score
        side = "candidate" if b.units else "baseline"
        raise DataError(
            f"{where}: the {side} result of {(c if b.units else b).encoder} has no per-unit outcomes, so its main score can be "
            "neither checked against them nor tested for significance",
            hint=f"re-run the {side} with evalkit",
        )
    same = same_data(b, c)
    sizes_differ = bool(c.ok and b.n_units and c.n_units and b.n_units != c.n_units)
    if data_differs(b, c):
        what = []
        if b.task_hash != c.task_hash and same is False:
            what.append("protocol (task type, split, settings or seeds)")
        if b.data_hash != c.data_hash and same is False:
            what.append("data files")
        if sizes_differ:
            what.append(f"number of units ({b.n_units} vs {c.n_units})")
        if not allowed:
            raise DataError(
                f"{where}: the two sides scored different data: their {' and '.join(what)} differ",
                hint=f"re-run both sides on the same task files, or allow it with --allow-data-change or allow_data_change = true "
                f"for task '{b.task}' in the rules (the test is then unpaired)",
            )
        notes.append(f"{where}: {' and '.join(what)} differ between the two sides (allowed); the bootstrap test is unpaired")
    elif same is None:
        side = "baseline" if None in (b.task_hash, b.data_hash) else "candidate"
        notes.append(f"{where}: cannot verify that both sides used the same data and protocol (the {side} result predates data_hash)")
    return notes
