"""Viewer benchmark: a 1M-row version on a local root, served by ``datagen
datasets serve`` in a subprocess; times the version page and filtered rows
pages over HTTP and reads the server's peak memory.

Target (issue 19): the version page and a filtered rows page each answer in
< 1 s, with memory bounded (far below the version's size in memory: the
viewer never loads a version).

    .venv/bin/python benchmarks/viewer_bench.py [--rows 1000000] [--keep DIR]

The rows are made with vectorised Arrow (no Python loop per row) and written
through the store's streaming writer, so making 1M rows takes seconds.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from datagen.store import open_store

DROPS = [None, None, None, "length:truncated", "language:mixed", "repetition:ngram", "code_block:present"]
VERDICTS = [json.dumps({"math": {"outcome": o, "score": s, "detail": d}}, sort_keys=True)
            for o, s, d in [("correct", 1.0, ""), ("incorrect", 0.0, "'7' does not match gold '6'"),
                            ("unparseable", 0.0, "no final answer"), ("timeout", None, "verifier timed out")]]


def text_pool(rng: np.random.Generator, size: int = 20_000) -> pa.Array:
    """Random word salad, 40–160 words a text: long reasoning-like strings that
    compress like text does (a pool of them is sampled, so rows differ)."""
    words = np.array(["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), rng.integers(2, 9)))
                      for _ in range(5000)])
    return pa.array([" ".join(rng.choice(words, rng.integers(40, 160))) for _ in range(size)], pa.string())


def make_batch(start: int, n: int, rng: np.random.Generator, pool: pa.Array) -> pa.Table:
    idx = np.arange(start, start + n)
    ids = pc.cast(pa.array(idx // 4), pa.string())
    k = pc.cast(pa.array(idx % 4), pa.string())
    problem_id = pc.binary_join_element_wise("p", ids, "")
    sample_id = pc.binary_join_element_wise(problem_id, k, ":")
    drop = pa.array(DROPS, pa.string()).take(pa.array(rng.integers(0, len(DROPS), n)))
    verdict_idx = rng.integers(0, len(VERDICTS), n)
    tokens = rng.integers(50, 4000, n)
    body = pc.binary_join_element_wise(
        "<think>Let me compute step ", pc.cast(pa.array(idx), pa.string()), ". ",
        pool.take(pa.array(rng.integers(0, len(pool), n))), " Wait, let me verify. </think>The answer is ",
        pc.cast(pa.array(idx % 97), pa.string()), "")
    return pa.table({
        "problem_id": problem_id,
        "sample_id": sample_id,
        "source": pa.array(["bench"] * n),
        "domain": pa.array(["math", "code", "general"], pa.string()).take(pa.array(idx % 3)),
        "language": pa.array(["en", "zh"], pa.string()).take(pa.array((idx // 7) % 2)),
        "prompt": pc.binary_join_element_wise("Compute ", pc.cast(pa.array(idx % 1000), pa.string()), " + 1.", ""),
        "completion": body,
        "completion_tokens": pa.array(tokens, pa.int64()),
        "verdicts": pa.array(VERDICTS, pa.string()).take(pa.array(verdict_idx)),
        "accepted": pa.array(verdict_idx == 0),
        "drop": drop,
    })


def build(root: Path, rows: int) -> tuple[str, float]:
    store = open_store(str(root))
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    pool = text_pool(rng)
    w = store.writer("bench-gens", stage="filter", shard_bytes=64 * 1024 * 1024)
    step = 100_000
    for start in range(0, rows, step):
        w.write(make_batch(start, min(step, rows - start), rng, pool))
    m = w.commit()
    return m.ref, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--keep", help="build the store here and keep it (default: a temp dir)")
    args = ap.parse_args(argv)
    tmp = None
    if args.keep:
        root = Path(args.keep)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="viewer-bench-")
        root = Path(tmp.name)
    ref, build_s = build(root, args.rows)
    store = open_store(str(root))
    m = store.resolve(ref)
    in_memory = store.scan(m).head(10_000).collect().estimated_size() * (m.rows / 10_000)
    print(f"built {ref}: {m.rows:,} rows, {len(m.shards)} shards, "
          f"{sum(s.bytes for s in m.shards) / 1e6:.0f} MB on disk, ~{in_memory / 1e6:.0f} MB in memory; "
          f"{build_s:.1f} s (plots and card included)")

    import httpx

    proc = subprocess.Popen([sys.executable, "-m", "datagen", "datasets", "serve", "--root", str(root), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = re.search(r"(http://\S+/)", proc.stdout.readline()).group(1)
        idle_kb = _rss_kb(proc.pid, "VmRSS")
        base = f"{url}v/{ref}/"
        pages = [
            ("version page", base),
            ("rows: drop = length:truncated", base + "rows?drop=length:truncated"),
            ("rows: outcome = math:timeout, domain = code", base + "rows?outcome=math:timeout&domain=code"),
            ("rows: drop filter, page 2000", base + "rows?drop=language:mixed&offset=50000"),
            ("rows: text search", base + "rows?q=step+99999."),
            ("api rows: accepted = true", f"{url}api/versions/{ref}/rows?filter=accepted=true&limit=50"),
            ("sample page", base + "sample/p1234:2"),
        ]
        results = []
        with httpx.Client(timeout=120) as client:
            for name, u in pages:
                times = []
                for _ in range(3):  # first = cold (per-version caches empty), then warm
                    t0 = time.perf_counter()
                    r = client.get(u)
                    times.append(time.perf_counter() - t0)
                    if r.status_code != 200:
                        raise SystemExit(f"{name}: HTTP {r.status_code}: {r.text[:300]}")
                results.append((name, times))
        hwm_kb = _rss_kb(proc.pid, "VmHWM")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    print(f"{'page':48s} {'cold s':>8s} {'warm s':>8s}")
    ok = True
    for name, times in results:
        warm = min(times[1:])
        print(f"{name:48s} {times[0]:8.3f} {warm:8.3f}")
        if name.startswith(("version page", "rows: drop = ")) and max(times) >= 1.0:
            ok = False
    print(f"server RSS: {idle_kb / 1024:.0f} MB after start, {hwm_kb / 1024:.0f} MB peak "
          f"(the version is ~{in_memory / 1e6:.0f} MB in memory)")
    if (hwm_kb - idle_kb) * 1024 > in_memory / 2:
        ok = False
        print("memory NOT bounded: the server grew by more than half the version's size")
    print("target (version page and a filtered rows page < 1 s, cold and warm):", "met" if ok else "NOT met")
    if tmp is not None:
        tmp.cleanup()
    return 0 if ok else 1


def _rss_kb(pid: int, field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+)", Path(f"/proc/{pid}/status").read_text()).group(1))


if __name__ == "__main__":
    raise SystemExit(main())
