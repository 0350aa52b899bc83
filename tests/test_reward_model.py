"""Reward models as GRPO rewards (R1's RL for all scenarios): helpfulness on prompt + summary,
harmlessness on the whole output, batched; combined with rule rewards by domain in one config;
a GRPO run whose reward-model reward (a tiny randomly initialised classifier) rises over training
while the shuffled-reward control does not."""

from __future__ import annotations

import statistics

import pytest
import torch

from trainers.config import GRPOConfig
from trainers.reward_model import RewardModelConfig, RewardModelReward
from trainers.rewards import resolve_rewards


def _classifier(path, tokenizer, seed=0):
    from transformers import LlamaConfig, LlamaForSequenceClassification

    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256, num_labels=1,
                         pad_token_id=tokenizer.pad_token_id, initializer_range=0.2)
    torch.manual_seed(seed)
    LlamaForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def rm_dir(tmp_path_factory):
    from datagen.tinymodel import build_tokenizer

    return _classifier(tmp_path_factory.mktemp("rm") / "rm", build_tokenizer())


def test_helpfulness_reads_the_summary_and_harmlessness_the_whole_output(rm_dir):
    helpful = RewardModelReward(RewardModelConfig(model=rm_dir, input="summary", device="cpu"))
    harmless = RewardModelReward(RewardModelConfig(model=rm_dir, input="whole", device="cpu"))
    prompts = ["Say hi."] * 3
    completions = ["<think>be kind</think>Hi there!", "<think>be rude and mean</think>Hi there!",
                   "<think>never finished"]
    h = helpful(completions, prompt=prompts)
    w = harmless(completions, prompt=prompts)
    assert h[0] == pytest.approx(h[1], abs=1e-6)  # same summary, whatever the reasoning
    assert w[0] != pytest.approx(w[1], abs=1e-6)  # the reasoning is scored
    assert h[2] == 0.0 and 0.0 < w[2] < 1.0  # no final answer: the floor for helpfulness
    assert all(0.0 < v < 1.0 for v in h[:2] + w)
    one_by_one = RewardModelReward(RewardModelConfig(model=rm_dir, input="whole", batch_size=1, device="cpu"))
    assert one_by_one(completions, prompt=prompts) == pytest.approx(w, abs=1e-5)  # batching changes nothing
    with pytest.raises(ValueError, match="needs the 'prompt' column"):
        helpful(completions)


def test_reward_models_and_rule_rewards_by_domain_in_one_config(rm_dir, tmp_path):
    cfg = GRPOConfig(output_dir=str(tmp_path), rewards={"by_domain": 1.0},
                     reward_models={"helpfulness": {"model": rm_dir, "input": "summary", "device": "cpu"},
                                    "harmlessness": {"model": rm_dir, "input": "whole", "device": "cpu"}},
                     rewards_by_domain={"math": {"toy_accuracy": 1.0, "toy_format": 0.5},
                                        "general": {"helpfulness": 1.0, "harmlessness": 0.5}})
    fns = resolve_rewards(cfg.rewards, None, config=cfg)
    completions = ["7", "x", "<think>plan</think>Hello!", "whatever"]
    columns = {"prompt": ["1+6=", "1+6=", "Greet me.", "?"], "answer": ["7", "7", None, None],
               "domain": ["math", "math", "general", "code"]}
    got = fns["by_domain"](completions, **columns)
    assert got[0] == 1.5 and got[1] == 0.0  # accuracy + 0.5 * format
    rm_h = RewardModelReward(cfg.reward_models["helpfulness"])(["<think>plan</think>Hello!"], prompt=["Greet me."])[0]
    rm_w = RewardModelReward(cfg.reward_models["harmlessness"])(["<think>plan</think>Hello!"], prompt=["Greet me."])[0]
    assert got[2] == pytest.approx(rm_h + 0.5 * rm_w, abs=1e-6)
    assert got[3] is None  # a domain with no rewards: can't judge, never a fake 0.0
    with pytest.raises(ValueError, match="set rewards: {by_domain: 1.0}"):
        GRPOConfig(rewards={"accuracy": 1.0}, rewards_by_domain={"math": {"accuracy": 1.0}})
    bad = GRPOConfig(rewards={"by_domain": 1.0}, rewards_by_domain={"general": {"helpfulnes": 1.0}})
    with pytest.raises(ValueError, match=r"unknown reward\(s\) \['helpfulnes'\]"):
        resolve_rewards(bad.rewards, None, config=bad)


def _grpo(tmp_path, rm, *, shuffle: bool) -> list[float]:
    from trainers.grpo import train_grpo
    from trainers.toy import ToyLastDigit, toy_grpo_config, toy_model, toy_tokenizer

    torch.set_num_threads(1)
    tok = toy_tokenizer()
    cfg = toy_grpo_config(str(tmp_path / f"run-{shuffle}"), seed=0, shuffle_rewards=shuffle, max_steps=40,
                          prompts_per_step=8, num_generations=8, log_every=5, rewards={"helpfulness": 1.0},
                          reward_models={"helpfulness": {"model": rm, "input": "summary"}})
    result = train_grpo(cfg, ToyLastDigit().train_rows(), model=toy_model(tok, seed=0), tokenizer=tok)
    return [statistics.mean(v for v in h["rewards"] if v is not None) for h in result.history]


def test_grpo_raises_a_reward_model_reward_and_the_control_does_not(tmp_path):
    from trainers.toy import toy_tokenizer

    rm = _classifier(tmp_path / "rm", toy_tokenizer())
    trained = _grpo(tmp_path, rm, shuffle=False)
    control = _grpo(tmp_path, rm, shuffle=True)
    rise = statistics.mean(trained[-10:]) - statistics.mean(trained[:10])
    control_rise = statistics.mean(control[-10:]) - statistics.mean(control[:10])
    # Measured (seed 0, 1 thread): trained 0.533 -> 0.650, control 0.486 -> 0.507.
    assert rise > 0.08, trained
    assert rise > control_rise + 0.06, (trained, control)
