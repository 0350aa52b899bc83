"""Exact across ranks (issue 18), on 2 CPU processes (torchrun, gloo) against 1 process.

One launch of each (``tests/scripts/distributed_train.py dapo,fsdp[-grpo]``) serves
every test here, to keep the file CI-sized:

- GRPO ``dapo``: loss, advantages (``scale_rewards: batch``) and every gradient on
  2 ranks equal one process on the same global batch, where the first rank's
  completions are ~5x longer than the second's (a per-rank token normaliser
  would weigh them apart);
- FSDP (torch ``fully_shard``): SFT on 2 sharded ranks — 2 steps, a sharded
  checkpoint, a resumed run to step 3 on fresh weights — ends with the weights
  of 1 process training 3 steps straight on the same global batch; GRPO trains
  with a sharded policy (generation gathers the shards, every rank decodes the
  same number of steps);
- ``scale_rewards`` group | batch | none as in Dr. GRPO (no launch).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from trainers.losses import advantages, group_advantages

SCRIPT = Path(__file__).parent / "scripts" / "distributed_train.py"
ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(args: list[str], kinds: str, out: Path) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, *args, str(SCRIPT), kinds, str(out)], capture_output=True, text=True,
                          timeout=300, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return sorted((json.loads(m) for m in re.findall(r"RESULT (\{[^{}]*\})", proc.stdout)), key=lambda r: r["rank"])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("ranks")
    one = _run([], "dapo,fsdp", out)
    two = _run(["-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
                "--master_port", str(_free_port())], "dapo,fsdp-grpo", out)
    return out, one, two


def test_dapo_loss_and_gradients_on_two_ranks_equal_one_process(runs):
    tmp_path = runs[0]
    one, two = (torch.load(tmp_path / f"dapo_world{w}.pt") for w in (1, 2))
    assert abs(one["loss"]) > 1e-4  # a loss that is there to compare
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-5, abs=1e-7)
    assert two["entropy"] == pytest.approx(one["entropy"], rel=1e-5)
    # scale_rewards=batch: rank 0's advantages use the global batch's std
    torch.testing.assert_close(two["advantages"], one["advantages"][:8], rtol=1e-6, atol=1e-7)
    biggest = max(g.abs().max().item() for g in one["grads"].values())
    assert biggest > 0
    for name, g in one["grads"].items():
        torch.testing.assert_close(two["grads"][name], g, rtol=1e-4, atol=1e-6 * biggest, msg=name)



def test_fsdp_two_ranks_with_resume_equal_one_process(runs):
    tmp_path, one, two = runs
    assert [r["world"] for r in two] == [2, 2] and all(r["sharded"] for r in two)
    assert not one[0]["sharded"]
    # each rank holds half of the parameters
    assert sum(r["local_numel"] for r in two) == one[0]["local_numel"]
    assert (tmp_path / "sft_world2" / "checkpoint-2" / "rank1.pt").exists()  # sharded checkpoint resumed from
    a = load_file(tmp_path / "sft_world1" / "final" / "model.safetensors")
    b = load_file(tmp_path / "sft_world2" / "final" / "model.safetensors")
    init = {k: v for k, v in _init_weights().items() if k in a}
    assert max((a[k] - init[k]).abs().max().item() for k in a) > 1e-4  # training moved the weights
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-6, msg=k)
    logs = [json.loads(x) for x in (tmp_path / "sft_world2" / "metrics.jsonl").read_text().splitlines()]
    logs1 = [json.loads(x) for x in (tmp_path / "sft_world1" / "metrics.jsonl").read_text().splitlines()]
    for x, y in zip(logs, logs1):  # logged loss is the global batch's, not rank 0's
        assert abs(x["loss"] - y["loss"]) < 1e-4 and abs(x["grad_norm"] - y["grad_norm"]) < 1e-4
    assert (tmp_path / "grpo_world2" / "final" / "model.safetensors").exists()



def _init_weights():
    from trainers.toy import toy_model, toy_tokenizer

    return toy_model(toy_tokenizer(), seed=0).state_dict()


def test_scale_rewards_group_batch_none():
    r = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0])
    centred = torch.tensor([0.75, -0.25, -0.25, -0.25, 0.25, 0.25, 0.25, -0.75])
    torch.testing.assert_close(advantages(r, 4, "none"), centred)
    torch.testing.assert_close(advantages(r, 4, "group"), group_advantages(r, 4))
    torch.testing.assert_close(advantages(r, 4, "group"), centred / (0.5 + 1e-4))  # each group's sample std is 0.5
    batch_std = r.std(unbiased=True)
    torch.testing.assert_close(advantages(r, 4, "batch"), centred / (batch_std + 1e-4))
    # unjudged (NaN) rewards: advantage 0 and left out of the std
    rn = torch.tensor([1.0, float("nan"), 0.0, 0.0])
    a = advantages(rn, 4, "batch")
    assert a[1] == 0 and a[0] == pytest.approx((1 - 1 / 3) / (torch.tensor([1.0, 0, 0]).std() + 1e-4).item())
    with pytest.raises(ValueError, match="scale_rewards"):
        advantages(r, 4, "rank")
