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

``--runners``: verify and filter on Prefect's thread pool vs local worker
processes (``runner: {kind: processes}``): wall, CPU seconds (own + reaped
children), CPU/wall and the speed-up, the rows checked equal.

    python benchmarks/pipeline_bench.py --runners --rows 16000 --shard-rows 2000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from functools import partial


def make_generations(store, n: int, shard_rows: int, words_range: tuple[int, int] = (150, 300)) -> str:
    """N generation rows (4 samples per problem), completions with reasoning of ``words_range`` words
    (paragraphs of ~80) and a boxed answer."""
    rng = random.Random(0)
    words = ["first", "we", "compute", "the", "sum", "then", "check", "each", "step", "carefully", "so", "value",
             "is", "wait", "let", "me", "verify", "again", "therefore", "answer"]
    w = store.writer("bench-generations", stage="replay", shard_bytes=1, batch_rows=shard_rows)
    rows = []
    for i in range(n):
        pid = f"p{i // 4:08d}"
        a, b = rng.randint(0, 999), rng.randint(0, 999)
        ok = rng.random() < 0.6
        picked = [rng.choice(words) for _ in range(rng.randint(*words_range))]
        reasoning = "\n\n".join(" ".join(picked[j:j + 80]) for j in range(0, len(picked), 80))
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


def _cpu_s() -> float:
    """CPU seconds of this process and its reaped children (a local Dask cluster's workers once closed)."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def run_runners(root: str, gen_ref: str, verify_p, filter_p, workers: int,
                stages: tuple[str, ...] = ("verify", "filter")) -> dict[str, dict[str, float]]:
    """The verify and filter flows on each shard runner (threads, local processes): wall, CPU, CPU/wall.

    Each runner writes its own output datasets (the runner is a how-parameter, so the same output
    name would resume the first run's version). Rows are compared: the runner must not change them."""
    from datagen.store import Store
    from flows.common import ad_hoc_run_settings
    from flows.filter import filter_flow
    from flows.verify import verify_flow

    store, out = Store(root), {}
    results = {}
    with ad_hoc_run_settings():
        for name, runner in (("threads", {"kind": "threads"}), ("processes", {"kind": "processes",
                                                                             "workers": workers})):
            for stage, flow_fn, params in (("verify", verify_flow, verify_p), ("filter", filter_flow, filter_p)):
                if stage not in stages:
                    continue
                src = out[("verify", name)] if stage == "filter" and "verify" in stages else gen_ref
                t0, c0 = time.perf_counter(), _cpu_s()
                out[(stage, name)] = flow_fn(params.model_copy(update={
                    "root": root, "input": src, "output": f"{stage}-{name}",
                    "runner": type(params.runner).model_validate(runner)}))
                wall, cpu = time.perf_counter() - t0, _cpu_s() - c0
                results[f"{stage}/{name}"] = {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
                                              "cpu_per_wall": round(cpu / wall, 2)}
    for stage in stages:
        a, b = (store.scan(out[(stage, n)]).collect().sort("sample_id") for n in ("threads", "processes"))
        assert a.equals(b.select(a.columns)), f"{stage}: the processes runner wrote other rows than threads"
        results[f"{stage}/speedup"] = round(results[f"{stage}/threads"]["wall_s"]
                                            / results[f"{stage}/processes"]["wall_s"], 2)
    return results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--shard-rows", type=int, default=5_000)
    ap.add_argument("--runners", action="store_true",
                    help="instead: verify and filter on the threads vs processes shard runner (speed-up, CPU/wall)")
    ap.add_argument("--workers", type=int, default=os.cpu_count(), help="worker processes of --runners")
    ap.add_argument("--stages", nargs="+", default=["verify", "filter"], choices=["verify", "filter"],
                    help="stages of --runners (filter alone reads the generations)")
    ap.add_argument("--words", type=int, nargs=2, default=[150, 300], metavar=("LO", "HI"),
                    help="reasoning words per completion (R1-shaped ~8 KB: 1000 1600)")
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
    gen_ref = make_generations(store, args.rows, args.shard_rows, tuple(args.words))
    t_make = time.perf_counter() - t0
    verify_p = VerifyParams(output="verified")
    filter_p = FilterParams.model_validate({"output": "filtered", "filters": {"dedup": {"near_threshold": None}}})
    select_p = SelectParams(output="selected")
    mix_p = MixParams(output="mix")
    if args.runners:
        results = run_runners(root, gen_ref, verify_p.model_copy(update={"workers": 1}), filter_p, args.workers,
                              tuple(args.stages))
        print(f"records: {args.rows:,} in {len(store.resolve(gen_ref).shards)} shards; {args.workers} worker "
              f"processes on {os.cpu_count()} CPUs")
        for key, value in results.items():
            print(f"{key:<20} {value}")
        print(json.dumps({"rows": args.rows, "workers": args.workers, **results}))
        return

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
