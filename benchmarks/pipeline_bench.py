"""Pipeline benchmark: the share of wall time spent in Prefect orchestration.

A generations version of N records with replayed (pre-generated) completions
is written to a local root; then the stages verify → filter → select → mix run
twice over it:

- ``prefect``: the real flows (one task per shard, artifacts, a Prefect
  server — the temporary one a CLI run starts), with one task at a time so
  that the comparison isolates orchestration from thread-pool concurrency;
- ``plain``: the same plain stage functions called in a loop, no Prefect.

Orchestration share = (prefect wall − plain wall) / prefect wall, per stage
and overall; the temporary server's start-up is reported separately (a
production run talks to a long-running server). Goal: < 5 %.

    python benchmarks/pipeline_bench.py [--rows 100000] [--shard-rows 5000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from functools import partial


def make_generations(store, n: int, shard_rows: int) -> str:
    """N generation rows (4 samples per problem), completions with short reasoning and a boxed answer."""
    rng = random.Random(0)
    words = ["first", "we", "compute", "the", "sum", "then", "check", "each", "step", "carefully", "so", "value",
             "is", "wait", "let", "me", "verify", "again", "therefore", "answer"]
    w = store.writer("bench-generations", stage="replay", shard_bytes=1, batch_rows=shard_rows)
    rows = []
    for i in range(n):
        pid = f"p{i // 4:08d}"
        a, b = rng.randint(0, 999), rng.randint(0, 999)
        ok = rng.random() < 0.6
        reasoning = " ".join(rng.choice(words) for _ in range(rng.randint(150, 300)))
        reasoning += f"\n\nSo {a} + {b} = {a + b}."
        answer = a + b if ok else a + b + 1
        rows.append({
            "problem_id": pid, "sample_id": f"{pid}:{i % 4}", "source": "bench", "domain": "math",
            "language": "en", "prompt": f"Problem {i // 4}: what is {a} + {b}?", "answer": str(a + b),
            "completion": f"<think>\n{reasoning}\n</think>\n\nThe answer is $\\boxed{{{answer}}}$.",
            "reasoning": reasoning, "summary": f"The answer is $\\boxed{{{answer}}}$.",
            "finish_reason": "stop", "completion_tokens": 300, "model": "replay",
        })
        if len(rows) == shard_rows:
            w.write(rows)
            rows = []
    if rows:
        w.write(rows)
    return w.commit().ref


def run_plain(store, gen_ref: str, verify_p, filter_p, select_p, mix_p) -> dict[str, float]:
    """The same stage functions with no Prefect: read shard, work, write shard, commit."""
    from datagen.mix import mix
    from datagen.select import select
    from datagen.verify.stage import verify_shard
    from filters.runner import PROBLEM_COLUMNS, enabled_filters, filter_shard, problem_decisions, split_by_kind

    times = {}
    t0 = time.perf_counter()
    src = store.resolve(gen_ref)
    w = store.writer("plain-verified", stage="verify")
    for i, s in enumerate(src.shards):
        rows, _ = verify_shard(store.read_shard(s.path).to_pylist(), verifiers_by_domain=verify_p.verifiers_by_domain,
                               workers=verify_p.workers, math_timeout_s=verify_p.math_timeout_s)
        w.write_shard(f"part-{i:05d}", rows)
    verified = w.commit()
    times["verify"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    wide, per_row = split_by_kind(enabled_filters(filter_p.filters))
    problems = (store.scan(verified).select(*PROBLEM_COLUMNS)
                .unique(subset="problem_id", keep="first", maintain_order=True).collect().to_dicts())
    drops, _ = problem_decisions(problems, filter_p.filters, wide) if wide else ({}, {})
    w = store.writer("plain-filtered", stage="filter")
    fn = partial(filter_shard, config=filter_p.filters, names=per_row, problem_drops=drops)
    for i, s in enumerate(verified.shards):
        rows, _ = fn(store.read_shard(s.path).to_pylist())
        w.write_shard(f"part-{i:05d}", rows)
    filtered = w.commit()
    times["filter"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    res = select(store.scan(filtered), select_p.select)
    w = store.writer("plain-selected", stage="select")
    w.write(res.selected)
    selected = w.commit()
    w = store.writer("plain-prompts", stage="select")
    w.write(res.grpo_prompts)
    w.commit()
    times["select"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    m = mix(store.scan(selected), [], mix_p.mix)
    w = store.writer("plain-mix", stage="mix")
    w.write(m.rows)
    w.commit()
    times["mix"] = time.perf_counter() - t0
    return times


def run_prefect(root: str, gen_ref: str, verify_p, filter_p, select_p, mix_p) -> dict[str, float]:
    from prefect.task_runners import ThreadPoolTaskRunner

    from flows import filter as filter_mod
    from flows import mix as mix_mod
    from flows import select as select_mod
    from flows import verify as verify_mod

    # One task at a time, like the plain loop: the difference is then the
    # orchestration itself, not Prefect's thread-pool concurrency.
    def sequential(f):
        return f.with_options(task_runner=ThreadPoolTaskRunner(max_workers=1))

    verify_flow, filter_flow = sequential(verify_mod.verify_flow), sequential(filter_mod.filter_flow)
    select_flow, mix_flow = sequential(select_mod.select_flow), sequential(mix_mod.mix_flow)
    times = {}
    t0 = time.perf_counter()
    v = verify_flow(verify_p.model_copy(update={"root": root, "input": gen_ref}))
    times["verify"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    f = filter_flow(filter_p.model_copy(update={"root": root, "input": v}))
    times["filter"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    s = select_flow(select_p.model_copy(update={"root": root, "input": f}))
    times["select"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    mix_flow(mix_p.model_copy(update={"root": root, "reasoning": s["selected"]}))
    times["mix"] = time.perf_counter() - t0
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--shard-rows", type=int, default=5_000)
    args = ap.parse_args()
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

    from datagen.store import Store
    from flows.filter import FilterParams
    from flows.mix import MixParams
    from flows.select import SelectParams
    from flows.verify import VerifyParams

    root = tempfile.mkdtemp(prefix="pipeline-bench-")
    store = Store(root)
    t0 = time.perf_counter()
    gen_ref = make_generations(store, args.rows, args.shard_rows)
    t_make = time.perf_counter() - t0
    verify_p = VerifyParams(output="verified")
    filter_p = FilterParams.model_validate({"output": "filtered", "filters": {"dedup": {"near_threshold": None}}})
    select_p = SelectParams(output="selected")
    mix_p = MixParams(output="mix")

    plain = run_plain(store, gen_ref, verify_p, filter_p, select_p, mix_p)

    # The first flow run in a process starts a temporary server: time it apart.
    from prefect import flow

    @flow(name="warm-up")
    def warm_up() -> int:
        return 1

    from flows.common import ad_hoc_run_settings

    t0 = time.perf_counter()
    warm_up()
    t_server = time.perf_counter() - t0
    with ad_hoc_run_settings():  # what `datagen run` uses
        prefect = run_prefect(root, gen_ref, verify_p, filter_p, select_p, mix_p)
    # Against a long-running server heartbeats stay on: Prefect then adds ~1 s
    # per flow run (its heartbeat thread is joined on exit). Measured apart.
    t0 = time.perf_counter()
    warm_up()
    heartbeat_cost = time.perf_counter() - t0
    with ad_hoc_run_settings():
        t0 = time.perf_counter()
        warm_up()
        heartbeat_cost -= time.perf_counter() - t0

    print(f"records: {args.rows:,} in {store.resolve(gen_ref).shards.__len__()} shards (made in {t_make:.1f}s); "
          f"temporary Prefect server start: {t_server:.1f}s")
    print(f"{'stage':<8} {'plain s':>9} {'prefect s':>10} {'orchestration':>14}")
    for stage in plain:
        share = (prefect[stage] - plain[stage]) / prefect[stage]
        print(f"{stage:<8} {plain[stage]:>9.2f} {prefect[stage]:>10.2f} {share:>13.1%}")
    tp, tq = sum(plain.values()), sum(prefect.values())
    overall = (tq - tp) / tq
    print(f"{'total':<8} {tp:>9.2f} {tq:>10.2f} {overall:>13.1%}")
    print(f"(flow-run heartbeats off, as in `datagen run`; with them on, Prefect adds {heartbeat_cost:.2f}s "
          "per flow run)")
    print(json.dumps({
        "rows": args.rows, "shards": len(store.resolve(gen_ref).shards),
        "plain_s": round(tp, 2), "prefect_s": round(tq, 2),
        "orchestration_share": round(overall, 4), "server_start_s": round(t_server, 1),
        "per_stage": {k: {"plain_s": round(plain[k], 2), "prefect_s": round(prefect[k], 2)} for k in plain},
        "heartbeat_cost_per_flow_run_s": round(heartbeat_cost, 2),
        "goal_met": overall < 0.05,
    }))


if __name__ == "__main__":
    main()
