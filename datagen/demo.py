"""``make demo`` — DeepSeek-R1 in miniature, every stage doing real work, on a CPU, no downloads.

The task (``datagen.demo_task``): two-digit additions that a tiny model solves
only by writing its scratchpad — one line per column (digits, sum, carry),
then ``\\boxed{answer}`` for the real math verifier — with a word-level
tokenizer (``datagen.tinymodel.build_word_tokenizer``) whose step words exist
in English and Chinese.

1. **Problems**: train and held-out pools, and numbers-in-words problems (the
   non-reasoning task), imported by the ``ingest`` flow.
2. **Base model**: the stand-in for pretraining (R1 starts from a pretrained
   base and distils into pretrained bases; nothing pretrained can be
   downloaded here): a fresh tiny model pretrained by the ``sft`` flow on
   documents of arithmetic notes (worked sums and loose column steps, some in
   Chinese, never a held-out problem). It knows digit sums; it has never seen
   a chat, ``<think>`` or ``\\boxed{}``.
3. **Cold start**: a few hundred long-CoT samples in R1's readable format
   (``<think>`` scratchpad, then the boxed answer), the user turn rendered with
   the few-shot template ``prompts/demo_addition_fewshot.v1.txt`` and its
   exemplars; some write a step in Chinese (R1-Zero's language mixing,
   reproduced), some add a check line (longer reasoning). The base model is
   trained on them into the teacher by the ``sft`` flow, with numbers in words
   and the judge's task (verdict lines) beside them.
4. **Reasoning RL**: the ``grpo`` flow, from the cold-start checkpoint, with
   the accuracy reward (math verifier), the format reward (``<think>…</think>``
   then a visible answer) — once without and once with the language-consistency
   reward; the mixing rate of each policy is measured on held-out prompts.
5. **Rejection sampling**: the teacher generates n samples per problem with the
   few-shot template (``generate``), the math verifier grades them
   (``verify``), the filters drop mixed-language, over-long (counted with the
   teacher's own tokenizer) and repetitive ones (``filter``), ``select`` keeps
   up to k correct samples per problem and picks the GRPO prompts by pass rate.
6. **Non-reasoning**: the teacher writes numbers in words; the judge verifier
   (the teacher as a generative judge, template ``demo_judge_words.v1``) grades
   them inside the ``verify`` flow; ``mix`` puts them beside the reasoning
   samples at R1's 3:1.
7. **Distillation and evaluation**: the student — the base model, as R1
   distils into base models — is trained on the mix (``sft``); the ``eval``
   flow measures the teacher and the student before and after on held-out
   problems: pass@1 over k samples at temperature 0.6, and maj@k.

Every stage writes a dataset version under ``$DATAGEN_ROOT`` (default
``./datasets``); the run ends with a table, ``demo_report.json`` and the
commands that browse each version. Models live in a per-run folder
(``demo_work/<run>``): the run id is part of each model's path, hence of every
training, generation and eval run key, so a second ``make demo`` trains and
evaluates afresh instead of resuming a version whose model folder is gone.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("datagen.demo")

SEED = 0


@dataclass(frozen=True)
class Sizes:
    """How big each stage is (the full demo, or ``--quick`` for the test)."""

    train_problems: int = 400
    cold_start: int = 300
    heldout: int = 50
    words: int = 300
    judge_pairs: int = 200
    pretrain_docs: int = 12800
    pretrain_epochs: float = 1.0
    pretrain_learning_rate: float = 3e-3
    teacher_epochs: float = 30.0
    grpo_steps: int = 12
    grpo_learning_rate: float = 3e-4
    n: int = 4
    k_select: int = 2
    eval_k: int = 8
    student_epochs: float = 25.0
    hidden: int = 128
    layers: int = 2
    #: 8 heads of 16, not 4 of 32: a head that reads the question's digits at a fixed distance
    #: back forms on every seed tried (with 4, the teacher's held-out accuracy was 0.0 or 0.9 by seed)
    heads: int = 8
    learning_rate: float = 2e-3


FULL = Sizes()
#: The test's size: the same data and training (a tiny model learns its task only with enough steps),
#: fewer GRPO steps and samples per eval problem. The held-out set stays the full demo's: it decides
#: which sums the pretraining corpus leaves out, so a smaller one trained another teacher (held-out
#: pass@1 0.25 on this machine, where the full demo's teacher reached 0.97).
QUICK = Sizes(grpo_steps=8, eval_k=4)

MIXED_SHARE = 0.3  # cold-start samples that write one step in Chinese
CHECK_SHARE = 0.2  # cold-start samples with a check line (longer reasoning)


# ----------------------------------------------------------------------------- quiet and visible


def quiet_third_parties() -> None:
    """No third-party progress bars or warnings between the demo's own lines."""
    import warnings

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    warnings.filterwarnings("ignore")
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    try:  # transformers 5 draws its loading/saving bars with huggingface_hub's tqdm
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    except ImportError:
        pass
    for name in ("accelerate", "transformers", "datasets", "httpx", "datagen", "filters", "trainers"):
        logging.getLogger(name).setLevel(logging.ERROR)


def say(text: str) -> None:
    print(text, flush=True)


class TrainingLines:
    """Prints one line per logged training step by following the trainer's ``metrics.jsonl``.

    The trainers write each logged step there (``trainers.runtime.MetricsLog``)
    whether or not a flow is watching, so the demo shows training without
    touching Prefect's logging."""

    def __init__(self, label: str, path: Path, total: int | None = None):
        self.label, self.path, self.total = label, path, total
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        return False

    def _line(self, m: dict[str, Any]) -> str | None:
        if "step" not in m:
            return None
        parts = [f"  {self.label:<18} step {m['step']}" + (f"/{self.total}" if self.total else "")]
        for key, name in (("loss", "loss"), ("reward/mean", "reward"), ("reward", "reward"),
                          ("reward/accuracy/mean", "accuracy"), ("reward/format/mean", "format"),
                          ("reward/language_consistency/mean", "language"),
                          ("completion_length/mean", "length"), ("epoch", "epoch"), ("eval_loss", "eval_loss")):
            if isinstance(m.get(key), (int, float)):
                parts.append(f"{name} {m[key]:.3f}")
        return "  ".join(parts)

    def _run(self) -> None:
        pos = 0
        while True:
            stopping = self._stop.is_set()
            if self.path.is_file():
                with self.path.open() as f:
                    f.seek(pos)
                    for raw in iter(f.readline, ""):
                        if not raw.endswith("\n"):
                            break
                        pos += len(raw.encode())
                        try:
                            line = self._line(json.loads(raw))
                        except json.JSONDecodeError:
                            continue
                        if line:
                            say(line)
            if stopping:
                return
            self._stop.wait(0.5)


def _mixing_rate(store, eval_ref: str) -> float:
    """Share of an eval version's reasoning samples whose reasoning mixes languages (``datagen.language``).

    Only samples that wrote a reasoning count: a policy that stops reasoning
    must not look like one that stopped mixing."""
    from datagen.language import mixing
    from datagen.records import split_completion

    rows = store.scan(eval_ref).select("completions", "language").collect().to_dicts()
    mixed = total = 0
    for row in rows:
        for completion in row["completions"] or []:
            reasoning = split_completion(completion).reasoning if completion else None
            if reasoning:
                total += 1
                mixed += mixing(reasoning, row["language"] or "en") > 0
    return round(mixed / total, 4) if total else 0.0


# ----------------------------------------------------------------------------- the run


def run(work: Path, *, sizes: Sizes = FULL) -> dict[str, Any]:
    """Run every stage; returns the report (see ``main``)."""
    from datagen.demo_task import (
        EXEMPLARS,
        FEWSHOT_TEMPLATE,
        JUDGE_TEMPLATE,
        PLAIN_TEMPLATE,
        WORDS_TASK,
        addition_row,
        cold_start_samples,
        pretraining_documents,
        scratchpad,
        split_pairs,
        vocabulary_texts,
        words_row,
    )
    from datagen.evaluate import EvalConfig
    from datagen.files import write_records
    from datagen.generate.prompts import load_exemplars, render_prompt
    from datagen.store import open_store
    from datagen.tinymodel import build_model, build_word_tokenizer
    from filters.config import FiltersConfig
    from flows.eval import EvalParams, eval_flow
    from flows.filter import FilterParams, filter_flow
    from flows.generate import GenerateParams, generate_flow
    from flows.ingest import IngestParams, ingest_flow
    from flows.mix import MixParams, mix_flow
    from flows.select import SelectParams, select_flow
    from flows.train import GRPOParams, SFTParams, grpo_flow, sft_flow
    from flows.verify import VerifyParams, verify_flow
    from trainers.config import GRPOConfig, SFTConfig

    started = time.monotonic()
    store = open_store(None)
    root = store.root
    work.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    written: dict[str, str] = {}

    def stage(name: str, t0: float) -> None:
        timings[name] = round(time.monotonic() - t0, 1)
        say(f"[demo] {name} done in {timings[name]}s")

    def header(text: str) -> None:
        say(f"[demo] {text}")

    tokenizer = build_word_tokenizer(vocabulary_texts())

    def new_model(path: Path, seed: int) -> str:
        build_model(tokenizer, hidden_size=sizes.hidden, num_layers=sizes.layers, num_heads=sizes.heads,
                    max_position_embeddings=256, seed=seed).save_pretrained(path)
        tokenizer.save_pretrained(path)
        return str(path)

    def evaluate(label: str, model: str, template: str, output: str) -> dict[str, Any]:
        header(f"eval {label}: {sizes.eval_k} samples per held-out problem at temperature 0.6")
        cfg = EvalConfig(backend={"kind": "hf", "model": model, "batch_size": 256}, k=sizes.eval_k,
                         sampling={"temperature": 0.6, "top_p": 0.95, "max_tokens": 100}, template=template,
                         exemplars=EXEMPLARS if template == FEWSHOT_TEMPLATE else None,
                         few_shot_k=1 if template == FEWSHOT_TEMPLATE else 0, seed=SEED)
        ref = eval_flow(EvalParams(root=root, input=written["heldout"], output=output, eval=cfg, gpu_limit=False))
        written[output] = ref
        summary = store.resolve(ref).stats["eval"]
        say(f"  {label}: pass@1 {summary['pass@1']:.3f}  maj@{sizes.eval_k} {summary['maj@k']:.3f}")
        return {"pass@1": summary["pass@1"], "maj@k": summary["maj@k"], "k": sizes.eval_k}

    # 1. problems ----------------------------------------------------------------
    t0 = time.monotonic()
    header("1/7 problems")
    train_pairs, held_pairs = split_pairs(SEED, sizes.train_problems, sizes.heldout)
    write_records(work / "problems.jsonl", [addition_row(a, b) for a, b in train_pairs])
    write_records(work / "heldout.jsonl", [addition_row(a, b, source="demo-addition-heldout") for a, b in held_pairs])
    write_records(work / "words.jsonl", [words_row(n) for n in range(sizes.words)])
    for name, file in (("problems", "problems.jsonl"), ("heldout", "heldout.jsonl"), ("words", "words.jsonl")):
        written[name] = ingest_flow(IngestParams(root=root, name=f"demo-{name}", file=str(work / file)))
    problems = store.scan(written["problems"]).collect().to_dicts()
    stage("problems", t0)

    # 2. a base model: the stand-in for pretraining -------------------------------
    t0 = time.monotonic()
    header(f"2/7 base model: a fresh tiny model pretrained on {sizes.pretrain_docs} documents of arithmetic notes "
           "(worked sums, some steps in Chinese; no held-out problem)")
    docs = pretraining_documents(sizes.pretrain_docs, seed=SEED, exclude=held_pairs, mixed_share=MIXED_SHARE)
    writer = store.writer("demo-pretrain", stage="pretrain-corpus", parents=[written["heldout"]],
                          config={"docs": sizes.pretrain_docs, "mixed_share": MIXED_SHARE, "seed": SEED,
                                  "excludes": "held-out problems"})
    writer.write(docs)
    written["pretrain"] = writer.commit(stats={"rows": len(docs), "by_kind": {
        k: sum(d["kind"] == k for d in docs) for k in ("notes", "copy", "steps")}}).ref
    base_init = new_model(work / "base-init", SEED)
    pretrain = SFTConfig(model=base_init, output_dir=str(work / "base"), num_epochs=sizes.pretrain_epochs,
                         learning_rate=sizes.pretrain_learning_rate, warmup_ratio=0.05, max_length=256,
                         per_device_batch_size=8, packing=True, seed=SEED, resume=False, log_every=50)
    with TrainingLines("pretraining", work / "base" / "metrics.jsonl"):
        written["base"] = sft_flow(SFTParams(root=root, input=written["pretrain"], output="demo-base-pretrain",
                                             sft=pretrain, gpu_limit=False))
    base_model = store.resolve(written["base"]).stats["sft"]["final_model_dir"]
    stage("base model", t0)

    # 2. cold start: few-shot long-CoT samples, SFT of the teacher -----------------
    t0 = time.monotonic()
    header(f"3/7 cold start: {sizes.cold_start} long-CoT samples ({MIXED_SHARE:.0%} with a step in Chinese), "
           "SFT of the base model into the teacher")
    rows = cold_start_samples(train_pairs[:sizes.cold_start], seed=SEED, mixed_share=MIXED_SHARE,
                              check_share=CHECK_SHARE, words=range(sizes.words), judge_pairs=sizes.judge_pairs)
    writer = store.writer("demo-cold-start", stage="cold-start", parents=[written["problems"], written["words"]],
                          config={"template": FEWSHOT_TEMPLATE, "exemplars": EXEMPLARS, "few_shot_k": 1,
                                  "mixed_share": MIXED_SHARE, "check_share": CHECK_SHARE, "seed": SEED,
                                  "judge_template": JUDGE_TEMPLATE, "judge_pairs": sizes.judge_pairs})
    writer.write(rows)
    written["cold_start"] = writer.commit(stats={"rows": len(rows), "by_kind": {
        k: sum(r["kind"] == k for r in rows) for k in ("reasoning", "mixed", "words", "judge")}}).ref
    sft_teacher = SFTConfig(model=base_model, output_dir=str(work / "teacher-sft"), num_epochs=sizes.teacher_epochs,
                            learning_rate=sizes.learning_rate, warmup_ratio=0.05, max_length=256,
                            per_device_batch_size=8, packing=True, seed=SEED, resume=False, log_every=20)
    with TrainingLines("teacher sft", work / "teacher-sft" / "metrics.jsonl"):
        written["teacher_sft"] = sft_flow(SFTParams(root=root, input=written["cold_start"],
                                                    output="demo-teacher-sft", sft=sft_teacher, gpu_limit=False))
    cold_model = store.resolve(written["teacher_sft"]).stats["sft"]["final_model_dir"]
    stage("cold start", t0)

    # 4. reasoning RL: GRPO without and with the language-consistency reward ------
    t0 = time.monotonic()
    header("4/7 reasoning RL: GRPO from the cold-start checkpoint (accuracy + format), without and with the "
           "language-consistency reward")
    exemplars = load_exemplars(EXEMPLARS)
    rendered = [{**p, "problem": p["prompt"], "prompt": render_prompt(FEWSHOT_TEMPLATE, p, exemplars=exemplars, k=1,
                                                                     seed=SEED)[-1]["content"]} for p in problems]
    writer = store.writer("demo-grpo-train-prompts", stage="render-prompts", parents=[written["problems"]],
                          config={"template": FEWSHOT_TEMPLATE, "exemplars": EXEMPLARS, "few_shot_k": 1, "seed": SEED})
    writer.write(rendered)
    written["grpo_train_prompts"] = writer.commit(stats={"rows": len(rendered)}).ref
    policies: dict[str, str] = {}
    for label, rewards in (("without_language_reward", {"accuracy": 1.0, "format": 0.5}),
                           ("with_language_reward", {"accuracy": 1.0, "format": 0.5, "language_consistency": 0.5})):
        out_dir = work / f"grpo-{label}"
        cfg = GRPOConfig(model=cold_model, output_dir=str(out_dir), seed=SEED, rewards=rewards,
                         learning_rate=sizes.grpo_learning_rate,
                         max_steps=sizes.grpo_steps, prompts_per_step=4, num_generations=8, max_new_tokens=100,
                         temperature=1.0, lr_schedule="constant", scale_rewards="batch", resume=False, log_every=1)
        with TrainingLines(f"grpo {label.split('_')[0]} lang", out_dir / "metrics.jsonl", sizes.grpo_steps):
            ref = grpo_flow(GRPOParams(root=root, input=written["grpo_train_prompts"],
                                       output=f"demo-teacher-grpo-{label.replace('_', '-')}", grpo=cfg,
                                       gpu_limit=False))
        written[f"grpo_{label}"] = ref
        policies[label] = store.resolve(ref).stats["grpo"]["final_model_dir"]
    stage("reasoning RL", t0)
    teacher = policies["with_language_reward"]
    mixing_rate = {}
    for label, model in policies.items():
        out = f"demo-eval-teacher-{label.replace('_', '-')}"
        scores = evaluate(f"teacher ({label.replace('_', ' ')})", model, FEWSHOT_TEMPLATE, out)
        mixing_rate[label] = _mixing_rate(store, written[out])
        say(f"  mixing rate {label.replace('_', ' ')}: {mixing_rate[label]:.3f}")
        if label == "with_language_reward":
            teacher_scores = scores

    # 5. rejection sampling: generate -> verify -> filter -> select ----------------
    t0 = time.monotonic()
    header(f"5/7 rejection sampling: the teacher writes {sizes.n} samples per problem with the few-shot template")
    budget = max(len(tokenizer(scratchpad(a, b), add_special_tokens=False)["input_ids"]) for a, b in train_pairs)
    sampling = {"temperature": 1.0, "top_p": 1.0, "max_tokens": 112, "seed": SEED}
    written["generations"] = generate_flow(GenerateParams(
        root=root, input=written["problems"], output="demo-generations", shard_size=200, gpu_limit=False,
        generation={"backend": {"kind": "hf", "model": teacher, "batch_size": 256}, "template": FEWSHOT_TEMPLATE,
                    "exemplars": EXEMPLARS, "k": 1, "seed": SEED, "n": sizes.n, "sampling": sampling}))
    written["verified"] = verify_flow(VerifyParams(root=root, input=written["generations"], output="demo-verified",
                                                   workers=1))
    filters = FiltersConfig(
        dedup={"enabled": False}, decontam={"enabled": False},
        # Token lengths with the teacher's own tokenizer; the budget is the longest plain scratchpad.
        length={"tokenizer": teacher, "max_reasoning_tokens": budget, "max_answer_tokens": 16},
    )
    written["filtered"] = filter_flow(FilterParams(root=root, input=written["verified"], output="demo-filtered",
                                                   filters=filters))
    selected = select_flow(SelectParams(root=root, input=written["filtered"], output="demo-selected",
                                        prompts_output="demo-grpo-prompts",
                                        select={"k": sizes.k_select, "band_low": 0.1, "band_high": 0.9}))
    written["selected"], written["grpo_prompts"] = selected["selected"], selected["grpo_prompts"]
    stage("rejection sampling", t0)

    # 6. non-reasoning: numbers in words, judged inside the verify flow, mixed 3:1 --
    t0 = time.monotonic()
    header("6/7 non-reasoning: numbers in words, graded by the judge verifier, mixed 3:1 with the reasoning samples")
    written["words_generations"] = generate_flow(GenerateParams(
        root=root, input=written["words"], output="demo-words-generations", shard_size=200, gpu_limit=False,
        generation={"backend": {"kind": "hf", "model": teacher, "batch_size": 256}, "template": PLAIN_TEMPLATE,
                    "exemplars": None, "k": 0, "seed": SEED, "n": 2,
                    "sampling": {"temperature": 0.8, "top_p": 0.95, "max_tokens": 12, "seed": SEED}}))
    written["words_verified"] = verify_flow(VerifyParams(
        root=root, input=written["words_generations"], output="demo-words-verified", workers=1,
        verifiers_by_task={WORDS_TASK: ["judge"]},
        judge={"backend": {"kind": "hf", "model": teacher, "batch_size": 256}, "max_tokens": 8,
               "templates": {WORDS_TASK: JUDGE_TEMPLATE}}))
    reasoning_available = store.resolve(written["selected"]).rows
    words_ok = store.scan(written["words_verified"]).filter("accepted").select("problem_id").unique().collect().height
    n_reasoning = min(reasoning_available, 3 * words_ok)
    mix_cfg = {"reasoning_count": n_reasoning, "non_reasoning_count": n_reasoning // 3, "seed": SEED}
    written["mix"] = mix_flow(MixParams(root=root, reasoning=written["selected"],
                                        non_reasoning=written["words_verified"], output="demo-sft-mix", mix=mix_cfg))
    stage("non-reasoning + mix", t0)

    # 7. distillation: the base model as the student, SFT on the mix; eval before and after
    t0 = time.monotonic()
    header("7/7 distillation: a student (the base model, as R1 distils into base models), SFT on the mix")
    student_init = base_model
    before = evaluate("student before", student_init, PLAIN_TEMPLATE, "demo-eval-student-before")
    sft_student = SFTConfig(model=student_init, output_dir=str(work / "student-sft"), num_epochs=sizes.student_epochs,
                            learning_rate=sizes.learning_rate, warmup_ratio=0.05, max_length=256,
                            per_device_batch_size=8, packing=True, seed=SEED, resume=False, log_every=20)
    if store.resolve(written["mix"]).rows:
        with TrainingLines("student sft", work / "student-sft" / "metrics.jsonl"):
            written["student_sft"] = sft_flow(SFTParams(root=root, input=written["mix"], output="demo-student-sft",
                                                        sft=sft_student, gpu_limit=False))
        student = store.resolve(written["student_sft"]).stats["sft"]["final_model_dir"]
        after = evaluate("student after", student, PLAIN_TEMPLATE, "demo-eval-student-after")
    else:  # nothing survived rejection sampling (a teacher that learned nothing): nothing to distil
        say("  the mix is empty: no student training; student after = student before")
        after = dict(before)
    stage("distillation", t0)

    verified = store.resolve(written["verified"]).stats
    filtered = store.resolve(written["filtered"]).stats
    kept = store.scan(written["filtered"]).filter(_kept()).select("reasoning").collect()["reasoning"].to_list()
    reasoning_tokens = [len(tokenizer(r or "", add_special_tokens=False)["input_ids"]) for r in kept]
    mix_stats = store.resolve(written["mix"]).stats["mix"]
    report = {
        "teacher": teacher_scores,
        "student_before": before,
        "student_after": after,
        "mixing_rate": mixing_rate,
        "counts": {
            "generated": store.resolve(written["generations"]).rows,
            "accepted": verified["acceptance"]["accepted"],
            "kept": len(kept),  # accepted samples the filters kept (what select chooses from)
            "selected": store.resolve(written["selected"]).rows,
            "grpo_prompts": store.resolve(written["grpo_prompts"]).rows,
        },
        "drops": {k.replace("/", ":", 1): v for k, v in sorted(filtered.get("dropped", {}).items())},
        # counted with the teacher's tokenizer
        "mean_reasoning_tokens": round(sum(reasoning_tokens) / len(reasoning_tokens), 2) if kept else 0.0,
        "mix": {kind: mix_stats["taken"].get(kind, 0) for kind in ("reasoning", "non_reasoning")},
        "wall_s": round(time.monotonic() - started, 1),
        "stage_seconds": timings,
        "root": root,
        "datasets": written,
    }
    return report


def _kept():
    import polars as pl

    return pl.col("drop").is_null() & pl.col("accepted").fill_null(False)


#: What a dataset holds, for the browse commands printed at the end.
BROWSE = {
    "problems": "train problems", "heldout": "held-out problems", "words": "numbers-in-words problems",
    "pretrain": "pretraining corpus (arithmetic notes)", "base": "base model pretraining run (metrics)",
    "cold_start": "cold-start SFT samples", "teacher_sft": "teacher SFT run (metrics)",
    "grpo_train_prompts": "GRPO prompts (few-shot rendered)",
    "grpo_without_language_reward": "GRPO run, no language reward",
    "grpo_with_language_reward": "GRPO run, with language reward",
    "generations": "teacher samples", "verified": "math verdicts", "filtered": "filter drops",
    "selected": "rejection-sampled", "grpo_prompts": "pass-rate band prompts",
    "words_generations": "numbers in words", "words_verified": "judge verdicts", "mix": "SFT mix (3:1)",
    "student_sft": "student SFT run (metrics)",
}


def print_summary(report: dict[str, Any]) -> None:
    """The final table and the commands that browse every version written."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    t = Table(title="R1 in miniature")
    t.add_column("model (held-out)")
    t.add_column("pass@1", justify="right")
    t.add_column("maj@k", justify="right")
    t.add_column("k", justify="right")
    for key in ("teacher", "student_before", "student_after"):
        m = report[key]
        t.add_row(key.replace("_", " "), f"{m['pass@1']:.3f}", f"{m['maj@k']:.3f}", str(m["k"]))
    console.print(t)
    c = Table(show_header=False)
    c.add_column("")
    c.add_column("", justify="right")
    for k, v in report["counts"].items():
        c.add_row(k.replace("_", " "), str(v))
    for k, v in report["drops"].items():
        c.add_row(f"dropped {k}", str(v))
    c.add_row("mean reasoning tokens (kept)", str(report["mean_reasoning_tokens"]))
    c.add_row("mix reasoning : non-reasoning", f"{report['mix']['reasoning']} : {report['mix']['non_reasoning']}")
    for k, v in report["mixing_rate"].items():
        c.add_row(f"mixing rate {k.replace('_', ' ')}", f"{v:.3f}")
    c.add_row("wall time (s)", str(report["wall_s"]))
    console.print(c)
    root = report["root"]
    env = "" if root == default_root() else f"DATAGEN_ROOT={root} "
    # Plain prints: a command must stay on one line to be copied (rich would wrap it).
    say("Browse what each stage wrote:")
    say(f"  {env}datagen datasets ls")
    for key, ref in report["datasets"].items():
        name = ref.split("@")[0]
        what = BROWSE.get(key, "eval results" if name.startswith("demo-eval") else key)
        say(f"  {env}datagen datasets show {name}    # {what}")
    say(f"  {env}datagen datasets head demo-filtered --columns drop drop_detail reasoning")
    say(f"  {env}datagen datasets head demo-words-verified --columns prompt summary answer accepted")
    say(f"  {env}datagen datasets head demo-eval-student-after --columns prompt answer pass@1 majority_answer")


def default_root() -> str:
    from datagen.store import open_store

    os_root = os.environ.pop("DATAGEN_ROOT", None)
    try:
        return open_store(None).root
    finally:
        if os_root is not None:
            os.environ["DATAGEN_ROOT"] = os_root


def check(report: dict[str, Any]) -> list[str]:
    """The relations the demo must show (``make demo`` fails, naming them, when one does not hold)."""
    c, problems = report["counts"], []
    if not report["student_after"]["pass@1"] >= report["student_before"]["pass@1"] + 0.3:
        problems.append("student pass@1 did not rise by 0.3")
    if not c["accepted"] < c["generated"]:
        problems.append("verify rejected nothing")
    if not c["kept"] < c["accepted"]:
        problems.append("the filters dropped no accepted sample")
    for prefix in ("language:", "length:"):
        if not any(k.startswith(prefix) for k in report["drops"]):
            problems.append(f"no {prefix}* drop")
    if not report["mean_reasoning_tokens"] >= 20:
        problems.append("mean reasoning tokens below 20")
    if not (report["mix"]["reasoning"] > 0 and report["mix"]["non_reasoning"] > 0):
        problems.append("the mix lacks one kind")
    m = report["mixing_rate"]
    if not m["with_language_reward"] < m["without_language_reward"]:
        problems.append("the language reward did not lower the mixing rate")
    if not c["grpo_prompts"] > 0:
        problems.append("no GRPO prompts")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m datagen.demo", description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="demo_work", help="folder of the per-run model folders (default ./demo_work)")
    ap.add_argument("--report", default="demo_report.json")
    ap.add_argument("--quick", action="store_true", help="smaller pools and fewer steps (the test's size)")
    ap.add_argument("--sizes", default="{}", metavar="JSON",
                    help='override sizes, e.g. \'{"grpo_steps": 4}\' (fields of datagen.demo.Sizes)')
    ap.add_argument("--allow-weak", action="store_true",
                    help="exit 0 even when a relation the demo should show does not hold (smoke runs)")
    args = ap.parse_args(argv)
    import dataclasses

    try:
        sizes = dataclasses.replace(QUICK if args.quick else FULL, **json.loads(args.sizes))
    except (TypeError, ValueError) as e:
        ap.error(f"--sizes: {e}; fields: {', '.join(f.name for f in dataclasses.fields(Sizes))}")
    quiet_third_parties()
    work = Path(args.work)
    # Models are scratch: earlier runs' folders go, this run gets its own (its id is in every model path,
    # hence in every training, generation and eval run key).
    if work.exists():
        for old in work.iterdir():
            if old.is_dir() and old.name.startswith("run-"):
                shutil.rmtree(old, ignore_errors=True)
    run_dir = work / f"run-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
    from flows.common import ad_hoc_run_settings
    from flows.progress import cli_progress
    from flows.server import prefect_server

    # Our own temporary Prefect server (the CLI's): it dies with this process however it ends.
    with ad_hoc_run_settings(), prefect_server(), cli_progress("demo"):
        report = run(run_dir.resolve(), sizes=sizes)
    Path(args.report).write_text(json.dumps(report, indent=2))
    print_summary(report)
    problems = check(report)
    if problems:
        print("demo: " + "; ".join(problems) + " — see " + args.report, file=sys.stderr)
        return 0 if args.allow_weak else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
