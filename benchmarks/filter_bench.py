"""Throughput of the whole filter chain on synthetic long reasoning texts.

Generates ``--rows`` (default 20,000) reasoning texts of ~10-30 KB each from
sentence templates (cheap: a pool of 50,000 sentences with random words and
numbers, sampled per paragraph, so lines rarely repeat within a text and the
texts look like English math CoT with LaTeX and inline code), with a
small share of dirty rows (truncated, mixed language, code blocks, loops,
duplicate and contaminated problems) so every filter has work. Runs
``filters.runner.run_filters`` once over the whole list in this process (one
core) and prints MB/s per core for the chain and the share of time per
filter. Goal: >= 5 MB/s per core. Length uses the approximate counter (no
tokenizer configured), as the table says.

    python benchmarks/filter_bench.py [--rows 20000] [--seed 0]

The last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from filters.config import FiltersConfig
from filters.runner import run_filters

NOUNS = ["sum", "product", "root", "derivative", "integral", "remainder", "bound", "case", "term", "factor",
         "coefficient", "sequence", "limit", "triangle", "angle", "area", "probability", "expectation", "graph",
         "edge", "vertex", "array", "index", "loop", "recurrence", "matrix", "determinant", "polynomial"]
VERBS = ["compute", "check", "verify", "simplify", "expand", "bound", "estimate", "recompute", "substitute",
         "compare", "factor", "differentiate", "integrate", "count", "enumerate", "rewrite"]
ADJS = ["first", "second", "remaining", "previous", "largest", "smallest", "positive", "negative", "final",
        "obvious", "tricky", "symmetric", "last", "middle", "next"]
TEMPLATES = [
    "Let me {v} the {a} {n} again, since ${x} = {i}$ gives ${y} = {j}$.",
    "So the {n} is ${x}^2 + {i}{x} + {j}$, which we {v} for the {a} case.",
    "Wait, I should {v} whether the {n} is really {i}, because the {a} {n} was {j}.",
    "Hmm, that means `{x}[{i}]` holds the {a} {n}, so we {v} it with `{y} + {j}`.",
    "Now {v} $\\frac{{{i}}}{{{j}}}$ and compare it with the {a} {n} we found before.",
    "If we {v} the {n} of $\\sum_{{k=1}}^{{{i}}} k = {j}$, the {a} {n} follows directly.",
    "The {a} {n} is bounded by ${i}$, so we only need to {v} up to ${x} \\le {j}$.",
    "Therefore the {n} equals ${j}$, and I will {v} the {a} step once more to be sure.",
    # Terse sentences with few function words: these skip the language
    # filter's cheap pre-screen and go to fastText (about 40% of sentences
    # here, as in the hand-written texts of benchmarks/data).
    "Substituting ${x} = {i}$ gives {j}; {a} {n} consistent.",
    "Hmm, {a} {n} looks suspicious here.",
    "Quick sanity check: {a} {n} matches ${j}$.",
    "Both sides agree, good.",
    "Next, {v} {a} {n} carefully.",
]
TEMPLATES_FR = ["Donc la {n} est égale à ${i}$ et nous devons vérifier le cas suivant avec attention."]
TEMPLATES_ZH = ["所以这个结果是对的，我们再检查一下第 {i} 步的计算。"]


def sentence(rng: random.Random, templates=TEMPLATES) -> str:
    return rng.choice(templates).format(
        v=rng.choice(VERBS), n=rng.choice(NOUNS), a=rng.choice(ADJS), x=rng.choice("abcnmxyz"),
        y=rng.choice("pqrstuvw"), i=rng.randint(2, 9999), j=rng.randint(2, 99999))


def sentence_pool(rng: random.Random, n: int = 50_000) -> list[str]:
    """Formatting every sentence of 400 MB is most of the generation time; texts sample a pool instead."""
    return [sentence(rng) for _ in range(n)]


def reasoning(rng: random.Random, kind: str, pool: list[str] | None = None) -> str:
    target = rng.randint(10_000, 30_000)
    paragraphs, size = [], 0
    while size < target:
        k = rng.randint(2, 6)
        para = " ".join(rng.choices(pool, k=k) if pool else [sentence(rng) for _ in range(k)])
        paragraphs.append(para)
        size += len(para) + 2
    if kind == "mixed_fr":
        paragraphs.insert(len(paragraphs) // 2, sentence(rng, TEMPLATES_FR))
    elif kind == "mixed_zh":
        paragraphs.insert(len(paragraphs) // 2, sentence(rng, TEMPLATES_ZH) * 2)
    elif kind == "code":
        paragraphs.append("```python\nprint(sum(range(10)))\n```")
    elif kind == "loop":
        paragraphs.append("Wait, let me recompute the sum of the first three terms again. " * 20)
    return "\n\n".join(paragraphs)


def make_rows(n: int, seed: int) -> tuple[list[dict], list[str]]:
    rng = random.Random(seed)
    kinds = ["clean"] * 90 + ["mixed_fr", "mixed_zh", "code", "loop", "truncated"] * 2
    rows, prompts = [], []
    samples = 4
    pool = sentence_pool(rng)
    for p in range(n // samples):
        prompt = (f"Problem {p}: find the {rng.choice(ADJS)} {rng.choice(NOUNS)} of the {rng.choice(NOUNS)} "
                  f"defined by {rng.randint(1, 10**6)} and {rng.randint(1, 10**6)}, then {rng.choice(VERBS)} it.")
        if p % 50 == 1:
            prompt = prompts[-1]  # an exact duplicate problem
        prompts.append(prompt)
        for k in range(samples):
            kind = rng.choice(kinds)
            rows.append({
                "problem_id": f"p{p}", "sample_id": f"p{p}:{k}", "source": "bench", "domain": "math",
                "language": "en", "prompt": prompt, "reasoning": reasoning(rng, kind, pool),
                "summary": f"The answer is $\\boxed{{{rng.randint(1, 999)}}}$.",
                "finish_reason": "length" if kind == "truncated" else "stop",
            })
    return rows, prompts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
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
        _, stats = run_filters(rows, config)
        seconds = time.perf_counter() - start
        cpu = time.process_time() - cpu_start

    mb = nbytes / 1e6
    print(f"{len(rows)} rows, {mb:.1f} MB of reasoning+answer (mean {nbytes / len(rows) / 1e3:.1f} KB), "
          f"generated in {generated:.1f}s; length counter: {stats['length_counter']}")
    # Per core = per CPU-second of this one process: the wall clock also counts
    # time the process waited for a core on a shared machine.
    print(f"whole chain: {cpu:.1f} CPU s ({seconds:.1f}s wall) on 1 core = {mb / cpu:.2f} MB/s per core "
          f"({mb / seconds:.2f} MB/s wall; goal >= 5)")
    print(f"{'filter':<12} {'cpu s':>8} {'share':>7} {'rows in':>8} {'dropped':>8}")
    rows_in = len(rows)
    for name in stats["filters"]:
        dropped = sum(v for k, v in stats["dropped"].items() if k.startswith(name + "/"))
        print(f"{name:<12} {stats['cpu_seconds'][name]:>8.2f} {stats['cpu_seconds'][name] / cpu:>7.1%} "
              f"{rows_in:>8} {dropped:>8}")
        rows_in -= dropped
    print("drops: " + ", ".join(f"{k}={v}" for k, v in stats["dropped"].items()))
    print(json.dumps({
        "rows": len(rows), "mb": round(mb, 1), "cpu_seconds": round(cpu, 2), "wall_seconds": round(seconds, 2),
        "mb_per_s_per_core": round(mb / cpu, 2), "mb_per_s_wall": round(mb / seconds, 2), "goal_mb_per_s": 5,
        "share": {k: round(v / cpu, 4) for k, v in stats["cpu_seconds"].items()},
        "dropped": stats["dropped"], "kept": stats["kept"], "length_counter": stats["length_counter"],
    }))


if __name__ == "__main__":
    main()
