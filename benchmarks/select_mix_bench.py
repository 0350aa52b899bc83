"""Peak memory and time of select and mix over versions of R1-shaped rows (~8 KB completions), by size.

For each size (rows), writes a filtered version once into ``--root`` (8 samples
per problem, verdicts spread by a per-problem difficulty, some rows dropped,
completions of 4-12 KB — ~8 KB on average — cut from a random-word text, so
they compress like prose rather than like repeats), plus a non-reasoning
version of a quarter as many short rows. Then, each in a fresh child process
that reports its own peak RSS (``VmHWM``):

- ``select``: ``datagen.select.decide`` on the lazily scanned version, then the
  kept rows copied shard by shard (``flows.select.write_selected``), as the
  ``select`` flow does;
- ``mix``: ``datagen.mix.mix_streaming`` over the selected version and the
  non-reasoning one (600k : 200k scaled to the size), as the ``mix`` flow does;
- ``select_in_memory`` (with ``--in-memory``, smallest size only): the old way,
  ``select`` on the whole collected frame, for comparison.

Prints a table, then the figures as one JSON object on the last line.

    python benchmarks/select_mix_bench.py --sizes 100000 500000 1000000 --root /tmp/smb
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa

SAMPLES = 8
SHARD_ROWS = 10_000
_WORDS = ["the", "of", "and", "to", "in", "is", "that", "it", "for", "as", "with", "was", "on", "be", "by", "this", "are", "or", "from", "at", "which", "an", "but", "not", "have", "we", "can", "all", "so", "if", "then", "let", "compute", "value", "sum", "check", "step", "because", "therefore", "equals", "square", "root", "prime", "factor", "term", "series", "limit", "integral", "wait", "hmm", "verify", "again", "answer"]


def _text(seed: int, chars: int) -> str:
    rng = np.random.default_rng(seed)
    words = rng.choice(np.array(_WORDS), size=chars // 4)
    return " ".join(words.tolist())[:chars]


def build(root: str, rows: int, seed: int = 0) -> tuple[str, str]:
    """Write the filtered and non-reasoning versions of ``rows`` rows; returns their refs."""
    from datagen.store import Store

    store = Store(root)
    text = _text(seed, 24_000_000)
    rng = np.random.default_rng(seed)
    problems = rows // SAMPLES
    p_correct = rng.beta(2.0, 1.0, problems)
    writer = store.writer("filtered", stage="bench")
    for start in range(0, rows, SHARD_ROWS):
        n = min(SHARD_ROWS, rows - start)
        idx = np.arange(start, start + n)
        pid, k = idx // SAMPLES, idx % SAMPLES
        lengths = rng.integers(4_000, 12_000, n)
        offsets = rng.integers(0, len(text) - 12_000, n)
        draw = rng.random(n)
        accepted = [None if d < 0.01 else bool(d < p_correct[min(p, problems - 1)]) for d, p in zip(draw, pid)]
        reasoning = [text[o:o + ln] for o, ln in zip(offsets.tolist(), lengths.tolist())]
        table = pa.table({
            "problem_id": [f"p{p}" for p in pid], "sample_id": [f"p{p}:{j}" for p, j in zip(pid, k)],
            "source": ["bench"] * n, "domain": ["math"] * n, "language": ["en"] * n,
            "prompt": [f"Compute problem number {p}: find the value of the expression." for p in pid],
            "answer": ["42"] * n,
            "completion": [f"<think>{r}</think>The answer is 42." for r in reasoning],
            "completion_tokens": (lengths // 4).tolist(),
            "verdicts": ['{"math": {"outcome": "correct", "score": 1.0, "detail": ""}}'] * n,
            "accepted": pa.array(accepted, type=pa.bool_()),
            "drop": [("language:mixed" if (j == 0 and p % 4 == 0) else None) for p, j in zip(pid, k)],
        })
        writer.write_shard(f"part-{start // SHARD_ROWS:05d}", table)
    filtered = writer.commit().ref
    general = store.writer("general", stage="bench")
    n = max(rows // 4, 1)
    general.write_shard("part-00000", pa.table({
        "problem_id": [f"g{i}" for i in range(n)], "sample_id": [f"g{i}" for i in range(n)],
        "source": ["bench-general"] * n, "domain": ["general"] * n, "language": ["en"] * n,
        "prompt": [f"Write a note about item {i}." for i in range(n)],
        "answer": [f"Item {i} is a fine item." for i in range(n)],
    }))
    return filtered, general.commit().ref


def run_stage(stage: str, root: str, refs: list[str], rows: int) -> dict:
    """One stage in this process (the child); prints its figures as JSON."""
    from datagen.store import Store

    store = Store(root)
    start = time.perf_counter()
    if stage == "select":
        from datagen.select import SelectConfig, decide
        from flows.select import write_selected

        source = store.resolve(refs[0])
        decision = decide(store.scan(source), SelectConfig(k=4))
        writer = store.writer("selected", stage="bench")
        write_selected(store, source, decision, writer)
        out = {"rows_out": writer.commit(stats={}).rows}
    elif stage == "select_in_memory":
        from datagen.select import SelectConfig, select

        out = {"rows_out": select(store.scan(refs[0]).collect(), SelectConfig(k=4)).selected.height}
    else:
        from datagen.mix import MixConfig, mix_streaming
        from flows.mix import _batches

        scale = rows / 1_000_000
        config = MixConfig(reasoning_count=round(600_000 * scale), non_reasoning_count=round(200_000 * scale))
        writer = store.writer("sft-mix", stage="bench")
        with tempfile.TemporaryDirectory(dir=root) as spill:
            stats = mix_streaming([("reasoning", _batches(store, store.resolve(refs[0]), 4096)),
                                   ("non_reasoning", _batches(store, store.resolve(refs[1]), 4096))],
                                  writer.write, config, spill_dir=spill, bucket_rows=20_000)
        out = {"rows_out": writer.commit(stats={}).rows, "shortfall": stats["shortfall"]}
    out["seconds"] = round(time.perf_counter() - start, 2)
    out["peak_rss_mb"] = _vm_hwm_mb()
    print(json.dumps(out))
    return out


def _vm_hwm_mb() -> int:
    """This process's peak RSS in MB (``VmHWM``: per address space, so unlike ``ru_maxrss`` it does not carry
    the parent's size over fork + exec)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024)
    return -1


def child(stage: str, root: str, refs: list[str], rows: int) -> dict:
    """Run a stage in a fresh process; its figures (peak RSS in MB among them) plus its CPU seconds."""
    proc = subprocess.Popen([sys.executable, __file__, "--child", stage, "--root", root, "--rows", str(rows),
                             "--refs", *refs], stdout=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    out = proc.stdout.read()
    if status != 0:
        raise SystemExit(f"{stage} at {rows} rows failed (status {status}); its output:\n{out}")
    figures = json.loads(out.strip().splitlines()[-1])
    figures["cpu_s"] = round(usage.ru_utime + usage.ru_stime, 1)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 500_000, 1_000_000])
    parser.add_argument("--root", default=None, help="scratch folder (default: a temporary one); needs ~3 GB per 1M")
    parser.add_argument("--in-memory", action="store_true", help="also run the in-memory select at the smallest size")
    parser.add_argument("--keep", action="store_true", help="keep the generated versions")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--refs", nargs="*", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_stage(args.child, args.root, args.refs, args.rows)
        return

    base = args.root or tempfile.mkdtemp(prefix="select-mix-bench-")
    results = []
    print(f"{'rows':>10}{'stage':>18}{'rows out':>10}{'seconds':>9}{'CPU s':>8}{'peak RSS MB':>13}{'data MB':>9}")
    for i, rows in enumerate(args.sizes):
        root = os.path.join(base, f"rows-{rows}")
        start = time.perf_counter()
        refs = list(build(root, rows))
        build_s = time.perf_counter() - start
        data_mb = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs) / 2**20
        stages = ["select", "mix"] + (["select_in_memory"] if args.in_memory and i == 0 else [])
        for stage in stages:
            # mix reads what select wrote: the selected version, plus the non-reasoning one
            stage_refs = ["selected", refs[1]] if stage == "mix" else refs
            fig = child(stage, root, stage_refs, rows)
            fig.update(rows=rows, stage=stage, build_s=round(build_s, 1), data_mb=round(data_mb))
            results.append(fig)
            print(f"{rows:>10,}{stage:>18}{fig['rows_out']:>10,}{fig['seconds']:>9.1f}{fig['cpu_s']:>8.1f}"
                  f"{fig['peak_rss_mb']:>13,}{data_mb:>9,.0f}", flush=True)
        if not args.keep:
            shutil.rmtree(root)
    if not args.keep and not args.root:
        shutil.rmtree(base)
    print(json.dumps({"max_rss_kib_self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "results": results}))


if __name__ == "__main__":
    main()
