"""``make demo`` end to end: R1 in miniature, where every stage does real work.

The quick demo runs as a user runs it (a subprocess in a scratch folder) and
the relations the issue asks for are asserted on its ``demo_report.json``
and on the versions it wrote; a second, tiny run twice in the same folder
checks that a rerun trains afresh instead of resuming versions whose models
are gone.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from datagen.store import Store

TINY = json.dumps({"train_problems": 40, "cold_start": 40, "heldout": 4, "words": 12, "judge_pairs": 12,
                   "pretrain_docs": 64, "pretrain_epochs": 1, "teacher_epochs": 1, "grpo_steps": 1, "eval_k": 2,
                   "student_epochs": 1})


def _demo(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    # One torch thread: the tests run beside another pytest worker on 2 cores, and torch's
    # threads oversubscribed on busy cores make a step many times slower.
    env = {**os.environ, "DATAGEN_ROOT": str(cwd / "datasets"), "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    env.pop("PREFECT_API_URL", None)
    return subprocess.run([sys.executable, "-m", "datagen.demo", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=900, check=False)


@pytest.mark.slow
@pytest.mark.timeout(960)
def test_quick_demo_shows_every_stage_doing_real_work(tmp_path):
    # Without --allow-weak: the demo exits 1, naming the relation, when one does not hold.
    proc = _demo(tmp_path, "--quick")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "demo_report.json").read_text())
    for key in ("teacher", "student_before", "student_after"):
        assert set(report[key]) >= {"pass@1", "maj@k", "k"}
    # R1's distillation, in miniature: the student gains what the teacher knows
    assert report["student_after"]["pass@1"] >= report["student_before"]["pass@1"] + 0.3
    assert report["teacher"]["pass@1"] > report["student_before"]["pass@1"]
    c = report["counts"]
    assert c["accepted"] < c["generated"]
    assert c["kept"] < c["accepted"]
    assert c["grpo_prompts"] > 0
    assert any(k.startswith("language:") for k in report["drops"])
    assert any(k.startswith("length:") for k in report["drops"])
    assert report["mean_reasoning_tokens"] >= 20
    assert report["mix"]["reasoning"] > 0 and report["mix"]["non_reasoning"] > 0
    assert report["mix"]["reasoning"] == 3 * report["mix"]["non_reasoning"] or \
        report["mix"]["reasoning"] // 3 == report["mix"]["non_reasoning"]
    m = report["mixing_rate"]
    assert m["with_language_reward"] < m["without_language_reward"]

    store = Store(tmp_path / "datasets")
    # The non-reasoning samples were judged by the judge verifier inside the verify flow.
    words = store.scan(report["datasets"]["words_verified"]).select("verdicts", "accepted").collect().to_dicts()
    assert words and all("judge" in (json.loads(w["verdicts"]) if isinstance(w["verdicts"], str) else w["verdicts"])
                         for w in words)
    # Every version the run wrote resolves; the printed browse commands name them and work.
    names = {ref.split("@")[0] for ref in report["datasets"].values()}
    for ref in report["datasets"].values():
        store.resolve(ref)
    shown = set(re.findall(r"datagen datasets show (\S+)", proc.stdout))
    assert names <= shown
    env = {**os.environ, "DATAGEN_ROOT": str(tmp_path / "datasets")}
    for cmd in (["datasets", "show", "demo-filtered"],
                ["datasets", "head", "demo-eval-student-after", "--columns", "prompt", "answer", "pass@1"]):
        out = subprocess.run([sys.executable, "-m", "datagen", *cmd], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=120, check=False)
        assert out.returncode == 0, out.stderr
    # No third-party noise: no tqdm bars from model loading, no warnings.
    text = proc.stdout + proc.stderr
    for noise in ("Loading weights", "Writing model shards", "it/s]", "Warning", "WARNING"):
        assert noise not in text, noise
    # A line per training step.
    assert re.search(r"pretraining\s+step \d+", proc.stdout)
    assert re.search(r"teacher sft\s+step \d+", proc.stdout)
    assert re.search(r"grpo with lang\s+step \d+/\d+", proc.stdout)
    assert re.search(r"student sft\s+step \d+", proc.stdout)


@pytest.mark.slow
@pytest.mark.timeout(960)
def test_demo_runs_again_in_the_same_folder(tmp_path):
    first = _demo(tmp_path, "--sizes", TINY, "--allow-weak")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    one = json.loads((tmp_path / "demo_report.json").read_text())
    second = _demo(tmp_path, "--sizes", TINY, "--allow-weak")
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    two = json.loads((tmp_path / "demo_report.json").read_text())
    store = Store(tmp_path / "datasets")
    # Data-only stages resume; every model-dependent stage is a new version with a model that exists.
    assert one["datasets"]["problems"] == two["datasets"]["problems"]
    for key in ("teacher_sft", "grpo_with_language_reward"):
        assert one["datasets"][key] != two["datasets"][key]
    stage = {"teacher_sft": "sft", "grpo_with_language_reward": "grpo"}
    for key, kind in stage.items():
        assert Path(store.resolve(two["datasets"][key]).stats[kind]["final_model_dir"]).is_dir()
