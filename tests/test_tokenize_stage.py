"""Tokenise once, as a stage (issue 18): the ``tokenize`` flow writes token ids + assistant masks
into a dataset version keyed by the tokenizer and chat template's hashes; ``sft`` trains from it
memory-mapped and reaches the loss of training on the raw rows."""

from __future__ import annotations

import json

import numpy as np
import pytest

from datagen.store import open_store
from datagen.tinymodel import build_model, build_tokenizer
from trainers.data import IGNORE, tokenize_chat
from trainers.tokenize import TokenizedSet, materialize_version, template_fingerprint

ROWS = [{"problem_id": f"p{i}", "sample_id": f"p{i}:0", "source": "toy", "domain": "math", "language": "en",
         "prompt": f"{i}+1=",
         "messages": [{"role": "user", "content": f"{i}+1="}, {"role": "assistant", "content": str(i + 1)}]}
        for i in range(40)]
LONG = {**ROWS[0], "sample_id": "long:0", "messages": [{"role": "user", "content": "x" * 80},
                                                        {"role": "assistant", "content": "y"}]}


def mix_version(root, rows=ROWS, extra=(LONG,)) -> str:
    """An SFT mix version in two shards (the order across shards must survive), one row too long for 32."""
    w = open_store(root).writer("sft-mix", stage="mix")
    half = len(rows) // 2
    w.write_shard("part-00000", [*rows[:half], *extra])
    w.write_shard("part-00001", rows[half:])
    return w.commit().ref


def saved_tokenizer(path, **kw) -> str:
    build_tokenizer(**kw).save_pretrained(path)
    return str(path)


def test_tokenize_writes_a_version_keyed_by_the_template_hash(any_root, tmp_path, prefect_harness):
    from flows.tokenize import TokenizeParams, tokenize_flow

    source = mix_version(any_root)
    tok_dir = saved_tokenizer(tmp_path / "tok")
    ref = tokenize_flow(TokenizeParams(root=any_root, input=source, tokenizer=tok_dir, max_length=32))
    store = open_store(any_root)
    m = store.resolve(ref)
    fp = template_fingerprint(build_tokenizer())
    assert m.dataset == "sft-mix-tokens" and m.stage == "tokenize" and [str(p) for p in m.parents] == [source]
    assert {k: m.config[k] for k in ("template_sha256", "tokenizer_sha256", "max_length", "truncate")} == {
        "template_sha256": fp["template_sha256"], "tokenizer_sha256": fp["tokenizer_sha256"], "max_length": 32,
        "truncate": "drop"}
    assert m.config["template_name"] and m.config["tokenizer"] == tok_dir
    assert m.rows == len(ROWS) and m.stats["tokenize"]["dropped_too_long"] == 1
    assert m.stats["tokenize"]["rows_in"] == len(ROWS) + 1

    # second run: the same version, nothing written; the same tokenizer elsewhere: the same key
    assert tokenize_flow(TokenizeParams(root=any_root, input=source, tokenizer=tok_dir, max_length=32)) == ref
    moved = saved_tokenizer(tmp_path / "tok-copy")
    assert tokenize_flow(TokenizeParams(root=any_root, input=source, tokenizer=moved, max_length=32,
                                        batch_rows=7)) == ref
    assert len(store.versions("sft-mix-tokens")) == 1
    # another chat template, another vocabulary (same template), or another max_length: another version
    other = saved_tokenizer(tmp_path / "tok-think", prefill_think=True)
    assert tokenize_flow(TokenizeParams(root=any_root, input=source, tokenizer=other, max_length=32)) != ref
    vocab = saved_tokenizer(tmp_path / "tok-digits", charset="0123456789+=")
    assert tokenize_flow(TokenizeParams(root=any_root, input=source, tokenizer=vocab, max_length=32)) != ref
    # on S3, in 2 worker processes (each reaches the store itself); locally on threads, one shard at a time
    # (a cluster costs ~10 s)
    how = ({"runner": {"kind": "processes", "workers": 2}} if any_root.startswith("s3://")
           else {"shards_in_flight": 1})
    wider = tokenize_flow(TokenizeParams(root=any_root, input=source, tokenizer=tok_dir, max_length=64, **how))
    assert wider != ref
    # the same rows as the first run's (the long row is too long for 64 too)
    assert store.scan(wider).collect().select("sample_id", "input_ids", "assistant_mask").equals(
        store.scan(ref).collect().select("sample_id", "input_ids", "assistant_mask"))

    # the rows as Parquet: readable by polars, ids carried over, masks = the trainer's labels
    frame = store.scan(ref).collect()
    assert frame["sample_id"].to_list() == [r["sample_id"] for r in ROWS]
    tok = build_tokenizer()
    s = tokenize_chat(tok, ROWS[25]["messages"])
    assert frame["input_ids"][25].to_list() == s.input_ids
    assert frame["assistant_mask"][25].to_list() == [int(x != IGNORE) for x in s.labels]

    # decoded once into a memory-mapped set, in order across shards
    path = materialize_version(store, m, tmp_path / "cache")
    ts = TokenizedSet.open(path)
    assert len(ts) == len(ROWS) and ts.meta["template_sha256"] == fp["template_sha256"]
    for i in (0, 19, 20, 39):
        a, b = int(ts.offsets[i]), int(ts.offsets[i + 1])
        assert ts.tokens[a:b].tolist() == tokenize_chat(tok, ROWS[i]["messages"]).input_ids
    (path / "tokens.bin").touch()
    before = (path / "tokens.bin").stat().st_mtime_ns
    assert materialize_version(store, m, tmp_path / "cache") == path
    assert (path / "tokens.bin").stat().st_mtime_ns == before  # a version is decoded once per machine


def test_sft_from_the_tokenized_version_reaches_the_loss_of_raw_rows(tmp_path, prefect_harness):
    from flows.train import SFTParams, sft_flow
    from trainers.config import SFTConfig
    from trainers.sft import train_sft

    tok = build_tokenizer()
    model_dir = tmp_path / "model"
    build_model(tok, hidden_size=32, seed=5).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    root = str(tmp_path / "store")
    source = mix_version(root)
    sft = {"model": str(model_dir), "learning_rate": 1e-3, "per_device_batch_size": 4, "max_length": 32,
           "gradient_accumulation_steps": 2, "max_steps": 4, "warmup_ratio": 0.25, "seed": 3, "resume": False}

    raw = train_sft(SFTConfig(**sft, output_dir=str(tmp_path / "raw")), [*ROWS[:20], LONG, *ROWS[20:]])
    run_ref = sft_flow(SFTParams(root=root, input=source, sft={**sft, "output_dir": str(tmp_path / "flow")},
                                 gpu_limit=False))
    store = open_store(root)
    run = store.resolve(run_ref)
    tokens = store.resolve("sft-mix-tokens")
    assert [str(p) for p in run.parents] == [tokens.ref]  # trained from the tokenised version
    assert run.stats["final_metrics"]["loss"] == pytest.approx(raw.metrics["loss"], rel=1e-5)
    assert run.stats["sft"]["dropped_too_long"] == raw.dropped_too_long == 1  # by tokenize, reported by sft
    flow_losses = [x["loss"] for x in store.scan(run_ref).collect().to_dicts() if x.get("loss") is not None]
    raw_losses = [json.loads(x)["loss"] for x in (tmp_path / "raw" / "metrics.jsonl").read_text().splitlines()
                  if "loss" in json.loads(x)]
    np.testing.assert_allclose(flow_losses, raw_losses, rtol=1e-5)
    # given the tokenised version itself, the sft flow finds the same run
    assert sft_flow(SFTParams(root=root, input=tokens.ref, sft={**sft, "output_dir": str(tmp_path / "flow")},
                              gpu_limit=False)) == run_ref


def test_a_set_made_by_another_template_or_too_long_is_refused(tmp_path, prefect_harness):
    from datagen.cli.main import main
    from flows.tokenize import TokenizeParams, tokenize_flow
    from trainers.config import SFTConfig
    from trainers.sft import train_sft

    root = str(tmp_path / "store")
    source = mix_version(root, extra=())
    # the stage from the command line (flows/catalog.py)
    assert main(["run", "tokenize", "--root", root, "--set", f"input={source}", "--set",
                 f"tokenizer={saved_tokenizer(tmp_path / 't')}", "--set", "max_length=64"]) == 0
    store = open_store(root)
    ref = store.resolve("sft-mix-tokens").ref
    path = materialize_version(store, store.resolve(ref), tmp_path / "cache")
    think = build_tokenizer(prefill_think=True)
    with pytest.raises(ValueError, match="another tokenizer or chat template"):
        train_sft(SFTConfig(output_dir=str(tmp_path / "a"), data=str(path), max_steps=1, max_length=64),
                  model=build_model(think, hidden_size=32), tokenizer=think)
    tok = build_tokenizer()
    longest = TokenizedSet.open(path).meta["longest"]
    with pytest.raises(ValueError, match=f"up to {longest} tokens > max_length=8"):
        train_sft(SFTConfig(output_dir=str(tmp_path / "b"), data=str(path), max_steps=1, max_length=8),
                  model=build_model(tok, hidden_size=32), tokenizer=tok)
    with pytest.raises(ValueError, match="holds no token ids"):
        materialize_version(store, store.resolve(source), tmp_path / "cache")
    with pytest.raises(ValueError, match="no 'messages' column"):
        tokenize_flow(TokenizeParams(root=root, input=ref, tokenizer=str(tmp_path / "t")))


def test_a_resumed_shard_drops_the_output_shards_an_interrupted_run_left(tmp_path):
    """Output shard boundaries follow ``shard_tokens`` (a run option): a rerun with another value must not
    commit the interrupted run's leftovers beside its own shards."""
    from flows.tokenize import tokenize_shard_rows

    root = str(tmp_path / "store")
    store = open_store(root)
    src = store.resolve(mix_version(root, extra=()))
    tok = build_tokenizer()
    kw = {"max_length": 32, "truncate": "drop", "batch_rows": 4}
    w = store.writer("tok", stage="tokenize", version="v1")
    tokenize_shard_rows(store, src.shards[0].path, "tok", "v1", 0, tok, shard_tokens=1, **kw)  # a shard per batch
    store.objects.delete("tok/v1/stats/part-00000.json")  # killed before its end
    left = len(w.collect_shards())
    stats = tokenize_shard_rows(store, src.shards[0].path, "tok", "v1", 0, tok, shard_tokens=10**9, **kw)
    assert left == 5 and len(w.collect_shards()) == 1
    assert store.writer("tok", stage="tokenize", version="v1").commit().rows == stats["samples"] == 20
    # finished: skipped, its stats read back
    assert tokenize_shard_rows(store, src.shards[0].path, "tok", "v1", 0, tok, shard_tokens=1, **kw) == stats
