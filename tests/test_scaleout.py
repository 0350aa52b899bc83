"""CPU stages scale out (issue 18): verify and filter run their shard tasks in local processes or on a
Dask cluster, chosen by a ``how`` parameter, and write the same rows as Prefect's thread pool.

Real parts: a real Dask ``LocalCluster`` of worker *processes* (addressed like a remote cluster), real
Prefect task runs through ``prefect-dask``, the real math verifier and filters over a real store.
"""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl
import pytest

from datagen.store import Store

pytestmark = pytest.mark.usefixtures("prefect_harness")

SHARDS, ROWS_PER_SHARD = 4, 12


def _generations(root: str) -> str:
    """A generations version of 4 shards: math samples, right and wrong, with and without think tags."""
    store = Store(root)
    writer = store.writer("generations", stage="generate")
    for s in range(SHARDS):
        rows = []
        for i in range(ROWS_PER_SHARD):
            p = s * ROWS_PER_SHARD + i
            answer = str(p + 2)
            given = answer if p % 3 else str(p + 3)  # every third answer is wrong
            rows.append({
                "problem_id": f"p{p // 2}", "sample_id": f"p{p // 2}:{p % 2}", "source": "t", "domain": "math",
                "language": "en", "prompt": f"What is {p} + 2? Work it out step by step please.",
                "answer": str(p // 2 * 2 + 2) if p % 2 == 0 else answer,
                "completion": f"<think>We add {p} and 2 carefully, one step at a time.</think> "
                              f"The answer is \\boxed{{{given}}}." if p % 5 else f"The answer is {given}.",
            })
            if p % 7 == 0:  # a looping chain of thought: the repetition filter drops it
                rows[-1]["completion"] = "<think>" + "I add them again.\n" * 40 + f"</think> {answer}"
        writer.write_shard(f"part-{s:05d}", rows)
    return writer.commit().ref


def _contents(store: Store, ref: str) -> pl.DataFrame:
    frame = store.scan(ref).collect()
    return frame.sort("sample_id").select(sorted(frame.columns))


@pytest.fixture(scope="module")
def cluster():
    """A Dask cluster of 2 single-threaded worker processes, used through its address as a remote one would be."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as c:
        yield c


def test_verify_and_filter_give_the_same_rows_on_threads_processes_and_a_dask_cluster(tmp_path, cluster):
    from distributed import Client

    from flows.filter import FilterParams, filter_flow
    from flows.verify import VerifyParams, verify_flow

    root = str(tmp_path / "store")
    source = _generations(root)
    store = Store(root)
    runners = {"threads": {}, "processes": {"kind": "processes", "workers": 2},
               "dask": {"kind": "dask", "address": cluster.scheduler_address}}
    verified, filtered = {}, {}
    with Client(cluster.scheduler_address) as client:
        before = set(client.run(os.getpid).values())
        seen = {}
        for name, runner in runners.items():
            verified[name] = verify_flow(VerifyParams(root=root, input=source, output=f"verified-{name}",
                                                      workers=1, runner=runner))
            filtered[name] = filter_flow(FilterParams(root=root, input=verified[name], output=f"filtered-{name}",
                                                      runner=runner))
            seen[name] = client.run(os.getpid)
        # The dask runs ran on the cluster's workers: their processes are the ones the client sees, not ours.
        assert os.getpid() not in before and set(seen["dask"].values()) == before

    base_v, base_f = _contents(store, verified["threads"]), _contents(store, filtered["threads"])
    assert base_v.height == SHARDS * ROWS_PER_SHARD
    # The test means something: some verdicts accept, some reject, some rows are dropped by a filter.
    assert 0 < base_v["accepted"].sum() < base_v.height
    assert base_f["drop"].is_not_null().any() and base_f["drop"].is_null().any()
    for name in ("processes", "dask"):
        assert _contents(store, verified[name]).equals(base_v), name
        assert _contents(store, filtered[name]).equals(base_f), name
        assert len(store.resolve(filtered[name]).shards) == SHARDS
    # Shard stats merge to the same counts whichever runner ran them.
    stats = {n: store.resolve(verified[n]).stats["acceptance"] for n in runners}
    assert stats["processes"] == stats["threads"] == stats["dask"]


def test_shard_tasks_run_in_other_processes_with_the_processes_runner(tmp_path):
    """The shard function runs outside the flow's process (a pid per row shows where): every core can work."""
    from functools import partial

    from flows.common import ShardRunner

    root = str(tmp_path / "store")
    source = Store(root).resolve(_generations(root))
    store = Store(root)
    for name, runner in (("threads", ShardRunner()), ("procs", ShardRunner(kind="processes", workers=2))):
        writer = store.writer(f"pids-{name}", stage="test")
        stats = _run_flow(store, source, writer, partial(_tag_pid), runner)
        writer.commit(stats=stats)
        pids = set(store.scan(f"pids-{name}").collect()["pid"].to_list())
        if name == "threads":
            assert pids == {os.getpid()}
        else:
            assert os.getpid() not in pids and 1 <= len(pids) <= 2
        assert stats["rows"] == SHARDS * ROWS_PER_SHARD


def _tag_pid(rows):
    return [{**r, "pid": os.getpid()} for r in rows], {"rows": len(rows)}


def _run_flow(store, source, writer, fn, runner):
    from prefect import flow

    from flows.common import map_version

    @flow(name="pids")
    def pids():
        return map_version(store, source, writer, fn, stage="pids", runner=runner)

    return pids()


def test_runner_is_how_a_stage_runs_not_what_it_computes():
    from flows.common import ShardRunner
    from flows.filter import FilterParams
    from flows.verify import VerifyParams

    for cls in (FilterParams, VerifyParams):
        a = cls(input="x", runner={"kind": "processes", "workers": 3})
        assert a.stage_config() == cls(input="x").stage_config()
        assert a.run_options()["runner"]["kind"] == "processes"
    with pytest.raises(ValueError, match="needs an address"):
        ShardRunner(kind="dask")
    with pytest.raises(ValueError, match="only for kind 'dask'"):
        ShardRunner(kind="processes", address="tcp://h:8786")


@pytest.mark.parametrize("world", [2])
def test_sft_flow_launches_ranks_and_trains_the_weights_of_one_process(tmp_path, world):
    """``launch.processes: 2`` runs the sft flow as 2 torchrun ranks (gloo on CPU); with the same global batch
    (2 ranks x 2 rows vs 1 process x 2 rows x 2 accumulation steps) the trained weights equal one process's."""
    import torch
    from safetensors.torch import load_file

    from flows.train import SFTParams, sft_flow
    from trainers.toy import ToyLastDigit, toy_model, toy_tokenizer

    tok = toy_tokenizer()
    model_dir = tmp_path / "model"
    toy_model(tok, seed=0).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    root = str(tmp_path / "store")
    writer = Store(root).writer("sft-mix", stage="mix")
    writer.write_shard("part-00000", [
        {"problem_id": f"p{i}", "sample_id": f"p{i}", "source": "toy", "domain": "math", "language": "en",
         "prompt": r["prompt"], "messages": [{"role": "user", "content": r["prompt"]},
                                             {"role": "assistant", "content": r["answer"]}]}
        for i, r in enumerate(ToyLastDigit().train_rows()[:16])])
    source = writer.commit().ref
    runs = {}
    for n in (1, world):
        sft = {"model": str(model_dir), "output_dir": str(tmp_path / f"out{n}"), "max_steps": 2,
               "per_device_batch_size": 2, "gradient_accumulation_steps": world // n, "max_length": 32,
               "learning_rate": 1e-3, "lr_schedule": "constant", "warmup_ratio": 0.0, "resume": False,
               "save_every": 0, "token_cache": str(tmp_path / f"tok{n}")}
        runs[n] = Store(root).resolve(sft_flow(SFTParams(root=root, input=source, sft=sft, gpu_limit=False,
                                                         launch={"processes": n, "timeout_s": 300})))
    assert runs[world].stats["sft"]["world_size"] == world and "world_size" not in runs[1].stats["sft"]
    assert runs[world].stats["sft"]["steps"] == runs[1].stats["sft"]["steps"] == 2
    weights = {n: load_file(str(next(Path(runs[n].stats["sft"]["final_model_dir"]).glob("*.safetensors"))))
               for n in runs}
    assert weights[1].keys() == weights[world].keys()
    for name, w in weights[1].items():
        torch.testing.assert_close(weights[world][name], w, atol=1e-5, rtol=1e-4, msg=name)
    assert any(not torch.equal(w, load_file(str(next(model_dir.glob("*.safetensors"))))[k])
               for k, w in weights[1].items())  # training moved the weights


def test_launch_config_says_what_to_fix():
    from flows.train import LaunchConfig, SFTParams

    with pytest.raises(ValueError, match="main_address"):
        LaunchConfig(processes=2, nodes=2, node_rank=1)
    with pytest.raises(ValueError, match="below launch.nodes"):
        LaunchConfig(nodes=2, node_rank=2, main_address="10.0.0.1", main_port=29500)
    a = SFTParams(sft={"model": "m"}, launch={"processes": "gpus"})
    assert a.stage_config() == SFTParams(sft={"model": "m"}).stage_config()  # how it runs, not what
    assert LaunchConfig(processes="gpus").per_node() >= 1
