"""Data readers refuse what a person would not read as the value they meant (found by an adversarial pass)."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalkit.data import load_json, read_rows
from evalkit.errors import DataError


@pytest.mark.parametrize("text", ['{"score": 2.5, "score": 4.9}', '{"a": {"b": 1, "b": 1}}'])
def test_a_json_object_naming_a_key_twice_is_refused(text: str) -> None:
    with pytest.raises(DataError, match="appears twice"):
        load_json(text, path="pairs.jsonl", kind="line", line=7)


@pytest.mark.parametrize("digits", ["２", "٢.5", "2\u00a0"])
def test_scores_in_other_scripts_digits_are_refused(tmp_path: Path, digits: str) -> None:
    data = tmp_path / "pairs.tsv"
    data.write_text(f"sentence1\tsentence2\tscore\na\tb\t{digits}\n", encoding="utf-8")
    (row,) = read_rows(data, ["score"])
    with pytest.raises(DataError, match="ASCII digits") as caught:
        row.number("score")
    assert caught.value.line == 2 and caught.value.field == "score"


def test_ordinary_numbers_still_read(tmp_path: Path) -> None:
    data = tmp_path / "pairs.tsv"
    data.write_text("sentence1\tsentence2\tscore\na\tb\t 2.500 \nc\td\t1e-3\n", encoding="utf-8")
    assert [r.number("score") for r in read_rows(data, ["score"])] == [2.5, 0.001]
