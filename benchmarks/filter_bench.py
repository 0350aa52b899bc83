"""Throughput of the whole filter chain on long reasoning like the language benchmark's.

The rows are long chains of thought composed the way ``benchmarks/language_compose.py``
composes the language benchmark (its pre-freeze material): ten languages
(en, zh, ja, ko, ru, ar, hi, de, fr, es), 2-20 KB each, inline and display
LaTeX, code blocks and identifiers, technical terms, and every kind of
language mixing the benchmark labels (about half the rows are mixed, so the
language filter sees its slow cases too), each split into reasoning and
answer. A few rows are dirty for the other filters: truncated, looping tails,
duplicate and contaminated problems. Runs ``filters.runner.run_filters``
once over all rows in this process (one core) and prints MB/s per core
(reasoning + answer bytes per CPU-second) for the whole chain and each
filter's share of the time. Goal: >= 5 MB/s per core. Length uses the
approximate counter (no tokenizer configured), as the table says.

    python benchmarks/filter_bench.py [--rows 3000] [--seed 0]

The last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from language_compose import KINDS, LANGS, Composer

from datagen.language import split_answer
from filters.config import FiltersConfig
from filters.runner import run_filters

MIXED_KINDS = {"above_threshold", "answer_only", "heavy_mix", "phrase_mix", "wrong_language"}
MATERIAL = Path(__file__).parent / "data" / "language_material_prefreeze.json"


def make_rows(n: int, seed: int) -> tuple[list[dict], list[str]]:
    """``n`` records (4 samples per problem) and the problem texts."""
    rng = random.Random(seed)
    composer = Composer(json.loads(MATERIAL.read_text(encoding="utf-8")), "a", seed)
    rows, prompts = [], []
    samples = 4
    for p in range(n // samples):
        prompt = f"Problem {p}: find the number of pairs below {rng.randint(10, 10**6)} with sum {rng.randint(1, 10**6)}."
        if p % 50 == 1:
            prompt = prompts[-1]  # an exact duplicate problem
        prompts.append(prompt)
        for k in range(samples):
            lang = rng.choice(LANGS)
            item = composer.make(lang, rng.choice(KINDS["a"]), p)
            reasoning, summary = split_answer(item["text"])
            dirty = rng.random()
            if dirty < 0.015:
                reasoning += "\n\n" + "Wait, let me recompute the sum of the first three terms again. " * 20
            rows.append({
                "problem_id": f"p{p}", "sample_id": f"p{p}:{k}", "source": "bench",
                # Code blocks belong in code-domain reasoning; elsewhere the code_block filter drops them.
                "domain": "code" if "```" in reasoning else "math",
                "language": lang, "prompt": prompt, "reasoning": reasoning, "summary": summary,
                "finish_reason": "length" if 0.015 <= dirty < 0.03 else "stop", "kind": item["kind"],
            })
    return rows, prompts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=3_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    start = time.perf_counter()
    rows, prompts = make_rows(args.rows, args.seed)
    generated = time.perf_counter() - start
    nbytes = sum(len(r["reasoning"].encode()) + len(r["summary"].encode()) for r in rows)
    with tempfile.TemporaryDirectory() as tmp:
        bench = Path(tmp) / "planted_bench.jsonl"
        bench.write_text("".join(json.dumps({"problem": p}) + "\n" for p in prompts[7::97]))
        config = FiltersConfig(decontam={"benchmarks": [str(bench)]})
        start, cpu_start = time.perf_counter(), time.process_time()
        out_rows, stats = run_filters(rows, config)
        seconds = time.perf_counter() - start
        cpu = time.process_time() - cpu_start

    mb = nbytes / 1e6
    langs = Counter(r["language"] for r in rows)
    print(f"{len(rows)} rows, {mb:.1f} MB of reasoning+answer (mean {nbytes / len(rows) / 1e3:.1f} KB), "
          f"generated in {generated:.1f}s; length counter: {stats['length_counter']}")
    print("languages: " + ", ".join(f"{k}={v}" for k, v in sorted(langs.items()))
          + f"; mixed kinds: {sum(r['kind'] in MIXED_KINDS for r in rows)} rows")
    # Per core = per CPU-second of this one process: the wall clock also counts
    # time the process waited for a core on a shared machine.
    print(f"whole chain: {cpu:.1f} CPU s ({seconds:.1f}s wall) on 1 core = {mb / cpu:.2f} MB/s per core "
          f"({mb / seconds:.2f} MB/s wall; goal >= 5)")
    # Bytes each filter saw: a row reaches every filter up to the one that dropped it.
    order = list(stats["filters"])
    size = {r["sample_id"]: len(r["reasoning"].encode()) + len(r["summary"].encode()) for r in rows}
    reach = {name: [0, 0] for name in order}
    for r in out_rows:
        last = order.index(r["drop"].split(":")[0]) if r.get("drop") else len(order) - 1
        for name in order[: last + 1]:
            reach[name][0] += 1
            reach[name][1] += size[r["sample_id"]]
    print(f"{'filter':<12} {'cpu s':>8} {'share':>7} {'rows in':>8} {'MB in':>7} {'MB/s':>7} {'dropped':>8}")
    per_filter = {}
    for name in order:
        dropped = sum(v for k, v in stats["dropped"].items() if k.startswith(name + "/"))
        sec, (n_in, b_in) = stats["cpu_seconds"][name], reach[name]
        per_filter[name] = round(b_in / 1e6 / sec, 2) if sec else None
        print(f"{name:<12} {sec:>8.2f} {sec / cpu:>7.1%} {n_in:>8} {b_in / 1e6:>7.1f} "
              f"{(b_in / 1e6 / sec) if sec else float('inf'):>7.1f} {dropped:>8}")
    print("drops: " + ", ".join(f"{k}={v}" for k, v in stats["dropped"].items()))
    print(json.dumps({
        "rows": len(rows), "mb": round(mb, 1), "cpu_seconds": round(cpu, 2), "wall_seconds": round(seconds, 2),
        "mb_per_s_per_core": round(mb / cpu, 2), "mb_per_s_wall": round(mb / seconds, 2), "goal_mb_per_s": 5,
        "share": {k: round(v / cpu, 4) for k, v in stats["cpu_seconds"].items()},
        "filter_mb_per_s_on_rows_seen": per_filter,
        "dropped": stats["dropped"], "kept": stats["kept"], "length_counter": stats["length_counter"],
    }))


if __name__ == "__main__":
    main()
