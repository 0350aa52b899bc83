"""The GPU worker's install set (``constraints-gpu.txt``) resolves, and stays in step with ``constraints.txt``.

vLLM cannot be installed on our CPU machines, but pip can resolve its
dependency graph: ``pip install --dry-run`` against the package index proves
that ``pip install -c constraints-gpu.txt -e ".[gpu]"`` has a solution (it had
none with ``constraints.txt``: every recent vLLM pins a fastapi, transformers
or numpy that conflicts with it).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: The packages whose pins the GPU set changes (and why: constraints-gpu.txt's header).
GPU_SET = {"vllm", "prefect", "fastapi", "transformers", "numpy", "packaging", "python-slugify"}


def _pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==(\S+)", line)
        if m:
            pins[m.group(1).lower().replace("_", "-")] = m.group(2)
    return pins


def test_gpu_constraints_differ_from_cpu_constraints_only_in_the_gpu_set():
    cpu, gpu = _pins(REPO / "constraints.txt"), _pins(REPO / "constraints-gpu.txt")
    changed = {name for name in cpu.keys() | gpu.keys() if cpu.get(name) != gpu.get(name)}
    assert changed == GPU_SET
    assert gpu["torch"] == cpu["torch"]  # vLLM 0.32.0 pins the torch the CPU set already uses


@pytest.mark.slow
def test_gpu_install_resolves_with_pip_dry_run(tmp_path):
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
         "--disable-pip-version-check", "--report", str(report), "-c", "constraints-gpu.txt", "-e", ".[gpu]"],
        cwd=REPO, capture_output=True, text=True, timeout=1200, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    chosen = {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in json.loads(report.read_text())["install"]}
    gpu = _pins(REPO / "constraints-gpu.txt")
    assert chosen["vllm"] == gpu["vllm"] and chosen["torch"].split("+")[0] == gpu["torch"]
    assert chosen["transformers"] == gpu["transformers"] and chosen["prefect"] == gpu["prefect"]
