"""GRPO exact across ranks (issue 18): the ``dapo`` loss and its gradients on
2 CPU ranks (torchrun, gloo) equal one process on the same global batch; and
``scale_rewards`` group | batch | none as in Dr. GRPO."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trainers.losses import advantages, group_advantages

SCRIPT = Path(__file__).parent / "scripts" / "distributed_train.py"
ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(args: list[str], out: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, *args, str(SCRIPT), "dapo", str(out)], capture_output=True, text=True,
                          timeout=240, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_dapo_loss_and_gradients_on_two_ranks_equal_one_process(tmp_path):
    _run([], tmp_path)
    _run(["-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
          "--master_port", str(_free_port())], tmp_path)
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
