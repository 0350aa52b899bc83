"""Store benchmark: write and read back N records of ~2 KB text on a local root.

Each contender runs in its own subprocess so its peak RSS is its own:

- ``datagen``: ``Store.writer().write(row batches)`` -> commit, then a streaming
  read of every row (``iter_batches``) and a lazy polars aggregate over it.
- ``datasets``: the common peer pattern (distilabel / Curator style):
  ``datasets.Dataset.from_generator(...)`` then ``to_parquet``, then iterate.

Prints a table, then one JSON object (the last line). Target: datagen's peak
RSS under 1.5 GB for 1,000,000 records.

    python benchmarks/store_bench.py [--rows 1000000] [--peers]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time

TEXT_BYTES = 2000


def _word_pool(seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    return ["".join(rng.choice(letters) for _ in range(rng.randint(2, 10))) for _ in range(50_000)]


def make_rows(n: int, batch: int = 10_000):
    """Yield batches of records with ~2 KB of varied (not trivially compressible) text."""
    rng = random.Random(1)
    words = _word_pool()
    corpus = " ".join(rng.choice(words) for _ in range(400_000))  # ~2.6 MB of words
    span = len(corpus) - TEXT_BYTES - 1
    for start in range(0, n, batch):
        rows = []
        for i in range(start, min(n, start + batch)):
            off = rng.randrange(span)
            pid = f"{i:012x}"
            rows.append(
                {
                    "problem_id": pid, "sample_id": f"{pid}:0", "source": "bench", "domain": "math",
                    "language": "en", "prompt": f"Problem {i}: compute the sum.", "answer": str(i),
                    "completion": corpus[off: off + TEXT_BYTES], "completion_tokens": 500,
                }
            )
        yield rows


def run_datagen(n: int, root: str) -> dict:
    import polars as pl

    from datagen.store import Store

    store = Store(root)
    t0 = time.perf_counter()
    w = store.writer("bench", stage="bench")
    for rows in make_rows(n):
        w.write(rows)
    m = w.commit()
    t_write = time.perf_counter() - t0
    t0 = time.perf_counter()
    count = 0
    for batch in store.iter_batches(m.ref, columns=["sample_id", "completion"]):
        count += batch.num_rows
    total = store.scan(m.ref).select(pl.col("completion").str.len_bytes().sum()).collect().item()
    t_read = time.perf_counter() - t0
    assert count == n and m.rows == n, (count, m.rows)
    return {"write_s": t_write, "read_s": t_read, "rows": n, "shards": len(m.shards),
            "bytes": sum(s.bytes for s in m.shards), "text_bytes": total}


def run_datasets(n: int, root: str) -> dict:
    import datasets

    datasets.disable_progress_bars()
    t0 = time.perf_counter()

    def gen():
        for rows in make_rows(n):
            yield from rows

    cache = os.path.join(root, "cache")
    ds = datasets.Dataset.from_generator(gen, cache_dir=cache)
    out = os.path.join(root, "out.parquet")
    ds.to_parquet(out)
    t_write = time.perf_counter() - t0
    t0 = time.perf_counter()
    d2 = datasets.load_dataset("parquet", data_files=[out], split="train", cache_dir=os.path.join(root, "c2"))
    count = 0
    for batch in d2.iter(batch_size=10_000):
        count += len(batch["sample_id"])
    t_read = time.perf_counter() - t0
    assert count == n
    return {"write_s": t_write, "read_s": t_read, "rows": n, "bytes": os.path.getsize(out)}


def _child(which: str, n: int) -> None:
    root = tempfile.mkdtemp(prefix=f"store-bench-{which}-")
    try:
        result = run_datagen(n, root) if which == "datagen" else run_datasets(n, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--peers", action="store_true", help="also run the datasets peer (slower)")
    ap.add_argument("--child", choices=["datagen", "datasets"])
    args = ap.parse_args()
    if args.child:
        _child(args.child, args.rows)
        return
    contenders = ["datagen"] + (["datasets"] if args.peers else [])
    results = {}
    for which in contenders:
        out = subprocess.run([sys.executable, __file__, "--child", which, "--rows", str(args.rows)],
                             capture_output=True, text=True, check=True)
        results[which] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{'contender':<10} {'rows':>10} {'write rows/s':>14} {'read rows/s':>13} {'peak RSS MB':>12} {'MB on disk':>11}")
    for which, r in results.items():
        print(f"{which:<10} {r['rows']:>10,} {r['rows'] / r['write_s']:>14,.0f} {r['rows'] / r['read_s']:>13,.0f} "
              f"{r['peak_rss_mb']:>12,.0f} {r['bytes'] / 1e6:>11,.0f}")
    d = results["datagen"]
    figures = {
        "rows": args.rows,
        "datagen_write_rows_per_s": round(d["rows"] / d["write_s"]),
        "datagen_read_rows_per_s": round(d["rows"] / d["read_s"]),
        "datagen_peak_rss_mb": round(d["peak_rss_mb"]),
        "peak_rss_under_1500mb": d["peak_rss_mb"] < 1500,
    }
    if "datasets" in results:
        p = results["datasets"]
        figures.update(
            datasets_write_rows_per_s=round(p["rows"] / p["write_s"]),
            datasets_read_rows_per_s=round(p["rows"] / p["read_s"]),
            datasets_peak_rss_mb=round(p["peak_rss_mb"]),
            write_speed_ratio=round(p["write_s"] / d["write_s"], 2),
            read_speed_ratio=round(p["read_s"] / d["read_s"], 2),
        )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
