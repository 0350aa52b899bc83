"""Code-verifier throughput: test executions per second for trivial programs.

Measures ``datagen.verify.code.verify_code_batch`` with full isolation (empty
environment, PID/network/mount namespaces, minimal pivot_root filesystem,
memory cgroup, seccomp filter, private uid, rlimits; see the module docstring
of ``datagen.verify.code``) against the naive peer most harnesses use: one
``python -I solution.py`` subprocess per test (no isolation beyond a timeout).

Goal (issues 3 and 11): >= 100 isolated test executions/s on 2 cores. The
machine may be shared, so the figure that does not depend on what else runs
is CPU-seconds per execution (this process, its zygotes and every sandboxed
child, all reaped): 2 cores / that = the throughput on 2 idle cores.

    python benchmarks/verify_code_bench.py [--records 200] [--cases 5] [--workers 2]

Prints a table, then one JSON line with the figures.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
import time

from rich.console import Console
from rich.table import Table

from datagen.verify._sandbox import SandboxPool
from datagen.verify.code import verify_code_batch

PROGRAM = "a, b = map(int, input().split())\nprint(a + b)\n"


def _records(n: int, cases: int) -> tuple[list[str], list[str]]:
    completion = f"<think>add them</think>\n```python\n{PROGRAM}```"
    tests = json.dumps({
        "kind": "stdin_stdout", "time_limit_s": 2, "memory_limit_mb": 256,
        "cases": [{"input": f"{i} {i + 1}\n", "output": f"{2 * i + 1}\n"} for i in range(cases)],
    })
    return [completion] * n, [tests] * n


def bench_datagen(records: int, cases: int, workers: int) -> dict:
    completions, tests = _records(records, cases)
    cpu0 = _cpu_all()
    start = time.perf_counter()
    verdicts = verify_code_batch(completions, tests, workers=workers)
    wall = time.perf_counter() - start
    cpu = _cpu_all() - cpu0
    bad = [v for v in verdicts if v["outcome"] != "correct"]
    if bad:
        raise SystemExit(f"datagen: {len(bad)} records not correct, e.g. {bad[0]}")
    executions = records * cases
    # Zygote start-up (~50 ms each) is inside the measured time.
    return {"executions": executions, "wall_s": wall, "per_s": executions / wall, "cpu_s": cpu}


def bench_subprocess(records: int, cases: int, workers: int) -> dict:
    """The common harness: a fresh interpreter per test, stdout compared as text."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "solution.py")
        with open(path, "w") as fh:
            fh.write(PROGRAM)

        def run(i: int) -> bool:
            out = subprocess.run([sys.executable, "-I", path], input=f"{i} {i + 1}\n", capture_output=True, check=False,
                                 text=True, timeout=10)
            return out.returncode == 0 and out.stdout.split() == [str(2 * i + 1)]

        executions = records * cases
        cpu0 = _cpu_all()
        start = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(workers) as ex:
            ok = all(ex.map(run, range(executions)))
        wall = time.perf_counter() - start
        cpu = _cpu_all() - cpu0
    if not ok:
        raise SystemExit("subprocess peer failed a case")
    return {"executions": executions, "wall_s": wall, "per_s": executions / wall, "cpu_s": cpu}


def _cpu_all() -> float:
    """CPU seconds of this process and its reaped children (zygotes run as children)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200)
    parser.add_argument("--cases", type=int, default=5)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()

    ours = bench_datagen(args.records, args.cases, args.workers)
    peer = bench_subprocess(args.records // 4 or 1, args.cases, args.workers)
    table = Table(title=f"code verifier: trivial programs, {args.workers} workers on {os.cpu_count()} cores, "
                        f"load average {os.getloadavg()[0]:.1f}")
    for col in ("harness", "isolation", "executions", "wall s", "executions/s", "CPU ms/execution"):
        table.add_column(col, justify="right" if col not in ("harness", "isolation") else "left")
    probe = SandboxPool(1)
    isolation, layers = probe.isolation, probe.layers
    probe.close()
    ours_cpu, peer_cpu = ours["cpu_s"] / ours["executions"], peer["cpu_s"] / peer["executions"]
    table.add_row("datagen verify_code", isolation, str(ours["executions"]),
                  f"{ours['wall_s']:.2f}", f"{ours['per_s']:.0f}", f"{1000 * ours_cpu:.2f}")
    table.add_row("subprocess per test (peer)", "none", str(peer["executions"]), f"{peer['wall_s']:.2f}",
                  f"{peer['per_s']:.0f}", f"{1000 * peer_cpu:.2f}")
    Console().print(table)
    print(json.dumps({
        "benchmark": "verify_code",
        "cores": os.cpu_count(),
        "workers": args.workers,
        "datagen_executions_per_s": round(ours["per_s"], 1),
        "datagen_executions": ours["executions"],
        "peer_subprocess_executions_per_s": round(peer["per_s"], 1),
        "datagen_cpu_ms_per_execution": round(1000 * ours_cpu, 2),
        "datagen_executions_per_s_on_2_idle_cores": round(2 / ours_cpu, 1),
        "peer_cpu_ms_per_execution": round(1000 * peer_cpu, 2),
        "load_average_1min": round(os.getloadavg()[0], 1),
        "isolation": isolation,
        "layers": layers,
        "goal_executions_per_s": 100,
        "goal_met": ours["per_s"] >= 100,
    }))


if __name__ == "__main__":
    main()
