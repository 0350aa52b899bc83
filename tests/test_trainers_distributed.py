"""Several processes (torchrun, gloo on CPU): data split across ranks, weights in sync."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parent / "scripts" / "distributed_train.py"
ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    # torchrun's --master_port 0 hangs the static rendezvous: ask the OS for one.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(kind: str, out_dir: Path) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
         "--master_port", str(_free_port()),
         str(SCRIPT), kind, str(out_dir)],
        capture_output=True, text=True, timeout=240, env=env, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # Both ranks write to one pipe: their lines can interleave without a newline between them.
    return sorted((json.loads(m) for m in re.findall(r"RESULT (\{[^{}]*\})", proc.stdout)), key=lambda r: r["rank"])


@pytest.mark.slow
def test_grpo_splits_prompts_across_ranks_and_keeps_weights_in_sync(tmp_path):
    ranks = _torchrun("grpo", tmp_path / "grpo")
    assert [r["world"] for r in ranks] == [2, 2]
    assert [r["accelerate_world"] for r in ranks] == [2, 2]
    assert [r["seen"] for r in ranks] == [16, 16]  # 8 prompts x G=4, half per rank
    assert ranks[0]["checksum"] == ranks[1]["checksum"]


@pytest.mark.slow
def test_sft_runs_data_parallel_with_weights_in_sync(tmp_path):
    ranks = _torchrun("sft", tmp_path / "sft")
    assert [r["world"] for r in ranks] == [2, 2] and [r["seen"] for r in ranks] == [3, 3]
    # accelerate itself runs 2 processes (on CPU it ignores torchrun unless asked), so
    # each rank takes its own slice of the micro-batches and DDP averages the gradients
    assert [r["accelerate_world"] for r in ranks] == [2, 2]
    assert ranks[0]["checksum"] == ranks[1]["checksum"]
