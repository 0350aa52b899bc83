"""One shape for every stage: a rerun that changes only how a stage runs (workers, batch sizes,
GPU limit, fan-out) returns the same version without recomputing; a change of config makes a new one.

"Without recomputing" is checked by taking the work away: before the rerun the parent's data
shards are deleted, so a stage that read its input again would fail; one that finds its
committed version returns at once, from manifests alone.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from datagen.store import Store
from datagen.tinymodel import save_tiny

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """One real run of every data stage on 6 problems x 2 samples of a tiny model."""
    from flows.filter import FilterParams, filter_flow
    from flows.generate import GenerateParams, generate_flow
    from flows.ingest import IngestParams, ingest_flow
    from flows.mix import MixParams, mix_flow
    from flows.select import SelectParams, select_flow
    from flows.verify import VerifyParams, verify_flow

    tmp = tmp_path_factory.mktemp("stages")
    root = str(tmp / "store")
    model = str(save_tiny(tmp / "model"))
    ingest = IngestParams(root=root, synthetic={"n": 6, "max_ops": 1})
    generate = GenerateParams.model_validate({
        "root": root, "shard_size": 3, "gpu_limit": False,
        "generation": {"backend": {"kind": "hf", "model": model, "batch_size": 8}, "n": 2, "k": 0,
                       "exemplars": None, "template": "r1_zero.v1", "sampling": {"max_tokens": 8, "seed": 0}},
    })
    out = {"ingest": ingest_flow(ingest)}
    generate = generate.model_copy(update={"input": out["ingest"]})
    out["generate"] = generate_flow(generate)
    verify = VerifyParams(root=root, input=out["generate"], workers=1)
    out["verify"] = verify_flow(verify)
    filt = FilterParams(root=root, input=out["verify"], batch_size=256)
    out["filter"] = filter_flow(filt)
    select = SelectParams(root=root, input=out["filter"], select={"k": 1})
    out["select"] = select_flow(select)["selected"]
    mix = MixParams(root=root, reasoning=out["select"])
    out["mix"] = mix_flow(mix)
    params = {"ingest": ingest, "generate": generate, "verify": verify, "filter": filt, "select": select,
              "mix": mix}
    return Store(root), out, params


def _drop_data(store: Store, ref: str) -> None:
    """Delete a version's data shards (its manifest stays): reading it again would now fail."""
    m = store.resolve(ref)
    shutil.rmtree(Path(store.root) / m.dataset / m.id / "data")


def test_generate_rerun_with_other_run_options_resumes_and_new_config_is_new(chain):
    from flows.generate import generate_flow

    _store, out, params = chain
    p = params["generate"]
    faster = p.model_copy(update={"gpu_limit": True, "fan_out": False,
                                  "generation": p.generation.model_copy(update={
                                      "request_batch_size": 2,
                                      "backend": p.generation.backend.model_copy(update={"batch_size": 1})})})
    assert faster.stage_config() == p.stage_config()
    assert generate_flow(faster) == out["generate"]
    # fan-out would launch deployment runs; with the version committed it never gets that far
    assert generate_flow(p.model_copy(update={"fan_out": True})) == out["generate"]
    changed = p.model_copy(update={"generation": p.generation.model_copy(update={"n": 3})})
    assert changed.stage_config() != p.stage_config()


def test_verify_rerun_with_other_workers_resumes_and_config_change_is_new(chain):
    from flows.verify import verify_flow

    store, out, params = chain
    p = params["verify"]
    other = p.model_copy(update={"workers": 2})
    assert verify_flow(other) == out["verify"]
    changed = p.model_copy(update={"math_timeout_s": 7.0})
    ref = verify_flow(changed)
    assert ref != out["verify"] and store.resolve(ref).parents == store.resolve(out["verify"]).parents


def test_filter_rerun_with_other_batch_size_resumes_and_config_change_is_new(chain):
    from flows.filter import filter_flow

    store, out, params = chain
    p = params["filter"]
    assert filter_flow(p.model_copy(update={"batch_size": 1})) == out["filter"]
    changed = p.model_copy(update={"filters": p.filters.model_copy(update={
        "paragraph": p.filters.paragraph.model_copy(update={"max_words": 7})})})
    ref = filter_flow(changed)
    assert ref != out["filter"]
    assert store.resolve(ref).config["filters"]["paragraph"]["max_words"] == 7


def test_select_and_mix_rerun_resume_and_config_change_is_new(chain):
    from flows.mix import mix_flow
    from flows.select import select_flow

    _store, out, params = chain
    assert select_flow(params["select"])["selected"] == out["select"]
    assert mix_flow(params["mix"]) == out["mix"]
    p = params["select"]
    assert select_flow(p.model_copy(update={"select": p.select.model_copy(update={"k": 2})}))["selected"] \
        != out["select"]
    m = params["mix"]
    assert mix_flow(m.model_copy(update={"mix": m.mix.model_copy(update={"seed": 5})})) != out["mix"]


def test_ingest_rerun_resumes_and_config_change_is_new(chain):
    from flows.ingest import ingest_flow

    _store, out, params = chain
    p = params["ingest"]
    assert ingest_flow(p) == out["ingest"]
    assert ingest_flow(p.model_copy(update={"source": "elsewhere"})) != out["ingest"]


def test_reruns_never_read_their_input_again(chain):
    """Last (it deletes data): with every parent's shards gone, each stage still finds its version."""
    from flows.filter import filter_flow
    from flows.generate import generate_flow
    from flows.mix import mix_flow
    from flows.select import select_flow
    from flows.verify import verify_flow

    store, out, params = chain
    for ref in (out["ingest"], out["generate"], out["verify"], out["filter"], out["select"]):
        _drop_data(store, ref)
    assert generate_flow(params["generate"].model_copy(update={"gpu_limit": True})) == out["generate"]
    assert verify_flow(params["verify"].model_copy(update={"workers": 3})) == out["verify"]
    assert filter_flow(params["filter"].model_copy(update={"batch_size": 7})) == out["filter"]
    assert select_flow(params["select"])["selected"] == out["select"]
    assert mix_flow(params["mix"]) == out["mix"]


def test_training_stages_key_only_what_they_compute():
    from flows.train import GRPOParams, SFTParams

    sft = SFTParams(sft={"model": "m", "output_dir": "a", "save_every": 0, "log_every": 1})
    moved = SFTParams(sft={"model": "m", "output_dir": "b", "save_every": 5, "log_every": 9}, gpu_limit=False,
                      root="/elsewhere", output="runs2")
    assert sft.stage_config() == moved.stage_config()
    assert sft.stage_config() != SFTParams(sft={"model": "m", "learning_rate": 1e-3}).stage_config()
    grpo = GRPOParams(grpo={"model": "m", "prompts_per_step": 2, "num_generations": 4})
    micro = GRPOParams(grpo={"model": "m", "prompts_per_step": 2, "num_generations": 4, "micro_batch_size": 2})
    assert grpo.stage_config() == micro.stage_config()
    assert "run" not in grpo.stage_config() and "gpu_limit" in grpo.recorded()


def test_shard_stats_are_counts_that_add_up_and_rates_are_derived_when_shown():
    from datagen.verify.stage import accept
    from flows.common import merge_stats, shown

    def row(outcome):
        return {"domain": "math", "verdicts": {"math": {"outcome": outcome, "score": None, "detail": ""}}}

    a = accept([row("correct"), row("incorrect")]).stats  # shard 1: 1 of 2
    b = accept([row("correct"), row("correct"), row("correct"), row("error")]).stats  # shard 2: 3 of 3 decided
    merged = merge_stats([{"acceptance": a}, {"acceptance": b}])
    assert merged["acceptance"]["by_domain"]["math"] == {"rows": 6, "accepted": 4, "rejected": 1, "undecided": 1}
    assert "acceptance_rate" not in merged["acceptance"]["by_domain"]["math"]
    # 4 of 5 decided, not the mean of the shards' rates (0.5 and 1.0)
    assert shown(merged)["acceptance"]["by_domain"]["math"]["acceptance_rate"] == 0.8
