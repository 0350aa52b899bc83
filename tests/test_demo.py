"""``make demo`` end to end: R1 in miniature, in a scratch folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from datagen.store import Store


@pytest.mark.slow
@pytest.mark.timeout(660)  # the demo's own 600 s limit fires first, with its stderr
def test_demo_distils_a_better_student(tmp_path):
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
