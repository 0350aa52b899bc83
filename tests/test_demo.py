"""``make demo`` end to end: R1 in miniature, in a scratch folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from datagen.store import Store


@pytest.mark.slow
@pytest.mark.timeout(1260)  # the two runs' own 600 s limits fire first, with their stderr
def test_demo_distils_a_better_student_and_runs_again(tmp_path):
    env = {**os.environ, "DATAGEN_ROOT": str(tmp_path / "datasets")}
    env.pop("PREFECT_API_URL", None)
    proc = subprocess.run([sys.executable, "-m", "datagen.demo"], cwd=tmp_path, env=env, capture_output=True, check=False,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "demo_report.json").read_text())
    assert report["teacher_accuracy"] >= 0.5
    assert report["student_accuracy_after"] > report["student_accuracy_before"]
    store = Store(tmp_path / "datasets")
    written = {store.resolve(ref).dataset for ref in report["datasets"]}
    assert {"demo-problems", "demo-generations", "demo-verified", "demo-filtered", "demo-selected",
            "demo-sft-mix", "demo-teacher-runs", "demo-student-runs"} <= written
    mix = store.resolve("demo-sft-mix")
    assert [str(p) for p in mix.parents] == [f"demo-selected@{store.resolve('demo-selected').id}"]

    # A second run in the same folder trains afresh (it used to resume versions whose models were deleted).
    again = subprocess.run([sys.executable, "-m", "datagen.demo"], cwd=tmp_path, env=env,
                           capture_output=True, check=False, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    second = json.loads((tmp_path / "demo_report.json").read_text())
    assert {r for r in second["datasets"] if r.startswith("demo-student-runs@")} != {
        r for r in report["datasets"] if r.startswith("demo-student-runs@")}
    assert second["student_accuracy_after"] > second["student_accuracy_before"]
    assert len(list((tmp_path / "demo_work").glob("run-*"))) == 1  # the first run's models are gone
