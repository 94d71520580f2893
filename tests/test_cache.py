"""The embedding cache: a warm re-run does no forward pass, and no change of model,
pooling, prompt or role can ever read another configuration's vectors."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from evalkit.cache import CachedEncoder, EmbeddingCache, Namespace, text_digest, uncacheable_reason
from evalkit.encoders import Role, load_encoder
from evalkit.throughput import MeteredEncoder
from tests.conftest import sts_sentences

TEXTS = list(dict.fromkeys(sts_sentences(60)))  # distinct, as adapters send them


def encode_with(spec: str, cache: EmbeddingCache, texts: list[str] = TEXTS, role: Role | None = None) -> tuple[np.ndarray, dict]:
    """Encode through a fresh load of ``spec`` behind ``cache``; also return what the meter saw."""
    meter = MeteredEncoder(load_encoder(spec), cache=cache)
    try:
        vectors = meter.encode(texts, role)
        return vectors, meter.reset().as_dict()
    finally:
        meter.close()


def plain(spec: str, texts: list[str] = TEXTS, role: Role | None = None) -> np.ndarray:
    encoder = load_encoder(spec)
    try:
        return encoder.encode(texts, role)
    finally:
        encoder.close()


def test_warm_cache_runs_no_forward_pass_and_returns_identical_vectors(tiny_bert: Path, tmp_path: Path) -> None:
    spec = f"hf:{tiny_bert}?pooling=mean"
    cold, cold_tp = encode_with(spec, EmbeddingCache(tmp_path))
    warm, warm_tp = encode_with(spec, EmbeddingCache(tmp_path))  # a new cache object: read back from disk
    assert cold_tp["forward_batches"] > 0 and cold_tp["cached_sentences"] == 0
    assert warm_tp["forward_batches"] == 0 and warm_tp["sentences"] == 0 and warm_tp["calls"] == 0
    assert warm_tp["cached_sentences"] == len(TEXTS) and warm_tp["cached_fraction"] == 1.0
    assert warm_tp["sentences_per_second"] is None  # no model speed is claimed for cache hits
    np.testing.assert_array_equal(warm, cold)
    np.testing.assert_array_equal(cold, plain(spec))


def test_partial_hits_keep_the_order_of_the_texts(tiny_bert: Path, tmp_path: Path) -> None:
    spec = f"hf:{tiny_bert}"
    cache = EmbeddingCache(tmp_path)
    encode_with(spec, cache, TEXTS[::2])
    mixed, seen = encode_with(spec, EmbeddingCache(tmp_path), TEXTS)
    assert seen["cached_sentences"] == len(TEXTS[::2]) and seen["sentences"] == len(TEXTS) - len(TEXTS[::2])
    np.testing.assert_allclose(mixed, plain(spec), atol=1e-6)


@pytest.mark.parametrize(
    ("first", "second", "role1", "role2"),
    [
        ("hf:{m}?pooling=mean", "hf:{m}?pooling=cls", None, None),
        ("hf:{m}?pooling=mean", "hf:{m}?pooling=mean&layer=1", None, None),
        ("hf:{m}", "hf:{m}?prompt=query: ", None, None),
        ("hf:{m}?query_prompt=q: &document_prompt=d: ", "hf:{m}?query_prompt=q: &document_prompt=d: ", Role.QUERY, Role.DOCUMENT),
        ("hf:{m}", "hf:{m}", Role.QUERY, Role.DOCUMENT),
        ("hf:{m}", "hf-logits:{m}", None, None),
    ],
    ids=["pooling", "layer", "prompt", "role-with-prompts", "role-without-prompts", "backend"],
)
def test_a_changed_configuration_never_hits_another_entries(
    tiny_bert: Path, tmp_path: Path, first: str, second: str, role1: Role | None, role2: Role | None
) -> None:
    a, b = first.format(m=tiny_bert), second.format(m=tiny_bert)
    encode_with(a, EmbeddingCache(tmp_path), role=role1)
    vectors, seen = encode_with(b, EmbeddingCache(tmp_path), role=role2)
    assert seen["cached_sentences"] == 0 and seen["sentences"] == len(TEXTS)
    np.testing.assert_array_equal(vectors, plain(b, role=role2))


def test_changed_weights_under_the_same_path_and_spec_miss(tiny_bert: Path, tmp_path: Path) -> None:
    """The key holds a hash of the weights, not the model's name: retrained weights in place never hit."""
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "model"
    shutil.copytree(tiny_bert, folder)
    spec = f"hf:{folder}"
    before, _ = encode_with(spec, EmbeddingCache(tmp_path / "cache"))
    weights = folder / "model.safetensors"
    tensors = load_file(weights)
    save_file({k: v + 0.5 if k.endswith("LayerNorm.bias") else v for k, v in tensors.items()}, weights, metadata={"format": "pt"})
    after, seen = encode_with(spec, EmbeddingCache(tmp_path / "cache"))
    assert seen["cached_sentences"] == 0
    assert not np.allclose(after, before)
    np.testing.assert_array_equal(after, plain(spec))


def test_corpus_fitted_encoders_are_never_cached(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    tfidf = load_encoder("tfidf:lexical")
    assert uncacheable_reason(tfidf, tfidf.fingerprint()) is not None
    assert cache.wrap(tfidf) is tfidf
    meter = MeteredEncoder(tfidf, cache=cache)
    assert meter.cached is None
    meter.fit(TEXTS)
    meter.encode(TEXTS)
    assert cache.info().namespaces == 0 and not any(tmp_path.rglob("*.npz"))


def test_an_unreadable_shard_is_a_miss_not_a_wrong_vector(tiny_bert: Path, tmp_path: Path) -> None:
    spec = f"hf:{tiny_bert}"
    encode_with(spec, EmbeddingCache(tmp_path))
    shards = list(tmp_path.rglob("shard-*.npz"))
    assert len(shards) == 1
    shards[0].write_bytes(b"not a zip file")
    vectors, seen = encode_with(spec, EmbeddingCache(tmp_path))
    assert seen["cached_sentences"] == 0
    np.testing.assert_array_equal(vectors, plain(spec))


def test_cached_encoder_counts_hits_and_misses(tiny_bert: Path, tmp_path: Path) -> None:
    encoder = CachedEncoder(load_encoder(f"hf:{tiny_bert}"), EmbeddingCache(tmp_path))
    try:
        encoder.encode(TEXTS[:10])
        encoder.encode(TEXTS[:20])
        assert encoder.reset_counts() == {"cached_sentences": 10, "cached_fraction": 0.333333}
    finally:
        encoder.close()


def test_cli_info_and_clear(tiny_bert: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from evalkit.cli import main

    encode_with(f"hf:{tiny_bert}", EmbeddingCache(tmp_path))
    encode_with(f"hf:{tiny_bert}", EmbeddingCache(tmp_path), role=Role.QUERY)
    assert main(["cache", "info", "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "namespaces (encoder configuration × role): 2" in out and f"vectors: {2 * len(TEXTS)}" in out
    assert main(["cache", "clear", "--cache-dir", str(tmp_path)]) == 0
    assert "cleared 2" in capsys.readouterr().out
    assert EmbeddingCache(tmp_path).info().entries == 0


def test_run_with_a_warm_cache_gives_identical_scores_and_says_so(tiny_bert: Path, tmp_path: Path) -> None:
    """``evalkit run --overwrite`` twice: the second run reads every vector from the cache and reports it."""
    from evalkit.cli import main
    from evalkit.results import ResultStore
    from tests.test_pooling_sweep import small_sts_task

    task = str(small_sts_task(tmp_path))
    args = ["run", "-e", f"hf:{tiny_bert}", "-t", task, "-o", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "c")]
    assert main([*args, "--no-progress", "--no-report"]) == 0
    first = ResultStore(tmp_path / "out").load_all()[0]
    assert main([*args, "--no-progress", "--no-report", "--overwrite"]) == 0
    second = ResultStore(tmp_path / "out").load_all()[0]
    assert second.scores == first.scores
    assert first.throughput["cached_fraction"] == 0.0 and first.throughput["sentences_per_second"] > 0
    assert second.throughput["cached_fraction"] == 1.0 and second.throughput["forward_batches"] == 0
    assert second.throughput["sentences_per_second"] is None
    assert main([*args, "--no-progress", "--no-report", "--overwrite", "--no-cache"]) == 0
    third = ResultStore(tmp_path / "out").load_all()[0]
    assert third.throughput["cached_fraction"] == 0.0 and third.scores == first.scores


def test_hub_models_are_cached_only_when_pinned_to_a_commit(tiny_bert: Path) -> None:
    encoder = load_encoder(f"hf:{tiny_bert}")
    try:
        assert uncacheable_reason(encoder, encoder.fingerprint()) is None  # a local folder: keyed by its weights hash
        for weights in ("hub:org/model@main", "hub:org/model@v1.0"):
            assert uncacheable_reason(encoder, {**encoder.fingerprint(), "weights": weights}) is not None
        assert uncacheable_reason(encoder, {**encoder.fingerprint(), "weights": "hub:org/model@" + "a" * 40}) is None
    finally:
        encoder.close()


# --- a damaged cache is a miss with one warning, never a wrong vector, a failed cell or a crash -------------


def _rewrite(shard: Path, **arrays: np.ndarray) -> None:
    shard.unlink()
    with shard.open("wb") as handle:
        np.savez(handle, **arrays)


def _damage(shard: Path, kind: str, other_shard: Path) -> None:
    """Turn a good shard into one of the ways a cache file goes bad (disk, user, another version, an attacker)."""
    with np.load(shard) as data:
        digests, vectors, checksum = data["digests"], data["vectors"], data["checksum"]
    raw = shard.read_bytes()
    if kind == "empty":
        shard.write_bytes(b"")
    elif kind == "random-bytes":
        shard.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "truncated":  # BadZipFile
        shard.write_bytes(raw[: len(raw) // 2])
    elif kind == "flipped-byte":
        middle = len(raw) // 2
        shard.write_bytes(raw[:middle] + bytes([raw[middle] ^ 0xFF]) + raw[middle + 1 :])
    elif kind == "tampered-vector":  # a valid zip whose vector changed: only the checksum can tell
        changed = vectors.copy()
        changed[0, 0] += 1.0
        _rewrite(shard, digests=digests, vectors=changed, checksum=checksum)
    elif kind == "wrong-dtype":
        _rewrite(shard, digests=digests, vectors=vectors.astype(np.float64), checksum=checksum)
    elif kind == "wrong-shape":
        _rewrite(shard, digests=digests.reshape(-1, 16), vectors=vectors, checksum=checksum)
    elif kind == "object-array":
        shard.unlink()
        with shard.open("wb") as handle:
            np.savez(handle, digests=np.array([{"x": 1}], dtype=object), vectors=vectors, checksum=checksum)
    elif kind == "compressed":
        shard.unlink()
        with shard.open("wb") as handle:
            np.savez_compressed(handle, digests=digests, vectors=vectors, checksum=checksum)
    elif kind == "from-another-namespace":
        shutil.copyfile(other_shard, shard)
    elif kind == "directory":
        shard.unlink()
        shard.mkdir()
    elif kind == "link-to-dev-zero":
        shard.unlink()
        shard.symlink_to("/dev/zero")
    elif kind == "fifo":  # opening it for reading would block forever
        shard.unlink()
        os.mkfifo(shard)
    else:
        raise AssertionError(kind)


DAMAGE = [
    "empty",
    "random-bytes",
    "truncated",
    "flipped-byte",
    "tampered-vector",
    "wrong-dtype",
    "wrong-shape",
    "object-array",
    "compressed",
    "from-another-namespace",
    "directory",
    "link-to-dev-zero",
    "fifo",
]


def _warnings(err: str) -> list[str]:
    """evalkit's own lines on stderr (a library's progress bar outside a run is the caller's business)."""
    assert "Traceback" not in err and "Warning:" not in err, err
    return [line for line in err.splitlines() if "evalkit" in line or "warning" in line.lower()]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", DAMAGE)
def test_a_damaged_shard_is_one_warning_and_a_miss(kind: str, tiny_bert: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from evalkit.cli import main

    spec, root = f"hf:{tiny_bert}", tmp_path / "cache"
    truth = plain(spec)
    encode_with(spec, EmbeddingCache(root))
    encode_with(spec, EmbeddingCache(tmp_path / "other"), role=Role.QUERY)
    (shard,) = root.rglob("shard-*.npz")
    (other,) = (tmp_path / "other").rglob("shard-*.npz")
    _damage(shard, kind, other)
    capsys.readouterr()

    vectors, seen = encode_with(spec, EmbeddingCache(root))
    lines = _warnings(capsys.readouterr().err)
    assert len(lines) == 1 and lines[0].startswith("evalkit: warning: ") and str(shard) in lines[0], lines
    assert seen["cached_sentences"] == 0
    np.testing.assert_array_equal(vectors, truth)

    again, seen = encode_with(spec, EmbeddingCache(root))  # the recomputed vectors were stored beside it
    assert _warnings(capsys.readouterr().err) == []  # once per shard per process
    assert seen["cached_sentences"] == len(TEXTS)
    np.testing.assert_array_equal(again, truth)

    assert main(["cache", "info", "--cache-dir", str(root)]) == 0
    captured = capsys.readouterr()
    assert f"vectors: {len(TEXTS)}" in captured.out and "unreadable shards: 1" in captured.out, captured.out
    assert main(["cache", "clear", "--cache-dir", str(root)]) == 0
    assert not list(root.rglob("shard-*"))


def test_key_json_is_informational_a_shard_vouches_for_itself(tiny_bert: Path, tmp_path: Path) -> None:
    """A lost or garbled key.json neither hides the namespace from info/clear nor makes its shards untrusted."""
    from evalkit.cli import main

    spec = f"hf:{tiny_bert}"
    encode_with(spec, EmbeddingCache(tmp_path))
    (key_file,) = tmp_path.rglob("key.json")
    assert json.loads(key_file.read_text())["fingerprint"]["weights"].startswith("sha256:")
    key_file.write_text("{ garbage")
    vectors, seen = encode_with(spec, EmbeddingCache(tmp_path))
    assert seen["cached_sentences"] == len(TEXTS)
    np.testing.assert_array_equal(vectors, plain(spec))
    key_file.unlink()
    assert EmbeddingCache(tmp_path).info().namespaces == 1
    assert main(["cache", "clear", "--cache-dir", str(tmp_path)]) == 0
    assert not list(tmp_path.rglob("shard-*"))


def test_clear_deletes_only_namespace_folders_and_never_through_links(tiny_bert: Path, tmp_path: Path) -> None:
    root, outside = tmp_path / "cache", tmp_path / "outside"
    encode_with(f"hf:{tiny_bert}", EmbeddingCache(root))
    outside.mkdir()
    (outside / "precious.txt").write_text("keep")
    (root / "notes.txt").write_text("keep")
    (root / "ab").mkdir()
    (root / "ab" / "not-a-namespace").mkdir()
    (root / "ab" / ("cd" + "0" * 62)).mkdir()  # 64 hex, but under the wrong prefix
    (root / "ef").mkdir()
    (root / "ef" / ("ef" + "0" * 62)).symlink_to(outside, target_is_directory=True)
    assert EmbeddingCache(root).clear() == 1
    assert (outside / "precious.txt").read_text() == "keep" and (root / "notes.txt").exists()
    assert (root / "ab" / "not-a-namespace").is_dir() and (root / "ab" / ("cd" + "0" * 62)).is_dir()


def test_info_on_a_missing_or_file_root_is_empty(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from evalkit.cli import main

    (tmp_path / "file").write_text("x")
    for root in (tmp_path / "missing", tmp_path / "file", tmp_path / "file" / "below"):
        assert main(["cache", "info", "--cache-dir", str(root)]) == 0
        assert "vectors: 0" in capsys.readouterr().out


# --- a cache folder that cannot be written: the run goes on without it, with one warning --------------------


def _assert_degraded(err: str, root: Path) -> None:
    lines = [line for line in _warnings(err) if "cache" in line]  # a run also warns about its data (duplicate rows)
    assert len(lines) == 1, lines
    assert lines[0].startswith("evalkit: warning: ") and str(root) in lines[0] and "--no-cache" in lines[0], lines


@pytest.mark.parametrize("where", ["parent-is-a-file", "root-is-a-file"])
def test_an_unwritable_cache_folder_is_one_warning_and_correct_vectors(
    where: str, tiny_bert: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Tests run as root, for whom chmod blocks nothing: a regular file where a folder must be does."""
    (tmp_path / "file").write_text("not a folder")
    root = tmp_path / "file" / "cache" if where == "parent-is-a-file" else tmp_path / "file"
    spec, cache = f"hf:{tiny_bert}", EmbeddingCache(root)
    truth = plain(spec)
    capsys.readouterr()
    first, _ = encode_with(spec, cache)
    second, seen = encode_with(spec, cache, role=Role.QUERY)  # a second namespace: still only one warning
    _assert_degraded(capsys.readouterr().err, root)
    assert cache.write_error is not None and seen["cached_sentences"] == 0
    np.testing.assert_array_equal(first, truth)
    np.testing.assert_array_equal(second, plain(spec, role=Role.QUERY))


def test_a_full_disk_mid_write_leaves_no_partial_file_and_correct_vectors(
    tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from evalkit import faults

    monkeypatch.setattr(faults, "_seen", {})
    monkeypatch.setenv(faults.ENV, "cache.write:2:ENOSPC")  # key.json fits, the shard does not
    spec, root = f"hf:{tiny_bert}", tmp_path / "cache"
    truth = plain(spec)
    capsys.readouterr()
    vectors, _ = encode_with(spec, EmbeddingCache(root))
    err = capsys.readouterr().err
    _assert_degraded(err, root)
    assert "No space left on device" in err
    np.testing.assert_array_equal(vectors, truth)
    assert [p.name for p in root.rglob("*") if p.is_file()] == ["key.json"]  # no shard, no temporary file
    monkeypatch.delenv(faults.ENV)
    encode_with(spec, EmbeddingCache(root))  # space again: the cache works as before
    warm, seen = encode_with(spec, EmbeddingCache(root))
    assert seen["cached_sentences"] == len(TEXTS)
    np.testing.assert_array_equal(warm, truth)


def test_a_really_full_filesystem(tiny_bert: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A 64 KiB tmpfs filled to the brim (where mounting is allowed): the kernel's own ENOSPC."""
    import subprocess

    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs is not allowed here (the ENOSPC fault point test covers the path)")
    try:
        with contextlib.suppress(OSError), (disk / "filler").open("wb") as handle:
            while True:
                handle.write(b"\0" * 4096)
                handle.flush()
        spec, root = f"hf:{tiny_bert}", disk / "cache"
        truth = plain(spec)
        capsys.readouterr()
        vectors, _ = encode_with(spec, EmbeddingCache(root))
        err = capsys.readouterr().err
        _assert_degraded(err, root)
        assert "No space left on device" in err
        np.testing.assert_array_equal(vectors, truth)
        assert not [p for p in disk.rglob("*") if p.name.endswith(".tmp")]
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_run_with_an_unwritable_cache_scores_as_without_one(tiny_bert: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from evalkit.cli import main
    from evalkit.results import ResultStore
    from tests.test_pooling_sweep import small_sts_task

    (tmp_path / "file").write_text("x")
    task, root = str(small_sts_task(tmp_path, 40)), tmp_path / "file" / "cache"
    base = ["run", "-e", f"hf:{tiny_bert}", "-t", task, "--no-progress", "--no-report"]
    assert main([*base, "-o", str(tmp_path / "a"), "--cache-dir", str(root)]) == 0
    _assert_degraded(capsys.readouterr().err, root)
    assert main([*base, "-o", str(tmp_path / "b"), "--no-cache"]) == 0
    (degraded,), (uncached,) = ResultStore(tmp_path / "a").load_all(), ResultStore(tmp_path / "b").load_all()
    assert degraded.ok and degraded.scores == uncached.scores


# --- concurrent writers and compaction ----------------------------------------------------------------------


def _batch(seed: int, n: int = 5, dim: int = 8) -> tuple[list[bytes], np.ndarray]:
    rng = np.random.default_rng(seed)
    return [text_digest(f"{seed}-{i}") for i in range(n)], rng.standard_normal((n, dim)).astype(np.float32)


def _expect(space: Namespace, seeds: range) -> None:
    for seed in seeds:
        digests, vectors = _batch(seed)
        missing, found = space.lookup(digests)
        assert missing == []
        np.testing.assert_array_equal(found, vectors)


def test_compaction_by_two_processes_at_once_loses_no_vector(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two writers that both read the same shards and both compact: every vector stays, each exactly right."""
    from evalkit import cache as cache_module

    monkeypatch.setattr(cache_module, "COMPACT_AFTER", 3)
    payload = {"format": cache_module.FORMAT_VERSION, "test": "compaction"}
    folder = tmp_path / "ns"
    first = Namespace(folder, payload)
    for seed in range(3):
        first.add(*_batch(seed))
    second = Namespace(folder, payload)  # has read the same three shards
    for seed in range(3, 12):
        (first if seed % 2 else second).add(*_batch(seed))
    assert len(list(folder.glob("shard-*.npz"))) < 12
    _expect(Namespace(folder, payload), range(12))


def test_a_full_disk_during_compaction_removes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from evalkit import cache as cache_module
    from evalkit import faults

    monkeypatch.setattr(cache_module, "COMPACT_AFTER", 3)
    monkeypatch.setattr(faults, "_seen", {})
    payload = {"format": cache_module.FORMAT_VERSION, "test": "compaction-enospc"}
    folder = tmp_path / "ns"
    space = Namespace(folder, payload)
    monkeypatch.setenv(faults.ENV, "cache.write:6:ENOSPC")  # key.json + 4 shards are written; the merged shard is not
    for seed in range(3):
        space.add(*_batch(seed))
    with pytest.raises(OSError, match="No space left"):
        space.add(*_batch(3))
    monkeypatch.delenv(faults.ENV)
    assert len(list(folder.glob("shard-*.npz"))) == 4 and not list(folder.glob(".*.tmp"))
    _expect(Namespace(folder, payload), range(4))
