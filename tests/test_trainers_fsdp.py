"""FSDP for real (issue 18): torch ``fully_shard`` on 2 CPU processes (gloo).

SFT on 2 sharded ranks — 2 steps, a sharded checkpoint, then a resumed run to
step 3 on fresh weights — ends with the same weights as 1 process training 3
steps straight on the same global batch; and GRPO trains with a sharded
policy (generation gathers the shards; every rank decodes the same number of
steps)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

SCRIPT = Path(__file__).parent / "scripts" / "distributed_train.py"
ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(args: list[str], kind: str, out: Path) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, *args, str(SCRIPT), kind, str(out)], capture_output=True, text=True,
                          timeout=300, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return sorted((json.loads(m) for m in re.findall(r"RESULT (\{[^{}]*\})", proc.stdout)), key=lambda r: r["rank"])


def test_fsdp_two_ranks_with_resume_equal_one_process(tmp_path):
    one = _run([], "fsdp", tmp_path)
    two = _run(["-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
                "--master_port", str(_free_port())], "fsdp-grpo", tmp_path)
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
