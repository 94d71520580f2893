"""A pooling sweep on one ``hf`` model runs the transformer once: 6 poolings × every layer, one forward pass."""

from __future__ import annotations

from pathlib import Path

from evalkit.encoders import pooling as poolings
from evalkit.execution import plan, run_local
from evalkit.results.store import ResultStore
from evalkit.spec import EncoderSpec
from evalkit.taskspec import TaskIndex


def small_sts_task(folder: Path, pairs: int = 150) -> Path:
    """A task file over the first ``pairs`` STS-B test pairs (real data, a fraction of the encoding time)."""
    from tests.conftest import STSB_TEST

    lines = STSB_TEST.read_text(encoding="utf-8").splitlines()[: pairs + 1]
    (folder / "small.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    toml = folder / "small_sts.toml"
    toml.write_text('name = "SmallSTS"\ntype = "sts"\nsplit = "test"\n[files]\ntest = "small.tsv"\n', encoding="utf-8")
    return toml


def run(specs: list[str], tmp_path: Path, name: str) -> list:
    task = TaskIndex([]).get(str(small_sts_task(tmp_path)))
    return run_local(plan([EncoderSpec.parse(s) for s in specs], [task]), ResultStore(tmp_path / name), progress=False)


def test_six_poolings_by_every_layer_cost_one_forward_pass(tiny_bert: Path, tmp_path: Path) -> None:
    names = poolings.names()
    assert len(names) == 6
    sweep = [f"hf:{tiny_bert}?pooling={p}&layer={layer}" for p in names for layer in (0, 1, 2)]
    single = run([f"hf:{tiny_bert}?pooling=mean"], tmp_path, "single")
    results = run(sweep, tmp_path, "sweep")
    assert len(results) == 18
    # CLS of the embedding layer is one constant vector for every text: its Spearman is undefined, and says so
    (undefined,) = [r for r in results if not r.ok]
    assert undefined.encoder.endswith("?layer=0&pooling=cls") and "undefined" in (undefined.error or "")
    ok = [r for r in results if r.ok]
    one_pass = single[0].throughput["forward_batches"]
    assert one_pass > 0
    # every head of every cell came out of the same batches: the sweep ran exactly one pass
    assert sum(r.throughput.get("forward_batches", 0) for r in results) == one_pass
    # the cell that ran the pass (failed or not); every other cell carries that pass's speed and says whose pass it was
    (measured,) = [r for r in results if r.throughput.get("forward_batches")]
    siblings = [r for r in ok if r is not measured]
    assert len(siblings) == 17 - int(measured.ok)
    assert all(r.throughput["shared_forward_pass"] and r.throughput["shared_with"] == measured.encoder for r in siblings)
    assert all(r.throughput["sentences_per_second"] == measured.throughput["sentences_per_second"] for r in siblings)
    by_spec = {r.encoder: r for r in results}
    assert by_spec[f"hf:{tiny_bert}?layer=2&pooling=mean"].scores == single[0].scores  # layer 2 is the last of 2 layers


def test_sweep_vectors_equal_each_pooling_run_alone(tiny_bert: Path, tmp_path: Path) -> None:
    sweep = [f"hf:{tiny_bert}?pooling={p}" for p in poolings.names()]
    together = {r.encoder: r.scores for r in run(sweep, tmp_path, "together")}
    for spec in (sweep[1], sweep[-1]):
        alone = run([spec], tmp_path, spec.rsplit("=", 1)[1])[0]
        assert together[str(EncoderSpec.parse(spec))] == alone.scores


def test_two_specs_naming_the_same_head_release_independently(tiny_bert: Path) -> None:
    """``hf:m`` and ``hf:m?pooling=mean`` share backbone and head; closing one must not break the other."""
    from evalkit.encoders import load_encoder

    short, explicit = load_encoder(f"hf:{tiny_bert}"), load_encoder(f"hf:{tiny_bert}?pooling=mean&layer=-1")
    assert short.backbone is explicit.backbone and short.head == explicit.head
    before = short.encode(["a sentence", "another one"])
    explicit.close()
    after = short.encode(["a sentence", "another one"])
    short.close()
    assert (after == before).all()
