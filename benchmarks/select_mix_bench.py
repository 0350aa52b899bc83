"""Throughput of accept -> select -> mix at R1 scale (~1M sample rows, an 800k mix).

Builds synthetic verified generations (problems x samples, verdicts as JSON
strings, completions with think tags) with polars, then times:

- ``accept``: verdicts -> ``accepted`` over every row;
- ``select``: rejection sampling with both tie-breaks;
- ``mix``: the selected reasoning rows + non-reasoning rows into chat messages
  (600k : 200k by default, scaled with ``--problems``).

Prints a table, then the figures as one JSON object on the last line.

    python benchmarks/select_mix_bench.py [--problems 125000 --samples 8]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import polars as pl

from datagen.mix import MixConfig, mix
from datagen.select import SelectConfig, select
from datagen.verify.stage import accept

_OUTCOME_JSON = {
    0: '{"math": {"outcome": "correct", "score": 1.0, "detail": ""}}',
    1: '{"math": {"outcome": "incorrect", "score": 0.0, "detail": ""}}',
    2: '{"math": {"outcome": "error", "score": null, "detail": "sympy"}}',
}


def build_samples(problems: int, samples: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    n = problems * samples
    pid = np.repeat(np.arange(problems), samples)
    k = np.tile(np.arange(samples), problems)
    # Per-problem difficulty, so pass rates spread over [0, 1] like a real policy's.
    p_correct = rng.beta(2.0, 1.0, problems)[pid]
    draw = rng.random(n)
    outcome = np.where(draw < 0.01, 2, np.where(draw < p_correct, 0, 1))
    tokens = rng.integers(50, 4000, n)
    frame = pl.DataFrame(
        {"pid": pid, "k": k, "outcome": outcome, "completion_tokens": tokens, "reasoning_len": tokens % 300}
    )
    return frame.select(
        pl.format("p{}", "pid").alias("problem_id"),
        pl.format("p{}:{}", "pid", "k").alias("sample_id"),
        pl.lit("bench-math").alias("source"),
        pl.lit("math").alias("domain"),
        pl.lit("en").alias("language"),
        pl.format("Compute problem number {}.", "pid").alias("prompt"),
        pl.lit("42").alias("answer"),
        pl.format(
            "<think>{} step {}</think>The answer is 42.",
            pl.lit("let me think. " * 30).str.slice(0, pl.col("reasoning_len")),
            "k",
        ).alias("completion"),
        # The generate stage stores the split too (records.split_completion), as here.
        pl.format("{} step {}", pl.lit("let me think. " * 30).str.slice(0, pl.col("reasoning_len")), "k").alias(
            "reasoning"
        ),
        pl.lit("The answer is 42.").alias("summary"),
        pl.col("completion_tokens"),
        pl.col("outcome").replace_strict(_OUTCOME_JSON, return_dtype=pl.String).alias("verdicts"),
        pl.lit(None, dtype=pl.Boolean).alias("accepted"),
        pl.when((pl.col("k") == 0) & (pl.col("pid") % 4 == 0))
        .then(pl.lit("language:mixed"))
        .otherwise(None)
        .alias("drop"),
    )


def build_general(n: int) -> pl.DataFrame:
    frame = pl.DataFrame({"i": np.arange(n)})
    return frame.select(
        pl.format("g{}", "i").alias("problem_id"),
        pl.format("g{}", "i").alias("sample_id"),
        pl.lit("bench-general").alias("source"),
        pl.lit("general").alias("domain"),
        pl.lit("en").alias("language"),
        pl.format("Write a note about item {}.", "i").alias("prompt"),
        pl.format("Item {} is a fine item.", "i").alias("answer"),
    )


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=125_000)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    samples, build_s = timed(build_samples, args.problems, args.samples, args.seed)
    rows = samples.height
    accepted, accept_s = timed(accept, samples)
    shortest, select_s = timed(select, accepted.rows, SelectConfig(k=8, tie_break="shortest"))
    _random_pick, select_random_s = timed(select, accepted.rows, SelectConfig(k=8, tie_break="random", seed=1))

    # R1's 600k : 200k, scaled to this run's size.
    scale = rows / 1_000_000
    reasoning_target, general_target = round(600_000 * scale), round(200_000 * scale)
    general = build_general(general_target)
    config = MixConfig(reasoning_count=reasoning_target, non_reasoning_count=general_target, seed=0)
    mixed, mix_s = timed(mix, shortest.selected, general, config)

    table = [
        ("accept", rows, accept_s),
        ("select shortest", rows, select_s),
        ("select random", rows, select_random_s),
        ("mix", shortest.selected.height + general.height, mix_s),
    ]
    print(
        f"synthetic data: {rows:,} sample rows ({args.problems:,} problems x {args.samples}), built in {build_s:.1f}s"
    )
    print(f"{'stage':<18}{'rows in':>12}{'seconds':>10}{'rows/s':>14}")
    for name, n, secs in table:
        print(f"{name:<18}{n:>12,}{secs:>10.2f}{n / secs:>14,.0f}")
    print(
        f"accepted {accepted.stats['accepted']:,}, undecided {accepted.stats['undecided']:,}; "
        f"selected {shortest.stats['selected']:,}; GRPO prompts {shortest.stats['grpo_prompts']:,}; "
        f"mix rows {mixed.stats['rows']:,} (shortfall {mixed.stats['shortfall']})"
    )
    figures = {
        "rows": rows,
        "accept_s": round(accept_s, 3),
        "select_shortest_s": round(select_s, 3),
        "select_random_s": round(select_random_s, 3),
        "mix_s": round(mix_s, 3),
        "mix_input_rows": shortest.selected.height + general.height,
        "mix_rows": mixed.stats["rows"],
        "selected": shortest.stats["selected"],
        "grpo_prompts": shortest.stats["grpo_prompts"],
        "undecided": accepted.stats["undecided"],
        "shortfall": mixed.stats["shortfall"],
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
