"""SFT on a tiny model: it trains every parameter, resumes exactly, logs metrics."""

import json

import pytest
import torch

from datagen.tinymodel import build_model, build_tokenizer
from trainers.config import GRPOConfig, SFTConfig
from trainers.sft import train_sft

ROWS = [{"messages": [{"role": "user", "content": f"{i}+1="}, {"role": "assistant", "content": str(i + 1)}]}
        for i in range(40)]


def cfg(tmp_path, **kw):
    base = {"output_dir": str(tmp_path), "learning_rate": 1e-3, "per_device_batch_size": 4, "max_length": 32,
                "gradient_accumulation_steps": 2, "max_steps": 4, "warmup_ratio": 0.25, "seed": 3}
    return SFTConfig(**(base | kw))


def test_sft_updates_every_parameter_and_logs(tmp_path):
    tok = build_tokenizer()
    model = build_model(tok, hidden_size=32)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    result = train_sft(cfg(tmp_path, eval_fraction=0.1, eval_every=2), ROWS, model=model, tokenizer=tok)
    assert all(not torch.equal(start[k], v) for k, v in model.state_dict().items())
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "loss" in x] == [1, 2, 3, 4]
    assert "eval_loss" in result.metrics and (tmp_path / "final" / "config.json").exists()


def test_resume_is_exact(tmp_path):
    import shutil

    tok = build_tokenizer()
    straight = build_model(tok, hidden_size=32)
    train_sft(cfg(tmp_path / "a"), ROWS, model=straight, tokenizer=tok)
    interrupted = build_model(tok, hidden_size=32)
    train_sft(cfg(tmp_path / "b", save_every=2), ROWS, model=interrupted, tokenizer=tok)
    shutil.rmtree(tmp_path / "b" / "checkpoint-4")  # as if killed after step 2's checkpoint
    again = build_model(tok, hidden_size=32, seed=99)  # different weights: all state must come from the checkpoint
    result = train_sft(cfg(tmp_path / "b"), ROWS, model=again, tokenizer=tok)
    assert result.steps == 4
    for (k, a), b in zip(straight.state_dict().items(), again.state_dict().values()):
        torch.testing.assert_close(a, b, msg=k)


def test_sft_reads_a_jsonl_path(tmp_path):
    from datagen.files import write_records

    path = tmp_path / "sft.jsonl"
    write_records(path, [{"messages": json.dumps(r["messages"])} for r in ROWS[:8]])
    tok = build_tokenizer()
    result = train_sft(cfg(tmp_path / "run", data=str(path), max_steps=1), model=build_model(tok, hidden_size=32),
                       tokenizer=tok)
    assert result.steps == 1


def test_config_micro_batch_must_divide_the_step():
    with pytest.raises(ValueError, match="pick a divisor of 32"):
        GRPOConfig(prompts_per_step=4, num_generations=8, micro_batch_size=5)


def test_config_rejects_unknown_keys():
    with pytest.raises(ValueError, match="extra"):
        SFTConfig(learning_rat=1e-3)


def test_config_eps_high_below_eps():
    with pytest.raises(ValueError, match="clip-higher must be >= epsilon"):
        GRPOConfig(epsilon=0.2, epsilon_high=0.1)


def test_command_line_trains_from_yaml_with_overrides(tmp_path):
    from datagen.tinymodel import save_tiny
    from trainers.sft import main

    model_dir = save_tiny(tmp_path / "model", hidden_size=32)
    data = tmp_path / "sft.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    (tmp_path / "sft.yaml").write_text(
        f"model: {model_dir}\ndata: {data}\noutput_dir: {tmp_path / 'out'}\nmax_steps: 5\nmax_length: 32\n")
    assert main(["--config", str(tmp_path / "sft.yaml"), "--set", "max_steps=2"]) == 0
    steps = [json.loads(x)["step"] for x in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    assert steps[-1] == 2 and (tmp_path / "out" / "final" / "config.json").exists()
