"""``keep_cpu_memory`` (trainers/runtime.py): on CPU under glibc, freed activations stay in
the process, so a training loop stops taking page faults for memory it just freed. Each
case runs in a fresh interpreter (malloc settings are process-wide)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                reason="glibc malloc only")

# Allocate, touch and free a 40 MB tensor 20 times: above the largest mmap threshold glibc
# adapts to by itself (32 MB), so by default every round maps fresh pages; the page faults of
# the last 19 rounds tell whether freed memory was kept.
SCRIPT = """
import json, resource, sys, torch
from trainers.runtime import keep_cpu_memory
tuned = keep_cpu_memory(torch.device(sys.argv[1]))
for _ in range(10):  # warm-up: small allocations made meanwhile pin the heap's top a few times
    x = torch.ones(10 << 20); del x
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    x = torch.ones(10 << 20); del x
print(json.dumps({"tuned": tuned, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""


def _run(device="cpu", **env):
    base = {k: v for k, v in os.environ.items()
            if not k.startswith("MALLOC_") and k not in ("LD_PRELOAD", "GLIBC_TUNABLES", "DATAGEN_KEEP_CPU_MEMORY")}
    out = subprocess.run([sys.executable, "-c", SCRIPT, device], env={**base, **env}, capture_output=True, text=True,
                         check=True, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_freed_memory_is_reused_without_page_faults():
    on, off = _run(), _run(DATAGEN_KEEP_CPU_MEMORY="0")
    assert on["tuned"] and on["tuned"]["trim_threshold"] > 1 << 30
    assert off["tuned"] is None
    pages = 10 * (40 << 20) // 4096  # what fresh pages for every round would cost
    assert off["faults"] > pages // 2, off  # glibc's default: fresh pages each round
    assert on["faults"] < pages // 20, on  # kept: the rounds reuse the first round's pages


def test_an_allocator_the_user_chose_is_left_alone():
    assert _run(MALLOC_TRIM_THRESHOLD_="0")["tuned"] is None  # glibc settings the user made
    assert _run(GLIBC_TUNABLES="glibc.malloc.trim_threshold=0")["tuned"] is None
    assert _run(device="meta")["tuned"] is None  # not a CPU device
