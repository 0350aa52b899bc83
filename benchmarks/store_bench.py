"""Store benchmark: write and read back N records on a local root.

Two row shapes: ``--shape r1`` (the default) has R1-shaped completions of 8-30 KB of
long chain-of-thought text (ten languages, LaTeX, code; cut from
``benchmarks/language_compose.py``'s compositions), ``--shape short`` ~2 KB of random
words (the first benchmark's rows).

Each contender runs in its own subprocess so its peak RSS is its own:

- ``datagen``: ``Store.writer().write(row batches)`` -> commit, then a streaming
  read of every row (``iter_batches``) and a lazy polars aggregate over it.
- ``datasets``: the common peer pattern (distilabel / Curator style):
  ``datasets.Dataset.from_generator(...)`` then ``to_parquet``, then iterate.

Prints a table, then one JSON object (the last line). Targets: writes at least
as fast as ``datasets`` on R1-shaped rows; with ``--shape short``, datagen's peak
RSS under 1.5 GB for 1,000,000 records. The composed text is far more
compressible than real reasoning (zstd ~15x; real CoTs ~3x), which makes the
compression both contenders do cheap; ``short``'s random words (~2x) are the
other extreme. Peak RSS includes the read phase's aggregate over every
completion.

    python benchmarks/store_bench.py [--shape r1|short] [--rows N] [--peers]
    # defaults: r1 -> 50,000 rows (~1 GB of text), short -> 1,000,000 rows
"""

from __future__ import annotations

import argparse
import functools
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


SHAPE = "r1"
R1_KB = (8, 30)


@functools.cache
def _r1_pool(seed: int = 0, size: int = 600) -> list[str]:
    """Long chains of thought composed as the language benchmark composes them (2-20 KB each)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from language_compose import KINDS, LANGS, Composer

    material = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "language_material_prefreeze.json")
    with open(material, encoding="utf-8") as fh:
        composer = Composer(json.load(fh), "a", seed)
    rng = random.Random(seed)
    return [composer.make(rng.choice(LANGS), rng.choice(KINDS["a"]), i)["text"] for i in range(size)]


def make_rows(n: int, batch: int = 10_000):
    """Yield batches of records: R1-shaped completions of 8-30 KB (pieces of composed
    chains of thought, so no two rows hold the same text), or ~2 KB of random words."""
    rng = random.Random(1)
    if SHAPE == "r1":
        pool = _r1_pool()
        batch = min(batch, 1_000)
    else:
        words = _word_pool()
        corpus = " ".join(rng.choice(words) for _ in range(400_000))  # ~2.6 MB of words
        span = len(corpus) - TEXT_BYTES - 1
    for start in range(0, n, batch):
        rows = []
        for i in range(start, min(n, start + batch)):
            if SHAPE == "r1":
                target = rng.randint(R1_KB[0] * 1024, R1_KB[1] * 1024)
                parts, size = [], 0
                while size < target:
                    piece = rng.choice(pool)
                    cut = rng.randrange(len(piece) // 2)  # start mid-text: rows share no long runs
                    parts.append(piece[cut:])
                    size += len(parts[-1].encode())
                completion = "\n\n".join(parts)[:target]
            else:
                off = rng.randrange(span)
                completion = corpus[off: off + TEXT_BYTES]
            pid = f"{i:012x}"
            rows.append(
                {
                    "problem_id": pid, "sample_id": f"{pid}:0", "source": "bench", "domain": "math",
                    "language": "en", "prompt": f"Problem {i}: compute the sum.", "answer": str(i),
                    "completion": completion, "completion_tokens": len(completion) // 4,
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
    if SHAPE == "r1":
        _r1_pool()  # composed before the clock starts (imports, material); both contenders alike
    root = tempfile.mkdtemp(prefix=f"store-bench-{which}-")
    try:
        result = run_datagen(n, root) if which == "datagen" else run_datasets(n, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", choices=["r1", "short"], default="r1",
                    help="r1: completions of 8-30 KB of chain-of-thought text; short: ~2 KB of random words")
    ap.add_argument("--rows", type=int, default=None, help="default: 50,000 (r1) or 1,000,000 (short)")
    ap.add_argument("--peers", action="store_true", help="also run the datasets peer (slower)")
    ap.add_argument("--child", choices=["datagen", "datasets"])
    args = ap.parse_args()
    global SHAPE
    SHAPE = args.shape
    args.rows = args.rows or (50_000 if SHAPE == "r1" else 1_000_000)
    if args.child:
        _child(args.child, args.rows)
        return
    contenders = ["datagen"] + (["datasets"] if args.peers else [])
    results = {}
    for which in contenders:
        out = subprocess.run([sys.executable, __file__, "--child", which, "--rows", str(args.rows),
                              "--shape", SHAPE],
                             capture_output=True, text=True, check=True)
        results[which] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{'contender':<10} {'rows':>10} {'write rows/s':>14} {'read rows/s':>13} {'peak RSS MB':>12} {'MB on disk':>11}")
    for which, r in results.items():
        print(f"{which:<10} {r['rows']:>10,} {r['rows'] / r['write_s']:>14,.0f} {r['rows'] / r['read_s']:>13,.0f} "
              f"{r['peak_rss_mb']:>12,.0f} {r['bytes'] / 1e6:>11,.0f}")
    d = results["datagen"]
    figures = {
        "shape": SHAPE,
        "rows": args.rows,
        "text_mb": round(d["text_bytes"] / 1e6),
        "datagen_write_rows_per_s": round(d["rows"] / d["write_s"]),
        "datagen_read_rows_per_s": round(d["rows"] / d["read_s"]),
        "datagen_peak_rss_mb": round(d["peak_rss_mb"]),
    }
    if SHAPE == "short":  # the first benchmark's target: 1,000,000 records of ~2 KB
        figures["peak_rss_under_1500mb"] = d["peak_rss_mb"] < 1500
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
