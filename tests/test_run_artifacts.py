"""Prefect artifacts that help (issue 19): a stage's artifacts name its version
by full location (and viewer link when configured), carry its plots and round
its numbers; every artifact has a description; the pipeline gets a roll-up;
shard task runs carry the shard's name. Under the shared Prefect test harness."""

from __future__ import annotations

import asyncio
import json

import pytest
from prefect import flow

from datagen.store import Store
from flows.common import map_version, publish, publish_rollup

pytestmark = pytest.mark.usefixtures("prefect_harness")


def _rows(n: int) -> list[dict]:
    return [{"problem_id": f"p{i}", "sample_id": f"p{i}:0", "source": "t", "domain": "math", "language": "en",
             "prompt": f"q{i}", "completion_tokens": 10 + i, "accepted": i % 2 == 0,
             "drop": None if i % 3 else "length:truncated"} for i in range(n)]


def _artifacts(flow_run_id):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    async def read():
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))

    return asyncio.run(read())


def _task_runs(flow_run_id):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async def read():
        async with get_client() as client:
            return await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))

    return asyncio.run(read())


def _double(rows):
    return [{**r, "prompt": r["prompt"] * 2} for r in rows], {"rows": len(rows), "seconds/x": 0.00022539700000834273}


@pytest.mark.parametrize("viewer", [None, "http://viewer.example:8765"])
def test_stage_artifacts_link_the_version_show_plots_and_round(tmp_path, monkeypatch, viewer):
    if viewer:
        monkeypatch.setenv("DATAGEN_VIEWER_URL", viewer)
    else:
        monkeypatch.delenv("DATAGEN_VIEWER_URL", raising=False)
    root = str(tmp_path / "store")
    store = Store(root)
    w = store.writer("src", stage="generate", batch_rows=4, shard_bytes=1)
    w.write(_rows(12))
    source = w.commit()
    assert len(source.shards) == 3

    @flow(name="artifact-test")
    def stage_flow():
        from prefect.runtime import flow_run

        out = store.writer("dst", stage="filter", parents=[source.ref])
        stats = map_version(store, source, out, _double, stage="filter")
        m = out.commit(stats=stats)
        publish("filter", m, stats, store=store)
        publish_rollup(root, {"generate": source.ref, "filter": m.ref})
        return str(flow_run.id), m

    run_id, m = stage_flow()
    arts = {a.key: a for a in _artifacts(run_id)}
    assert set(arts) == {"filter-dst", "filter-dst-version", "pipeline-versions"}
    assert all(a.description for a in arts.values())

    table = arts["filter-dst"].data
    values = {row["statistic"]: row["value"] for row in (json.loads(table) if isinstance(table, str) else table)}
    # three shards' stats summed (3 x 0.000225397…), rounded for reading
    assert values["rows"] == "12" and values["seconds/x"] == "0.000676"

    md = arts["filter-dst-version"].data
    assert f"`{store.objects.uri(f'dst/{m.id}')}`" in md and m.ref in md
    assert "**drops**" in md and "**lengths**" in md
    if viewer:
        assert f"({viewer}/v/{m.ref}/)" in md and f"({viewer}/v/{m.ref}/plots/drops.png)" in md
        assert "data:image/png" not in md
    else:
        assert "data:image/png;base64," in md and "viewer" not in md

    rollup = arts["pipeline-versions"].data
    assert source.ref in rollup and m.ref in rollup and store.objects.uri(f"src/{source.id}") in rollup

    names = sorted(t.name for t in _task_runs(run_id))
    assert names == ["dst/part-00000", "dst/part-00001", "dst/part-00002"]


def test_generate_shard_tasks_are_named_by_shard_and_tagged_gpu_only_on_a_gpu(tmp_path):
    from datagen.config import build
    from datagen.files import write_records
    from datagen.problems import arithmetic_problems
    from datagen.tinymodel import save_tiny
    from flows.generate import GenerateParams, generate_flow, uses_gpu
    from flows.ingest import IngestParams, ingest_flow

    problems = tmp_path / "problems.jsonl"
    write_records(problems, arithmetic_problems(4, seed=0, max_ops=1, max_operand=9))
    root = str(tmp_path / "store")
    src = ingest_flow(IngestParams(root=root, file=str(problems)))
    params = build(GenerateParams, {"root": root, "input": src, "shard_size": 2, "generation": {
        "backend": {"kind": "hf", "model": str(save_tiny(tmp_path / "model")), "device": "cpu"},
        "n": 1, "k": 0, "exemplars": None, "template": "r1_zero.v1", "sampling": {"max_tokens": 4, "seed": 0}}})
    assert not uses_gpu(params.generation)
    ref = generate_flow(params)
    m = Store(root).resolve(ref)
    runs = _task_runs(m.flow_run_id)
    shard_names = sorted(s.path.rsplit("/", 1)[1][: -len(".parquet")] for s in m.shards)
    assert sorted(t.name for t in runs) == [f"generate {n}" for n in shard_names]
    assert all("gpu" not in t.tags for t in runs)

    gpu = params.generation.model_copy(update={"backend": params.generation.backend.model_copy(
        update={"device": "cuda:0"})})
    assert uses_gpu(gpu)
