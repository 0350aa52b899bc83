"""Prefect flows under one test harness: lineage, resume, config validation."""

from __future__ import annotations

import asyncio
import itertools
import json

import pytest

from datagen.config import ConfigError, build, load
from datagen.files import write_records
from datagen.problems import arithmetic_problems
from datagen.store import Store
from datagen.tinymodel import save_tiny

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return str(save_tiny(tmp_path_factory.mktemp("tiny") / "model"))


def _pipeline_config(tmp_path, model: str) -> dict:
    problems = tmp_path / "problems.jsonl"
    write_records(problems, arithmetic_problems(6, seed=0, max_ops=1, max_operand=9))
    return {
        "root": str(tmp_path / "store"),
        "ingest": {"file": str(problems)},
        "generate": {
            "shard_size": 3,
            "generation": {
                "backend": {"kind": "hf", "model": model},
                "n": 2, "k": 0, "exemplars": None, "template": "r1_zero.v1",
                "sampling": {"max_tokens": 8, "seed": 0},
            },
        },
        "filter": {"filters": {"length": {"max_reasoning_tokens": 10_000}}},
        "select": {"select": {"k": 1}},
    }


def test_pipeline_writes_every_stage_with_lineage_and_resumes(tmp_path, tiny_model):
    from flows.pipeline import PipelineParams, pipeline_flow

    params = build(PipelineParams, _pipeline_config(tmp_path, tiny_model))
    out = pipeline_flow(params)
    store = Store(params.root)
    chain = ["ingest", "generate", "verify", "filter", "select", "mix"]
    manifests = {stage: store.resolve(out[stage]) for stage in chain}
    for parent, child in itertools.pairwise(chain):
        assert [str(p) for p in manifests[child].parents] == [out[parent]], child
    for stage in chain[1:]:
        assert manifests[stage].flow_run_id, stage
        assert manifests[stage].config, stage
    assert manifests["ingest"].rows == 6
    gens = store.scan(out["generate"]).collect()
    assert gens.height == 12 and gens["sample_id"].n_unique() == 12
    assert manifests["generate"].stats["generate"]["shards_generated"] == 2
    verified = store.scan(out["verify"]).collect()
    assert all("math" in json.loads(v) for v in verified["verdicts"].to_list())
    assert store.resolve(out["grpo_prompts"]).parents[0].version == manifests["filter"].id

    # Same config again: every stage finds its committed version.
    assert pipeline_flow(params) == out


def test_generate_rerun_skips_finished_shards(tmp_path, tiny_model):
    from datagen.generate.stage import plan_shards
    from flows.common import run_key
    from flows.generate import GenerateParams, ShardParams, generate_flow, run_shard
    from flows.ingest import IngestParams, ingest_flow

    cfg = _pipeline_config(tmp_path, tiny_model)
    problems = ingest_flow(IngestParams(root=cfg["root"], file=cfg["ingest"]["file"]))
    params = build(GenerateParams, {**cfg["generate"], "root": cfg["root"], "input": problems})
    store = Store(cfg["root"])
    source = store.resolve(problems)
    config = params.stage_config()
    # A crashed earlier run finished the first shard only.
    writer = store.writer("generations", stage="generate", run_key=run_key("generate", [source.ref], config))
    shards = plan_shards(store.scan(source).collect().to_dicts(), params.generation, params.shard_size)
    run_shard(ShardParams(root=cfg["root"], output="generations", version=writer.version,
                          shard_name=shards[0].name, generation=params.generation, problems=shards[0].problems,
                          gpu_limit=False))
    ref = generate_flow(params)
    m = store.resolve(ref)
    assert m.id == writer.version
    assert m.stats["generate"]["shards_skipped"] == 1 and m.stats["generate"]["shards_generated"] == 1
    assert m.rows == 12


def test_bad_config_is_rejected_before_a_flow_run_exists(tmp_path, capsys):
    from prefect.client.orchestration import get_client

    from datagen.cli.main import main

    async def count_runs():
        async with get_client() as client:
            return len(await client.read_flow_runs())

    before = asyncio.run(count_runs())
    code = main(["run", "generate", "--root", str(tmp_path), "--set", "generation.backend.kind=hf",
                 "--set", "generation.backend.model=x", "--set", "generation.n=0"])
    err = capsys.readouterr().err
    assert code == 2 and "generation.n" in err
    code = main(["run", "verify", "--set", "verifiers_by_domian.math=[math]"])
    err = capsys.readouterr().err
    assert code == 2 and "verifiers_by_domian: unknown key" in err
    assert asyncio.run(count_runs()) == before


def test_config_file_plus_overrides(tmp_path):
    from flows.verify import VerifyParams

    f = tmp_path / "v.yaml"
    f.write_text("input: gens@v1\nworkers: 2\n")
    p = load(VerifyParams, f, ["workers=1", "verifiers_by_domain.math=[math, format]"])
    assert p.input == "gens@v1" and p.workers == 1 and p.verifiers_by_domain["math"] == ["math", "format"]
    with pytest.raises(ConfigError, match="does not exist"):
        load(VerifyParams, tmp_path / "missing.yaml")
