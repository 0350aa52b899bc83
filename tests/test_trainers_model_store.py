"""Models in the store (issue 18): a model committed by ``sft`` is loaded by
``grpo`` as ``NAME@VERSION`` from an S3 root on loopback (moto server), fetched
once into a local cache and checked file by file."""

from __future__ import annotations

import boto3
import pyarrow as pa
import pytest
import torch

from datagen.models_store import ModelRefError, commit_model, fetch_model, resolve_model
from datagen.store import open_store
from trainers.config import SFTConfig
from trainers.toy import ToyLastDigit, toy_grpo_config, toy_model, toy_tokenizer


def _weights(folder):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(folder).state_dict()


def test_sft_commits_a_model_that_grpo_loads_by_name_from_s3(s3_root, tmp_path, monkeypatch):
    from trainers.grpo import train_grpo
    from trainers.sft import train_sft

    monkeypatch.setenv("DATAGEN_MODEL_CACHE", str(tmp_path / "cache"))
    tok = toy_tokenizer()
    rows = [{"messages": [{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["answer"]}]}
            for r in ToyLastDigit().train_rows()[:16]]
    sft = train_sft(SFTConfig(output_dir=str(tmp_path / "sft"), max_steps=2, per_device_batch_size=4, max_length=32,
                              learning_rate=1e-3, resume=False, push_to_store="toy-sft", model_store=s3_root),
                    rows, model=toy_model(tok, seed=0), tokenizer=tok)
    assert sft.model_ref and sft.model_ref.startswith("toy-sft@")
    manifest = open_store(s3_root).resolve(sft.model_ref)
    assert manifest.stats["kind"] == "model" and manifest.stage == "sft"
    files = {r["file"] for r in open_store(s3_root).read_rows(sft.model_ref)}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= files

    # grpo on "another box": nothing but the name and the store root
    cfg = toy_grpo_config(str(tmp_path / "grpo"), max_steps=1, prompts_per_step=2, num_generations=2,
                          model=sft.model_ref, model_store=s3_root)
    result = train_grpo(cfg, ToyLastDigit().train_rows()[:8])
    assert result.steps == 1
    cached = resolve_model(sft.model_ref, root=s3_root)
    assert str(tmp_path / "cache") in cached
    trained = _weights(sft.final_model_dir)
    for k, v in _weights(cached).items():
        torch.testing.assert_close(v, trained[k], rtol=0, atol=0)

    # fetched once: with the store's objects gone, the cache still serves the name
    s3 = boto3.resource("s3")
    bucket = s3_root.split("/")[2]
    for obj in s3.Bucket(bucket).objects.filter(Prefix=f"store/toy-sft/{manifest.id}/files/"):
        obj.delete()
    assert resolve_model(sft.model_ref, root=s3_root) == cached


def test_a_damaged_file_is_refused_and_not_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("DATAGEN_MODEL_CACHE", str(tmp_path / "cache"))
    tok = toy_tokenizer()
    src = tmp_path / "m"
    toy_model(tok).save_pretrained(src)
    tok.save_pretrained(src)
    root = str(tmp_path / "store")
    ref = commit_model(src, "toy", root=root, stage="test").ref
    blob = tmp_path / "store" / "toy" / ref.split("@")[1] / "files" / "config.json"
    blob.write_text(blob.read_text().replace("64", "65"))
    with pytest.raises(ModelRefError, match="sha256"):
        fetch_model(ref, root=root)
    assert not list((tmp_path / "cache").rglob("config.json"))


def test_refs_that_name_nothing_or_a_dataset_fail_in_one_line(tmp_path):
    root = str(tmp_path / "store")
    with pytest.raises(ModelRefError, match="not found"):
        fetch_model("nope@v1", root=root)
    w = open_store(root).writer("rows", stage="test")
    w.write_shard("part-00000", pa.table({"a": [1]}))
    ref = w.commit().ref
    with pytest.raises(ModelRefError, match="not a model"):
        fetch_model(ref, root=root)
    assert resolve_model("org/hub-model") == "org/hub-model"  # a hub id passes through
    assert resolve_model(str(tmp_path)) == str(tmp_path)  # so does a path


def test_the_hf_generation_backend_takes_name_at_version(tmp_path, monkeypatch):
    from datagen.generate.backends.hf import HFBackend
    from datagen.generate.config import HFBackendConfig

    monkeypatch.setenv("DATAGEN_MODEL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("DATAGEN_ROOT", str(tmp_path / "store"))
    tok = toy_tokenizer()
    src = tmp_path / "m"
    toy_model(tok, seed=3).save_pretrained(src)
    tok.save_pretrained(src)
    ref = commit_model(src, "gen-model", stage="test").ref  # default root: $DATAGEN_ROOT
    backend = HFBackend(HFBackendConfig(model=ref, device="cpu"))
    assert backend.name == ref
    theirs = _weights(src)
    for k, v in backend.model.state_dict().items():
        torch.testing.assert_close(v, theirs[k], rtol=0, atol=0)
