"""The Ray executor on a real local Ray cluster: same result files as the local executor.

A 2-encoder × 3-task matrix (STS, classification, retrieval: small real subsets of
STS-B, SST-2 and SciFact) runs once locally and once on Ray; every result must agree
field for field (``CellResult.comparable``), scores within 1e-6. The CLI path joins
the same cluster with ``--executor ray --address``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from evalkit.execution import plan, run_local
from evalkit.execution.ray import resources_for, run_ray
from evalkit.results import CellResult, ResultStore
from evalkit.spec import EncoderSpec
from evalkit.taskspec import load_task_file

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tasks" / "data"
ENCODERS = ("static:tokenlearn-static", "tfidf:lexical")


@pytest.fixture(scope="module")
def cluster():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def small_tasks(folder: Path) -> list[Path]:
    """Three real task types on small slices of real data, so the matrix runs in seconds."""
    lines = (DATA / "sts/stsbenchmark/test.tsv").read_text(encoding="utf-8").splitlines()
    (folder / "sts.tsv").write_text("\n".join(lines[:81]) + "\n", encoding="utf-8")
    (folder / "sts.toml").write_text('name = "RaySTS"\ntype = "sts"\nsplit = "test"\n[files]\ntest = "sts.tsv"\n')

    sst = DATA / "classification/sst2"
    (folder / "train.jsonl").write_text("".join(sst.joinpath("train.jsonl").read_text().splitlines(True)[:200]))
    (folder / "test.jsonl").write_text("".join(sst.joinpath("test.jsonl").read_text().splitlines(True)[:100]))
    (folder / "cls.toml").write_text(
        'name = "RayCls"\ntype = "classification"\nsplit = "test"\n[files]\ntrain = "train.jsonl"\ntest = "test.jsonl"\n'
        "[settings]\nn_experiments = 2\n"
    )

    sci = DATA / "retrieval/scifact"
    qrels = sci.joinpath("qrels/test.tsv").read_text().splitlines()[:31]
    wanted = {row.split("\t")[1] for row in qrels[1:]}
    queries = {row.split("\t")[0] for row in qrels[1:]}
    corpus = [
        d for i, d in enumerate(sci.joinpath("corpus.jsonl").read_text().splitlines(True)) if i < 150 or json.loads(d)["_id"] in wanted
    ]
    (folder / "corpus.jsonl").write_text("".join(corpus))
    (folder / "queries.jsonl").write_text(
        "".join(q for q in sci.joinpath("queries.jsonl").read_text().splitlines(True) if json.loads(q)["_id"] in queries)
    )
    (folder / "qrels.tsv").write_text("\n".join(qrels) + "\n")
    (folder / "ret.toml").write_text(
        'name = "RayRet"\ntype = "retrieval"\nsplit = "test"\n'
        '[files]\ncorpus = "corpus.jsonl"\nqueries = "queries.jsonl"\ntest = "qrels.tsv"\n[settings]\nk_values = [1, 10]\n'
    )
    return [folder / "sts.toml", folder / "cls.toml", folder / "ret.toml"]


def comparable(root: Path) -> dict[str, dict]:
    store = ResultStore(root)
    return {str(p.relative_to(root)): CellResult.read(p).comparable() for p in store.files()}


def assert_same(a: dict[str, dict], b: dict[str, dict]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        left, right = dict(a[name]), dict(b[name])
        scores_l, scores_r = left.pop("scores"), right.pop("scores")
        assert left.pop("main_score") == pytest.approx(right.pop("main_score"), abs=1e-6), name
        assert scores_l.keys() == scores_r.keys()
        for key in scores_l:
            assert scores_l[key] == pytest.approx(scores_r[key], abs=1e-6, nan_ok=True), (name, key)
        left.pop("units"), right.pop("units")  # per-unit floats: compared by the scores they give
        left.pop("ci", None), right.pop("ci", None)
        assert left == right, name


def test_ray_matrix_equals_the_local_one(cluster, tmp_path: Path) -> None:
    tasks = [load_task_file(p) for p in small_tasks(tmp_path)]
    cells = plan([EncoderSpec.parse(e) for e in ENCODERS], tasks)
    local = run_local(cells, ResultStore(tmp_path / "local"), progress=False)
    remote = run_ray(cells, ResultStore(tmp_path / "ray"), progress=False, shard_size=64)  # the corpus goes out in shards
    assert len(local) == len(remote) == 6
    assert all(r.ok for r in local + remote), [r.error for r in local + remote if not r.ok]
    assert_same(comparable(tmp_path / "local"), comparable(tmp_path / "ray"))
    # resume on Ray: everything is done, nothing is resubmitted or rewritten
    before = {p: p.read_bytes() for p in ResultStore(tmp_path / "ray").files()}
    again = run_ray(cells, ResultStore(tmp_path / "ray"), progress=False)
    assert len(again) == 6 and {p: p.read_bytes() for p in ResultStore(tmp_path / "ray").files()} == before


def test_cli_joins_the_cluster_and_records_a_failing_cell(cluster, tmp_path: Path) -> None:
    tasks = small_tasks(tmp_path)
    broken = tmp_path / "not-a-model"
    broken.mkdir()
    args = [sys.executable, "-m", "evalkit", "run", "--executor", "ray", "--address", cluster, "-o", str(tmp_path / "out"), "--no-progress"]
    args += ["-e", "tfidf:lexical", "-e", f"static:{broken}", "-t", str(tasks[0])]
    proc = subprocess.run(args, capture_output=True, text=True, cwd=REPO, timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 1, proc.stderr  # one cell failed, the other finished
    assert "cell failed: static:" in proc.stderr and "Traceback" not in proc.stderr
    results = {r.encoder: r for r in ResultStore(tmp_path / "out").load_all(include_failed=True)}
    assert results["tfidf:lexical"].ok and not results[f"static:{broken}"].ok
    assert (tmp_path / "out" / "leaderboard.md").exists()


def test_gpu_requests() -> None:
    from evalkit.errors import SpecError
    from evalkit.execution.cells import Cell

    task = load_task_file(REPO / "tasks" / "stsbenchmark.toml")

    def group(*specs: str) -> list[Cell]:
        return [Cell(EncoderSpec.parse(s), task, "test") for s in specs]

    assert resources_for(group("sbert:all-MiniLM-L6-v2"), cluster_gpus=2) == {"num_cpus": 1, "num_gpus": 1}
    assert resources_for(group("sbert:all-MiniLM-L6-v2"), cluster_gpus=0) == {"num_cpus": 1, "num_gpus": 0}
    assert resources_for(group("static:tokenlearn-static"), cluster_gpus=2) == {"num_cpus": 1, "num_gpus": 0}
    assert resources_for(group("sbert:all-MiniLM-L6-v2?device=cpu"), cluster_gpus=2)["num_gpus"] == 0
    with pytest.raises(SpecError, match="no GPU"):
        resources_for(group("hf:all-MiniLM-L6-v2?device=cuda"), cluster_gpus=0)


def test_sharded_encoding_is_row_for_row_the_same(cluster) -> None:
    import numpy as np

    from evalkit.encoders import load_encoder
    from evalkit.execution.ray import ShardedEncoder

    lines = (DATA / "sts/stsbenchmark/test.tsv").read_text(encoding="utf-8").splitlines()[1:501]
    texts = [part for line in lines for part in line.split("\t")[:2]]
    inner = load_encoder("static:tokenlearn-static")
    expected = inner.encode(texts)
    # A static model encodes a shard in a millisecond, less than a worker takes to start: give workers time to join.
    sharded = ShardedEncoder(inner, shard_size=100, resources={"num_cpus": 1}, patience_s=30)
    np.testing.assert_array_equal(sharded.encode(texts), expected)
    assert sharded.remote_shards == 9 and sharded.local_shards == 1
    # No worker can ever take a shard (a resource no node has): this worker steals them all, no deadlock.
    stuck = ShardedEncoder(inner, shard_size=100, resources={"num_cpus": 1, "resources": {"no-such-node": 1}}, patience_s=0.05)
    np.testing.assert_array_equal(stuck.encode(texts), expected)
    assert stuck.remote_shards == 0 and stuck.local_shards == 10
    inner.close()


def test_ray_is_imported_only_when_the_ray_executor_runs() -> None:
    code = "import sys, evalkit.cli, evalkit.execution, evalkit.execution.ray, evalkit.commands.run; assert 'ray' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=60)
