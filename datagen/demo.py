"""``make demo`` — DeepSeek-R1 in miniature, end to end on a CPU, no downloads.

1. Problems: procedurally generated verifiable arithmetic — ``NNN+1=``, whose
   answer is the last digit of the sum (``trainers.toy.ToyLastDigit``) — a
   training pool and a disjoint held-out pool, imported by the ``ingest`` flow.
2. Teacher (R1-Zero): a tiny causal LM with random weights is trained from
   scratch by the ``grpo`` flow on rule rewards only — accuracy and format —
   on the problems rendered with the few-shot template it will generate with.
3. Data: the ``pipeline`` flow has the teacher generate n samples per problem
   with that few-shot template, then verify (math verifier), filter, select
   (rejection sampling: keep up to k correct samples per problem) and mix
   them into chat conversations.
4. Distillation: the ``sft`` flow trains a *fresh* tiny student on the mix;
   the student is evaluated on the held-out problems before and after.

Every stage writes a dataset version under the default root
(``$DATAGEN_ROOT`` or ``./datasets``) — browse them with
``datagen datasets ls`` — and the run ends with a summary and
``demo_report.json``. The toy task and the GRPO recipe come from
``trainers/toy.py`` (the same ones the "GRPO learns" test proves).

Scale is the only difference from production: swap the tiny models for real
ones, the hf backend for vLLM, and the local root for S3 (see README).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any

log = logging.getLogger("datagen.demo")

TEMPLATE = "arith_fewshot.v1"
EXEMPLARS = "lastdigit.v1"
FEW_SHOT_K = 2
SEED = 0


def _render(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The few-shot user turn of each problem — exactly what generation will send."""
    from datagen.generate.prompts import load_exemplars, render_prompt

    exemplars = load_exemplars(EXEMPLARS)
    out = []
    for row in rows:
        messages = render_prompt(TEMPLATE, row, exemplars=exemplars, k=FEW_SHOT_K, seed=SEED)
        out.append({**row, "prompt": messages[-1]["content"], "problem": row["prompt"]})
    return out


def _accuracy(model_dir: str | Path, rows: list[dict[str, Any]], *, max_new_tokens: int = 4) -> float:
    """Greedy held-out accuracy: the answer after the reasoning equals the gold answer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from datagen.records import split_completion
    from trainers.toy import greedy_completions

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    completions = greedy_completions(model, tokenizer, [r["prompt"] for r in rows], max_new_tokens=max_new_tokens)
    correct = 0
    for text, row in zip(completions, rows):
        summary = split_completion(text).summary or ""
        correct += summary.strip() == str(row["answer"]).strip()
    return correct / len(rows)


def run(work: Path, *, quick: bool = False) -> dict[str, Any]:
    from datagen.config import build
    from datagen.files import write_records
    from datagen.records import normalize_row
    from datagen.store import open_store
    from datagen.tinymodel import build_model, build_tokenizer
    from flows.ingest import IngestParams, ingest_flow
    from flows.pipeline import PipelineParams, pipeline_flow
    from flows.train import GRPOParams, SFTParams, grpo_flow, sft_flow
    from trainers.toy import TOY_CHARSET, ToyLastDigit, toy_grpo_config

    started = time.monotonic()
    store = open_store(None)
    root = store.root
    work.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    def stage(name: str, t0: float) -> None:
        timings[name] = round(time.monotonic() - t0, 1)
        print(f"[demo] {name}: {timings[name]}s", flush=True)

    # 1. problems ------------------------------------------------------------
    t0 = time.monotonic()
    task = ToyLastDigit(eval_size=200)
    train = [normalize_row({**r, "source": "toy-arith"}) for r in task.train_rows()]
    held_out = [normalize_row({**r, "source": "toy-arith-heldout"}) for r in task.eval_rows()]
    write_records(work / "problems.jsonl", train)
    write_records(work / "heldout.jsonl", held_out)
    problems_ref = ingest_flow(IngestParams(root=root, name="demo-problems", file=str(work / "problems.jsonl")))
    heldout_ref = ingest_flow(IngestParams(root=root, name="demo-heldout", file=str(work / "heldout.jsonl")))
    # The teacher learns on the prompts it will generate from: the few-shot rendering.
    rendered = _render(train)
    writer = store.writer("demo-teacher-prompts", stage="render-prompts", parents=[problems_ref],
                          config={"template": TEMPLATE, "exemplars": EXEMPLARS, "k": FEW_SHOT_K, "seed": SEED})
    writer.write(rendered)
    teacher_prompts_ref = writer.commit(stats={"rows": len(rendered)}).ref
    stage("problems", t0)

    # 2. teacher: R1-Zero GRPO from random weights ------------------------------
    t0 = time.monotonic()
    tokenizer = build_tokenizer(TOY_CHARSET + "\n")
    teacher_init = work / "teacher-init"
    build_model(tokenizer, hidden_size=64, num_layers=2, max_position_embeddings=64, seed=SEED).save_pretrained(
        teacher_init)
    tokenizer.save_pretrained(teacher_init)
    # R1-Zero: rule rewards only — accuracy, plus a small format reward.
    grpo_cfg = toy_grpo_config(str(work / "teacher"), model=str(teacher_init), seed=SEED,
                               rewards={"toy_accuracy": 1.0, "toy_format": 0.1},
                               **({"max_steps": 10} if quick else {}))
    grpo_ref = grpo_flow(GRPOParams(root=root, input=teacher_prompts_ref, output="demo-teacher-runs",
                                    grpo=grpo_cfg, gpu_limit=False))
    teacher_dir = store.resolve(grpo_ref).stats["grpo"]["final_model_dir"]
    held_rendered = _render(held_out)
    teacher_acc = _accuracy(teacher_dir, held_rendered, max_new_tokens=1)
    stage("teacher (grpo)", t0)
    print(f"[demo] teacher held-out accuracy: {teacher_acc:.2f}", flush=True)

    # 3. data: generate -> verify -> filter -> select -> mix ----------------------
    t0 = time.monotonic()
    pipeline = build(PipelineParams, {
        "root": root,
        "ingest": {"name": "demo-problems", "file": str(work / "problems.jsonl")},
        "generate": {
            "output": "demo-generations", "shard_size": 200, "gpu_limit": False,
            "generation": {
                "backend": {"kind": "hf", "model": teacher_dir, "batch_size": 64},
                "template": TEMPLATE, "exemplars": EXEMPLARS, "k": FEW_SHOT_K, "seed": SEED, "n": 4,
                # The task's answers are one token by design (the GRPO recipe's too).
                "sampling": {"temperature": 0.6, "top_p": 0.95, "max_tokens": 1, "seed": SEED},
            },
        },
        "verify": {"output": "demo-verified"},
        # Digits-only, one-token answers: language ID has nothing to judge and every
        # completion stops at the one-token budget, so those two filters are off.
        "filter": {"output": "demo-filtered",
                   "filters": {"language": {"enabled": False}, "length": {"enabled": False}}},
        "select": {"output": "demo-selected", "prompts_output": "demo-grpo-prompts", "select": {"k": 4}},
        # The toy's verified answers carry no chain of thought: keep them answer-only.
        "mix": {"output": "demo-sft-mix",
                "mix": {"reasoning_count": 10_000, "non_reasoning_count": 0, "require_reasoning": False}},
    })
    refs = pipeline_flow(pipeline)
    stage("pipeline (generate..mix)", t0)

    # 4. student: fresh random weights, SFT on the mix (distillation) -------------
    t0 = time.monotonic()
    student_init = work / "student-init"
    build_model(tokenizer, hidden_size=64, num_layers=2, max_position_embeddings=64, seed=SEED + 1).save_pretrained(
        student_init)
    tokenizer.save_pretrained(student_init)
    raw_held = [{"prompt": r["prompt"], "answer": r["answer"]} for r in held_out]
    before = _accuracy(student_init, raw_held)
    from trainers.config import SFTConfig

    sft_cfg = SFTConfig(model=str(student_init), output_dir=str(work / "student"), num_epochs=1 if quick else 40,
                        learning_rate=3e-3, warmup_ratio=0.05, max_length=64, per_device_batch_size=32,
                        packing=True, seed=SEED, resume=False)
    sft_ref = sft_flow(SFTParams(root=root, input=refs["mix"], output="demo-student-runs", sft=sft_cfg,
                                 gpu_limit=False))
    student_dir = store.resolve(sft_ref).stats["sft"]["final_model_dir"]
    after = _accuracy(student_dir, raw_held)
    stage("student (sft)", t0)

    written = [problems_ref, heldout_ref, teacher_prompts_ref, grpo_ref,
               *[refs[k] for k in ("generate", "verify", "filter", "select", "grpo_prompts", "mix")], sft_ref]
    report = {
        "teacher_accuracy": teacher_acc,
        "student_accuracy_before": before,
        "student_accuracy_after": after,
        "datasets": written,
        "root": root,
        "seconds": round(time.monotonic() - started, 1),
        "stage_seconds": timings,
        "stats": {
            "generated": store.resolve(refs["generate"]).rows,
            "accepted": store.resolve(refs["verify"]).stats.get("acceptance", {}).get("accepted"),
            "kept_after_filters": store.resolve(refs["filter"]).stats.get("kept"),
            "selected": store.resolve(refs["select"]).rows,
            "sft_samples": store.resolve(refs["mix"]).rows,
        },
    }
    return report


def _print_summary(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    t = Table(title="R1 in miniature")
    t.add_column("")
    t.add_column("value", justify="right")
    t.add_row("teacher held-out accuracy (after GRPO)", f"{report['teacher_accuracy']:.2f}")
    t.add_row("student held-out accuracy before SFT", f"{report['student_accuracy_before']:.2f}")
    t.add_row("student held-out accuracy after SFT", f"{report['student_accuracy_after']:.2f}")
    for k, v in report["stats"].items():
        t.add_row(k.replace("_", " "), str(v))
    t.add_row("wall time (s)", str(report["seconds"]))
    console.print(t)
    console.print("dataset versions written (browse: datagen datasets ls / show NAME):")
    for ref in report["datasets"]:
        console.print(f"  {ref}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m datagen.demo", description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="demo_work", help="scratch folder for models (default ./demo_work)")
    ap.add_argument("--report", default="demo_report.json")
    ap.add_argument("--quick", action="store_true", help="a few steps only (smoke test)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    work = Path(args.work)
    if work.exists():
        shutil.rmtree(work)  # models are scratch; the dataset versions are the record
    # Each run gets its own model folder: its id is in every model path, hence in every training and
    # generation run key, so a second run in the same folder trains afresh instead of resuming
    # versions whose model folders were just deleted.
    run_dir = work / f"run-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
    from flows.common import ad_hoc_run_settings

    with ad_hoc_run_settings():
        report = run(run_dir.resolve(), quick=args.quick)
    Path(args.report).write_text(json.dumps(report, indent=2))
    _print_summary(report)
    if not args.quick and report["student_accuracy_after"] <= report["student_accuracy_before"]:
        print("demo: the student did not improve — see demo_report.json", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
