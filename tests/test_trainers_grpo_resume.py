"""GRPO checkpoints resume exactly: a run stopped after a checkpoint and resumed
ends with the same weights and rewards as one that was never interrupted."""

import torch

from trainers.grpo import train_grpo
from trainers.toy import ToyLastDigit, toy_grpo_config, toy_model, toy_tokenizer


def _run(out_dir, steps: int):
    torch.set_num_threads(1)
    tok = toy_tokenizer()
    model = toy_model(tok, seed=0)  # the resumed run loads its weights from the checkpoint
    cfg = toy_grpo_config(str(out_dir), seed=0, max_steps=steps, prompts_per_step=4, num_generations=4,
                          save_every=2, resume=True)
    result = train_grpo(cfg, ToyLastDigit().train_rows(), model=model, tokenizer=tok)
    return model, result


def test_resume_from_checkpoint_is_exact(tmp_path):
    straight, full = _run(tmp_path / "straight", 4)
    _run(tmp_path / "interrupted", 2)  # stops after its step-2 checkpoint
    resumed, rest = _run(tmp_path / "interrupted", 4)
    assert rest.steps == 4 and [h["step"] for h in rest.history] == [3, 4]
    assert [h["rewards"] for h in rest.history] == [h["rewards"] for h in full.history[2:]]
    for (name, a), (_, b) in zip(straight.named_parameters(), resumed.named_parameters()):
        assert torch.equal(a, b), name
