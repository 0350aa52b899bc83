"""datagen's math verifier vs math-verify on the same hand-labeled pairs.

The pairs (``benchmarks/data/math_pairs.jsonl``) are (completion, gold,
label): label is what a careful human grader says about the completion's
final answer — an answer that only appears inside an unfinished or closed
think block is not a final answer (issue 3). A ``split`` field separates ``dev`` pairs (written while the verifier was
built) from ``heldout`` pairs (written after, not tuned on). Hard negatives: close numbers,
wrong sign, swapped tuple order, open vs closed intervals, unit confusions,
different sets, hedged answers, answers only in the reasoning.

Peers, measured in the same run on the same pairs:

- ``datagen``: ``verify_math_batch`` (a pair counts as accepted iff outcome
  is ``correct``).
- ``math-verify``: ``verify(parse(f"${gold}$"), parse(completion))``, the
  way it is used on raw completions (e.g. open-r1).
- ``math-verify (summary)``: the same, but given only the text after
  ``</think>`` (our split; unclosed think -> rejected), to separate its
  comparison quality from the think-tag handling.

Throughput is steady state: one warm-up pass each (imports, the symbolic
worker's start), then repeated passes until a CPU-time budget is used.
CPU seconds = this process + the symbolic worker process (read from /proc),
so work moved to the worker is not free. Last line: one JSON object.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datagen.records import split_completion
from datagen.verify.math import verify_math_batch

DATA = Path(__file__).resolve().parent / "data" / "math_pairs.jsonl"
MIN_CPU_S = float(os.environ.get("BENCH_MIN_CPU_S", "3.0"))


def load() -> list[dict]:
    with open(DATA) as f:
        return [json.loads(line) for line in f if line.strip()]


def _cpu() -> float:
    from datagen.verify._math_worker import shared_worker

    return time.process_time() + shared_worker().cpu_seconds()


def run_datagen(pairs: list[dict]) -> list[bool]:
    verdicts = verify_math_batch([p["completion"] for p in pairs], [p["gold"] for p in pairs], timeout_s=5.0)
    run_datagen.last = verdicts  # type: ignore[attr-defined]
    return [v["outcome"] == "correct" for v in verdicts]


def _mv_one(gold: str, text: str | None) -> bool:
    from math_verify import parse, verify

    if text is None:
        return False
    try:
        return bool(verify(parse(f"${gold}$"), parse(text)))
    except Exception:  # noqa: BLE001 -- math-verify raising counts as "not accepted"
        return False


def run_math_verify(pairs: list[dict]) -> list[bool]:
    return [_mv_one(p["gold"], p["completion"]) for p in pairs]


def run_math_verify_summary(pairs: list[dict]) -> list[bool]:
    out = []
    for p in pairs:
        split = split_completion(p["completion"])
        out.append(_mv_one(p["gold"], split.summary if split.closed and split.summary else None))
    return out


def measure(fn, pairs: list[dict]) -> tuple[list[bool], float]:
    fn(pairs)  # warm-up: imports, worker start
    start, done, preds = _cpu(), 0, []
    while True:
        preds = fn(pairs)
        done += len(pairs)
        if _cpu() - start >= MIN_CPU_S:
            break
    return preds, done / (_cpu() - start)


def score(preds: list[bool], pairs: list[dict]) -> dict:
    labels = [bool(p["label"]) for p in pairs]
    fp = sum(1 for p, lab in zip(preds, labels) if p and not lab)
    fn = sum(1 for p, lab in zip(preds, labels) if lab and not p)
    return {"accuracy": round(1 - (fp + fn) / len(pairs), 4), "false_positives": fp, "false_negatives": fn}


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    pairs = load()
    results = {}
    for name, fn in [("datagen", run_datagen), ("math-verify", run_math_verify),
                     ("math-verify (summary)", run_math_verify_summary)]:
        preds, rate = measure(fn, pairs)
        results[name] = {**score(preds, pairs), "pairs_per_cpu_s": round(rate, 1), "preds": preds}

    outcomes: dict[str, int] = {}
    for v in run_datagen.last:  # type: ignore[attr-defined]
        outcomes[v["outcome"]] = outcomes.get(v["outcome"], 0) + 1

    print(f"{len(pairs)} labeled pairs ({sum(p['label'] for p in pairs)} correct), "
          f"{len({p['tag'] for p in pairs})} categories")
    print(f"{'verifier':24} {'accuracy':>9} {'FP':>4} {'FN':>4} {'pairs/CPU-s':>12}")
    for name, r in results.items():
        print(f"{name:24} {r['accuracy']:>9.4f} {r['false_positives']:>4} {r['false_negatives']:>4} {r['pairs_per_cpu_s']:>12.1f}")
    symbolic = sum("(symbolic)" in v["detail"] for v in run_datagen.last)  # type: ignore[attr-defined]
    print(f"datagen outcomes: {outcomes}; decided by the symbolic worker: {symbolic}/{len(pairs)}")

    # "dev" pairs were written while the verifier was built; "heldout" pairs
    # were written afterwards and not tuned on: the honest estimate.
    split_acc: dict[str, dict[str, float]] = {}
    for split in sorted({p.get("split", "dev") for p in pairs}):
        idx = [i for i, p in enumerate(pairs) if p.get("split", "dev") == split]
        split_acc[split] = {n: round(sum(results[n]["preds"][i] == bool(pairs[i]["label"]) for i in idx) / len(idx), 4)
                            for n in results}
        print(f"{split:8} split (n={len(idx)}): " + ", ".join(f"{n} {a:.4f}" for n, a in split_acc[split].items()))

    print("\nper category (datagen / math-verify accuracy):")
    tags = sorted({p["tag"] for p in pairs})
    for tag in tags:
        idx = [i for i, p in enumerate(pairs) if p["tag"] == tag]
        acc = {n: sum(results[n]["preds"][i] == bool(pairs[i]["label"]) for i in idx) / len(idx) for n in results}
        print(f"  {tag:20} {acc['datagen']:.2f} / {acc['math-verify']:.2f}  (n={len(idx)})")

    print("\ndatagen mistakes:")
    for i, p in enumerate(pairs):
        if results["datagen"]["preds"][i] != bool(p["label"]):
            v = run_datagen.last[i]  # type: ignore[attr-defined]
            print(f"  [{p['tag']}] label={p['label']} outcome={v['outcome']}: {v['detail'][:110]}")

    dg, mv = results["datagen"], results["math-verify"]
    summary = {
        "pairs": len(pairs),
        **{f"{n.replace(' ', '_').replace('(', '').replace(')', '')}_{k}": v
           for n, r in results.items() for k, v in r.items() if k != "preds"},
        "accuracy_gain": round(dg["accuracy"] - mv["accuracy"], 4),
        "throughput_ratio": round(dg["pairs_per_cpu_s"] / mv["pairs_per_cpu_s"], 1),
        "throughput_ratio_vs_summary": round(dg["pairs_per_cpu_s"] / results["math-verify (summary)"]["pairs_per_cpu_s"], 1),
        "datagen_outcomes": outcomes,
        "datagen_symbolic_pairs": symbolic,
        "accuracy_by_split": split_acc,
    }
    print(f"\naccuracy gain vs math-verify: {summary['accuracy_gain']:+.4f}; "
          f"throughput ratio: {summary['throughput_ratio']}x")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
