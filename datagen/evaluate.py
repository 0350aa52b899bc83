"""Evaluation with DeepSeek-R1's metrics: pass@1 averaged over k samples, and maj@k.

R1 reports, for each benchmark, k samples per problem at temperature 0.6
(top-p 0.95) and

- **pass@1** = (1/k) Σ_i p_i per problem — the share of the k samples that are
  correct — averaged over the problems;
- **maj@k** (cons@k): the answer given most often among the k samples, correct
  or not, averaged over the problems.

``evaluate(problems, backend, config)`` samples with the generation stage's
own logic (``datagen.generate.stage.generate_rows``: the same templates,
per-sample seeds and backends — hf, vLLM, an OpenAI-compatible server),
grades every sample with the verifier the problem's domain names (the math
verifier: the real one, through ``datagen.verify.runner``) and scores it with
``score_problem``. The ``eval`` flow (``flows/eval.py``, ``datagen run eval``)
writes the per-problem results as a version and the summary in its stats.

Majority voting counts each sample's *extracted* final answer
(``datagen.verify.math.extract_final_answer``, whitespace-normalised); a
sample without one does not vote; ties go to the answer reached first (the
lowest sample index). A problem with no answer at all scores 0 on maj@k.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from datagen.generate.config import BackendConfig, SamplingConfig

#: R1's evaluation sampling: temperature 0.6, top-p 0.95.
R1_SAMPLING = SamplingConfig(temperature=0.6, top_p=0.95, max_tokens=32768)


class EvalConfig(BaseModel):
    """What an evaluation computes (the ``eval`` flow's ``eval`` section)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: BackendConfig | None = Field(
        None, description="the model under test: any generation backend (kind: hf|openai|vllm); None: the input "
        "is already a generations version (k samples per problem), graded as it is")
    k: int = Field(8, ge=1, description="samples per problem (pass@1 is averaged over them; maj@k votes among them)")
    sampling: SamplingConfig = Field(default=R1_SAMPLING, description="R1: temperature 0.6, top_p 0.95")
    template: str = Field("r1_zero.v1", description="prompt template in prompts/ (R1-Zero's by default)")
    exemplars: str | None = Field(None, description="few-shot exemplar file in prompts/exemplars (None: none)")
    few_shot_k: int = Field(0, ge=0, description="exemplars per prompt")
    seed: int = 0
    think_prefilled: bool | None = None
    math_timeout_s: float = Field(5.0, gt=0)


def _vote_key(answer: str | None) -> str | None:
    if answer is None:
        return None
    key = " ".join(answer.split())
    return key or None


def score_problem(samples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """pass@1 and maj@k of one problem's k graded samples.

    Each sample needs ``correct`` (bool) and ``answer`` (its extracted final
    answer, or None). Returns ``k``, ``correct`` (count), ``pass@1``,
    ``majority_answer``, ``majority_votes`` and ``maj_correct`` (0/1).
    """
    if not samples:
        raise ValueError("score_problem needs at least one sample")
    k = len(samples)
    correct = sum(bool(s["correct"]) for s in samples)
    votes: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        key = _vote_key(s.get("answer"))
        if key is not None:
            votes.setdefault(key, []).append(i)
    if votes:
        # Most votes; a tie goes to the answer first reached (dicts keep insertion order).
        winner = max(votes, key=lambda a: len(votes[a]))
        maj_correct = int(bool(samples[votes[winner][0]]["correct"]))
        majority, n_votes = winner, len(votes[winner])
    else:
        maj_correct, majority, n_votes = 0, None, 0
    return {"k": k, "correct": correct, "pass@1": correct / k, "majority_answer": majority,
            "majority_votes": n_votes, "maj_correct": maj_correct}


def summarize(per_problem: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The version's summary: mean pass@1 and maj@k over problems, k, problems."""
    n = len(per_problem)
    if not n:
        return {"problems": 0, "k": None, "pass@1": None, "maj@k": None}
    ks = {p["k"] for p in per_problem}
    return {"problems": n, "k": ks.pop() if len(ks) == 1 else sorted(ks),
            "pass@1": round(sum(p["pass@1"] for p in per_problem) / n, 6),
            "maj@k": round(sum(p["maj_correct"] for p in per_problem) / n, 6)}


def summary_from_counts(stats: Mapping[str, Any]) -> dict[str, Any]:
    """The summary from summed per-shard counts (``pass1_sum``, ``maj_correct``, ``problems``, ``k``)."""
    n = stats.get("problems", 0)
    return {"problems": n, "k": stats.get("k"),
            "pass@1": round(stats["pass1_sum"] / n, 6) if n else None,
            "maj@k": round(stats["maj_correct"] / n, 6) if n else None}


def _final_answer(row: Mapping[str, Any]) -> str | None:
    from datagen.verify.math import extract_final_answer

    if row.get("summary") is None:
        return None
    return extract_final_answer(row["summary"])


def grade(samples: list[dict[str, Any]], *, math_timeout_s: float = 5.0) -> None:
    """Set ``verdicts`` (the domain's verifier), ``correct`` and ``answer`` on each sample, in place."""
    from datagen.records import decode_verdicts
    from datagen.verify.runner import verify_rows

    by_domain: dict[str, list[dict[str, Any]]] = {}
    for s in samples:
        by_domain.setdefault(s.get("domain") or "math", []).append(s)
    unknown = sorted(set(by_domain) - {"math", "code"})
    if unknown:
        raise ValueError(f"eval grades math and code problems by rule; got domain(s) {unknown}")
    for domain, rows in by_domain.items():
        opts = {"timeout_s": math_timeout_s} if domain == "math" else {}
        verify_rows(rows, domain, **opts)
        for r in rows:
            v = decode_verdicts(r["verdicts"])[domain]
            r["outcome"] = v["outcome"]
            r["correct"] = v["outcome"] == "correct"
            r["answer_given"] = _final_answer(r) if domain == "math" else None


def score_samples(samples: list[dict[str, Any]], *, k: int | None = None, math_timeout_s: float = 5.0
                  ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Grade generated samples (rows of a generations version: ``problem_id``, ``completion``,
    ``summary``, ``answer``, ``domain``) and score each problem, in first-seen order.

    Returns one row per problem (its fields, plus ``k``, ``correct``, ``pass@1``,
    ``majority_answer``, ``majority_votes``, ``maj_correct``, the per-sample
    ``completions``, ``answers`` and ``outcomes``) and summable stats
    (``problems``, ``samples``, ``correct``, ``pass1_sum``, ``maj_correct``).
    ``k``: when given, every problem must have exactly k samples.
    """
    grade(samples, math_timeout_s=math_timeout_s)
    by_problem: dict[str, list[dict[str, Any]]] = {}
    for s in samples:
        by_problem.setdefault(s["problem_id"], []).append(s)
    rows = []
    for pid, mine in by_problem.items():
        if k is not None and len(mine) != k:
            raise ValueError(f"problem {pid!r} has {len(mine)} samples; eval with k={k} needs exactly {k}")
        scored = score_problem([{"correct": s["correct"], "answer": s["answer_given"]} for s in mine])
        first = mine[0]
        rows.append({**{c: first.get(c) for c in ("problem_id", "source", "domain", "language", "prompt", "answer")},
                     "sample_id": pid,  # one row per problem (the record's problem-level id)
                     **scored, "model": first.get("model"),
                     "completions": [s.get("completion") for s in mine],
                     "answers": [s["answer_given"] for s in mine],
                     "outcomes": [s["outcome"] for s in mine]})
    stats = {"problems": len(rows), "samples": len(samples), "correct": sum(r["correct"] for r in rows),
             "pass1_sum": sum(r["pass@1"] for r in rows), "maj_correct": sum(r["maj_correct"] for r in rows)}
    return rows, stats


def evaluate_shard(problems: list[dict[str, Any]], backend: Any, config: EvalConfig
                   ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Sample ``config.k`` completions per problem with ``backend`` and score them (``score_samples``)."""
    from datagen.generate.config import GenerateConfig
    from datagen.generate.stage import generate_rows

    if config.backend is None:
        raise ValueError("sampling needs eval.backend (the model under test)")
    gen = GenerateConfig(backend=config.backend, sampling=config.sampling, n=config.k, template=config.template,
                         exemplars=config.exemplars, k=config.few_shot_k, seed=config.seed,
                         think_prefilled=config.think_prefilled)
    samples = generate_rows(problems, backend, gen)
    return score_samples(samples, k=config.k, math_timeout_s=config.math_timeout_s)


def evaluate(problems: list[dict[str, Any]], config: EvalConfig, *, backend: Any = None
             ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``evaluate_shard`` over all ``problems`` with ``config.backend`` (built here unless passed);
    returns (per-problem rows, summary)."""
    from datagen.generate.backends import make_backend

    if backend is None:
        if config.backend is None:
            raise ValueError("evaluate needs eval.backend (the model under test) or a backend")
        backend = make_backend(config.backend)
    rows, _ = evaluate_shard(problems, backend, config)
    return rows, summarize(rows)
