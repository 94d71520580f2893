"""The cache key covers every file a loader reads: a model folder edited in place never reuses old vectors.

The regression case is the issue's: a copy of the real all-MiniLM-L6-v2 whose
``1_Pooling/config.json`` is switched from mean to CLS in place must score as the
edited model does, not as the cached mean-pooled vectors did.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evalkit import model_identity
from evalkit.cache import NUMERIC_LIBRARIES, CachedEncoder, EmbeddingCache, namespace_key, namespace_payload, uncacheable_reason
from evalkit.catalogue import resolve
from evalkit.model_identity import folder_digest, weights_identity

MINILM = resolve("all-MiniLM-L6-v2")


@pytest.fixture
def minilm_copy(tmp_path: Path) -> Path:
    """A private copy of the packaged model (real files, new inodes): edits never reach the installed one."""
    folder = tmp_path / "minilm"
    shutil.copytree(MINILM, folder)
    return folder


def key_of(folder: Path) -> str:
    """The identity a fresh process would compute (the in-memory memo forgotten)."""
    model_identity._MEMO.clear()
    return weights_identity(str(folder), None)


def edit_in_place(path: Path, old: bytes, new: bytes, keep_mtime: bool = True) -> None:
    """Replace bytes inside ``path`` without changing its size or (by default) its mtime: the hardest edit to notice."""
    assert len(old) == len(new)
    data = path.read_bytes()
    assert old in data, (path, old)
    before = path.stat()
    with path.open("r+b") as handle:  # same inode, as an editor saving in place would
        handle.write(data.replace(old, new, 1))
    if keep_mtime:
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size


def stsb_task(folder: Path, pairs: int = 50) -> Path:
    from tests.test_pooling_sweep import small_sts_task

    return small_sts_task(folder, pairs)


def run_score(spec: str, task: Path, out: Path, cache: Path | None) -> tuple[float, float]:
    """(main score, cached fraction) of one in-process ``evalkit run``."""
    from evalkit.cli import main
    from evalkit.results import ResultStore

    args = ["run", "-e", spec, "-t", str(task), "-o", str(out), "--no-progress", "--no-report"]
    args += ["--cache-dir", str(cache)] if cache is not None else ["--no-cache"]
    assert main(args) == 0
    (result,) = ResultStore(out).load_all()
    assert result.ok and result.main_score is not None
    return result.main_score, float(result.throughput["cached_fraction"])


def test_pooling_edited_in_place_is_a_new_model_not_a_cache_hit(minilm_copy: Path, tmp_path: Path) -> None:
    """mean → CLS in ``1_Pooling/config.json``: the re-run scores the edited model, exactly as an uncached run does."""
    task, cache, spec = stsb_task(tmp_path), tmp_path / "cache", f"sbert:{minilm_copy}"
    mean_score, cold = run_score(spec, task, tmp_path / "mean", cache)
    again, warm = run_score(spec, task, tmp_path / "mean-again", cache)
    assert (cold, warm) == (0.0, 1.0) and again == mean_score  # the cache does serve an unchanged model

    pooling = minilm_copy / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text())
    assert config["pooling_mode_mean_tokens"] is True and config["pooling_mode_cls_token"] is False
    edit_in_place(pooling, b'"pooling_mode_cls_token": false', b'"pooling_mode_cls_token": true ')
    edit_in_place(pooling, b'"pooling_mode_mean_tokens": true', b'"pooling_mode_mean_tokens":false')
    config = json.loads(pooling.read_text())
    assert config["pooling_mode_cls_token"] is True and config["pooling_mode_mean_tokens"] is False

    cls_score, cached = run_score(spec, task, tmp_path / "cls", cache)
    truth, _ = run_score(spec, task, tmp_path / "cls-truth", None)
    assert cached == 0.0, "the edited model read the mean-pooled vectors back"
    assert cls_score == truth
    assert abs(cls_score - mean_score) > 1e-3


# Every kind of file a sentence-transformers / transformers / model2vec loader reads, edited so size and mtime stay.
EDITS = {
    "modules.json": (b"sentence_transformers.models.Normalize", b"sentence_transformers.models.Normalizf"),
    "sentence_bert_config.json": (b"256", b"128"),
    "config.json": (b'"hidden_act": "gelu"', b'"hidden_act": "relu"'),
    "vocab.txt": (b"[unused0]", b"[unused9]"),
    "tokenizer.json": (b'"lowercase":true', b'"lowercase":tru '),
    "tokenizer_config.json": (b'"do_lower_case": true', b'"do_lower_case": fals'),
    "special_tokens_map.json": (b"[CLS]", b"[CLX]"),
    "config_sentence_transformers.json": (b"{", b" "),
}


@pytest.mark.parametrize("name", sorted(EDITS))
def test_editing_any_loader_file_changes_the_key(minilm_copy: Path, name: str) -> None:
    before = key_of(minilm_copy)
    old, new = EDITS[name]
    if old not in (minilm_copy / name).read_bytes():
        pytest.fail(f"{name} no longer holds {old!r}: pick another edit")
    edit_in_place(minilm_copy / name, old, new)
    assert key_of(minilm_copy) != before


def test_weights_nested_modules_and_tokenizer_models_are_all_keyed(minilm_copy: Path) -> None:
    """A byte of the weights, a file under ``2_Dense``, a sentencepiece model, merges: each changes the key."""
    keys = {key_of(minilm_copy)}
    weights = minilm_copy / "model.safetensors"
    with weights.open("r+b") as handle:  # one byte deep inside the tensors, same size
        handle.seek(weights.stat().st_size // 2)
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 1]))
    keys.add(key_of(minilm_copy))
    dense = minilm_copy / "2_Dense"
    dense.mkdir()
    (dense / "config.json").write_text('{"in_features": 384, "out_features": 128}')
    keys.add(key_of(minilm_copy))
    (dense / "model.safetensors").write_bytes(b"\0" * 64)
    keys.add(key_of(minilm_copy))
    edit_in_place(dense / "model.safetensors", b"\0", b"\1")
    keys.add(key_of(minilm_copy))
    (minilm_copy / "sentencepiece.bpe.model").write_bytes(b"spm-v1")
    keys.add(key_of(minilm_copy))
    edit_in_place(minilm_copy / "sentencepiece.bpe.model", b"v1", b"v2")
    keys.add(key_of(minilm_copy))
    (minilm_copy / "merges.txt").write_text("#version: 0.2\na b\n")
    keys.add(key_of(minilm_copy))
    (minilm_copy / "merges.txt").rename(minilm_copy / "1_Pooling" / "merges.txt")  # same bytes, another place
    keys.add(key_of(minilm_copy))
    assert len(keys) == 9  # the original, then eight edits


def test_touching_without_changing_content_keeps_the_key(minilm_copy: Path) -> None:
    before = key_of(minilm_copy)
    for path in minilm_copy.rglob("*"):
        if path.is_file():
            os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    assert key_of(minilm_copy) == before
    (minilm_copy / ".git").mkdir()  # VCS and hidden entries, evalkit's temporary files: skipped
    (minilm_copy / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (minilm_copy / ".config.json.x1y2.tmp").write_text("{}")
    (minilm_copy / "__pycache__").mkdir()
    assert key_of(minilm_copy) == before


def test_the_same_files_elsewhere_have_the_same_key(minilm_copy: Path, tmp_path: Path) -> None:
    """Content, not location: a second copy (other inodes, other mtimes) shares the vectors; the packaged one too."""
    second = tmp_path / "second"
    shutil.copytree(minilm_copy, second)
    assert key_of(second) == key_of(minilm_copy) == key_of(MINILM)


def test_the_namespace_holds_the_versions_of_numeric_libraries(tiny_bert: Path) -> None:
    from importlib import metadata

    from evalkit.encoders import load_encoder

    encoder = load_encoder(f"hf:{tiny_bert}")
    try:
        payload = namespace_payload(encoder, None, "cpu")
    finally:
        encoder.close()
    assert set(payload["libraries"]) == set(NUMERIC_LIBRARIES)
    assert payload["libraries"]["torch"] == metadata.version("torch")
    assert payload["fingerprint"]["weights"] == weights_identity(str(tiny_bert), None)
    upgraded = {**payload, "libraries": {**payload["libraries"], "torch": "99.0"}}
    assert namespace_key(upgraded) != namespace_key(payload)


def test_second_identity_reads_no_file_and_a_fresh_process_uses_the_disk_memo(minilm_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Memoised by (path, inode, size, mtime_ns, ctime_ns): no re-read while unchanged, a re-read after an edit."""
    monkeypatch.setattr(model_identity, "RACY_SECONDS", -1.0)  # treat the fresh copy as settled (it is, within this test)
    reads: list[Path] = []
    real = model_identity._hash_file

    def counting(path: Path, info: os.stat_result) -> str:
        reads.append(path)
        return real(path, info)

    monkeypatch.setattr(model_identity, "_hash_file", counting)
    first = key_of(minilm_copy)
    n_files = len(reads)
    assert n_files == sum(1 for p in minilm_copy.rglob("*") if p.is_file() and not p.name.startswith("."))
    assert weights_identity(str(minilm_copy), None) == first and len(reads) == n_files  # in-process memo
    assert key_of(minilm_copy) == first and len(reads) == n_files  # _MEMO cleared: the on-disk memo answered
    pooling = minilm_copy / "1_Pooling" / "config.json"
    edit_in_place(pooling, b"false", b"fals ")  # same size, mtime restored: ctime still tells
    assert key_of(minilm_copy) != first and reads[n_files:] == [pooling]


def test_recently_changed_files_are_never_memoised(tmp_path: Path) -> None:
    """Two writes inside one timestamp tick would look unchanged to a memo; a file that new is hashed every time."""
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text("{}")
    key_of(model)
    assert not model_identity._MEMO


def test_special_files_and_link_loops_neither_hang_nor_crash(tmp_path: Path) -> None:
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text("{}")
    before = key_of(model)
    os.mkfifo(model / "pipe")  # opening it would block forever: it is never opened
    (model / "loop").symlink_to(model, target_is_directory=True)
    (model / "dangling").symlink_to(tmp_path / "nowhere")
    (model / "zero").symlink_to("/dev/zero")
    after = key_of(model)
    assert after.startswith("sha256:") and after != before


def test_an_unreadable_folder_is_never_cached(tmp_path: Path, tiny_bert: Path) -> None:
    from evalkit.encoders import load_encoder

    assert weights_identity(str(tmp_path / "no-such"), None).startswith("hub:")
    encoder = load_encoder(f"hf:{tiny_bert}")
    try:
        print_ = {**encoder.fingerprint(), "weights": "unhashable:Unhashable: x changed while it was hashed"}
        assert uncacheable_reason(encoder, print_) is not None
        assert uncacheable_reason(encoder, {k: v for k, v in print_.items() if k != "weights"}) is not None
        assert uncacheable_reason(encoder, encoder.fingerprint()) is None
        assert isinstance(EmbeddingCache(tmp_path / "c").wrap(encoder), CachedEncoder)
    finally:
        encoder.close()


# --- the digest as a function of the folder's content -----------------------------------------------------

NAMES = st.text(alphabet="abcXYZ_-019é", min_size=1, max_size=6)
TREES = st.dictionaries(
    st.lists(NAMES, min_size=1, max_size=3).map(lambda parts: "/".join(parts)), st.binary(max_size=64), min_size=1, max_size=6
)


def build(root: Path, tree: dict[str, bytes]) -> Path | None:
    """Write ``tree`` under ``root``; None where two entries clash (a file where a folder goes)."""
    root.mkdir(parents=True)
    try:
        for relative, content in tree.items():
            path = root / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
    except (FileExistsError, NotADirectoryError, IsADirectoryError):
        return None
    return root


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=TREES, data=st.data())
def test_digest_is_a_function_of_relative_paths_and_bytes(
    tmp_path_factory: pytest.TempPathFactory, tree: dict[str, bytes], data: st.DataObject
) -> None:
    base = tmp_path_factory.mktemp("tree")
    first = build(base / "a", tree)
    if first is None:
        return
    second = build(base / "b", dict(reversed(list(tree.items()))))  # another order of creation, other inodes
    assert second is not None
    assert folder_digest(first) == folder_digest(second)
    victim = data.draw(st.sampled_from(sorted(tree)))
    content = tree[victim]
    change = data.draw(st.sampled_from(["flip", "grow", "remove", "add"]))
    path = second / victim
    if change == "flip" and content:
        index = data.draw(st.integers(0, len(content) - 1))
        path.write_bytes(content[:index] + bytes([content[index] ^ 0x80]) + content[index + 1 :])
    elif change == "grow" or (change == "flip" and not content):
        path.write_bytes(content + b"\n")
    elif change == "remove":
        path.unlink()
    else:
        (path.parent / "+added").write_bytes(b"")  # "+" is outside the names' alphabet: a new file
    assert folder_digest(first) != folder_digest(second)
