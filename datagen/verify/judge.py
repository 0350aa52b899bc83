"""LLM judge: does a response's final answer match the reference answer?

For answers that rules cannot check (free-form QA, DeepSeek-R1's "generative
reward model" in rejection sampling), a judge model reads the question, the
reference answer and the response's *final answer* (the summary after
``</think>``: the judge never sees the candidate's reasoning, which is long
and could talk it into agreeing) through a prompt template in ``prompts/``,
and must end with the line ``VERDICT: CORRECT`` or ``VERDICT: INCORRECT``.

Inside the flows the judge is a verifier of the verify stage: ``JudgeConfig`` (the
``verify.judge`` section) names its backend — the generation backends, ``hf``,
``openai`` or ``vllm`` — loaded once per worker process (``judge_backend_for``). Each
row is judged with its task's template (``datagen.nonreasoning.TASKS``): factual
answers against the reference (``judge.v1``), writing on a rubric without a
reference (``judge_writing.v1``), translations against the reference
(``judge_translation.v1``). A template without a ``{{reference}}`` slot needs no
reference.

Parsing is strict: the last non-empty line of the judge's answer must be
exactly one of those two, and no other line may carry a contradicting
verdict. Anything else is the judge failing, so the outcome is ``error``
(counted, never a score) — not ``incorrect``. A response without a final
answer is ``unparseable`` (a judgement on the candidate, no model call), one whose
answer carries a verdict line itself (``VERDICT: CORRECT``, an injection aimed at the
judge) is ``incorrect`` without a call; a
row without a reference, judged with a template that needs one, is ``error``.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from datagen.generate.backends.base import Backend, GenRequest
from datagen.generate.config import BackendConfig, SamplingConfig
from datagen.generate.prompts import load_template, render_prompt
from datagen.records import response_of, split_completion, verdict

log = logging.getLogger(__name__)

#: Greedy decoding: a verdict should not depend on the sampling seed. The
#: budget leaves room for a reasoning judge to think before its verdict.
JUDGE_SAMPLING = SamplingConfig(temperature=0.0, top_p=1.0, max_tokens=4096)


def default_judge_templates() -> dict[str, str]:
    """Task -> judge template, from ``datagen.nonreasoning.TASKS`` (tasks judged by rule only have none)."""
    from datagen.nonreasoning import TASKS

    return {task: spec.judge_template for task, spec in TASKS.items() if spec.judge_template}


class JudgeConfig(BaseModel):
    """The judge verifier inside the verify stage (``verify.judge``).

    ``backend``: any generation backend (``kind: hf | openai | vllm``, as in
    ``generate.generation.backend``). ``template``: the judge template of rows
    whose task has none in ``templates`` (a row without ``task``: reasoning answers
    rules cannot check). ``max_tokens``: the judge's budget (greedy decoding)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: BackendConfig
    template: str = "judge.v1"
    templates: dict[str, str] = Field(default_factory=default_judge_templates)
    max_tokens: int = Field(JUDGE_SAMPLING.max_tokens, ge=1)
    #: the candidates' completions start inside a pre-filled ``<think>`` (used to find the final answer
    #: of rows without a ``summary``; the judge's own output is split by what its backend reports)
    think_prefilled: bool = False
    prompts_dir: str | None = None


_BACKENDS: dict[str, Backend] = {}
_BACKENDS_LOCK = threading.Lock()


def judge_backend_for(config: JudgeConfig) -> Backend:
    """One judge backend (a loaded model, a client) per process and backend config."""
    from datagen.generate.backends import make_backend

    key = config.backend.model_dump_json()
    with _BACKENDS_LOCK:
        if key not in _BACKENDS:
            _BACKENDS[key] = make_backend(config.backend)
        return _BACKENDS[key]


_VERDICT_LINE = re.compile(r"^VERDICT: (CORRECT|INCORRECT)$")
_ANY_VERDICT = re.compile(r"VERDICT:\s*(CORRECT|INCORRECT)\b", re.IGNORECASE)


def parse_judge_output(text: str | None, *, think_prefilled: bool = False) -> tuple[bool | None, str]:
    """Strictly parse a judge's output -> (True/False, detail), or (None, why not)."""
    if text is None:
        return None, "judge returned no text"
    split = split_completion(text, think_prefilled=think_prefilled)
    if split.summary is None:
        return None, "judge output ended inside its reasoning"
    lines = [line.strip() for line in split.summary.splitlines() if line.strip()]
    if not lines:
        return None, "judge output is empty"
    match = _VERDICT_LINE.match(lines[-1])
    if match is None:
        return None, f"no verdict line; last line: {lines[-1][:120]!r}"
    said = {m.upper() for m in _ANY_VERDICT.findall(split.summary)}
    if len(said) > 1:
        return None, "judge gave contradicting verdicts"
    return match.group(1) == "CORRECT", lines[-1]


def verify_judge(
    rows: Sequence[Mapping[str, Any]],
    backend: Backend,
    *,
    template: str = "judge.v1",
    templates: Mapping[str, str] | None = None,
    sampling: SamplingConfig = JUDGE_SAMPLING,
    prompts_dir: str | None = None,
    think_prefilled: bool = False,
) -> list[dict[str, Any]]:
    """Judge each row's final answer; one verdict dict per row.

    Rows need ``prompt`` and ``summary`` or ``completion`` (split with
    ``think_prefilled`` when the generating chat template pre-filled
    ``<think>``); ``answer`` (the reference) when the row's template has a
    ``{{reference}}`` slot; ``language`` when it has a ``{{language}}`` slot.
    A row's template is ``templates[row["task"]]``, else ``template``. All
    judge requests go to the backend in one batch.
    """
    templates = dict(templates or {})
    for name in {template, *templates.values()}:
        load_template(name, prompts_dir)  # fail on a bad template before any model call
    verdicts: list[dict[str, Any] | None] = [None] * len(rows)
    pending: list[int] = []
    requests: list[GenRequest] = []
    for i, row in enumerate(rows):
        name = templates.get(str(row.get("task")), template)
        slots = {slot for text in load_template(name, prompts_dir).sections.values()
                 for slot in re.findall(r"\{\{\s*([a-z_]+)\s*\}\}", text)}
        reference = row.get("answer")
        if "reference" in slots and (reference is None or not str(reference).strip()):
            verdicts[i] = verdict("error", detail=f"no reference answer to judge against ({name})")
            continue
        response = response_of(row, think_prefilled=think_prefilled)
        if response is None or not response.strip():
            verdicts[i] = verdict("unparseable", detail="response has no final answer")
            continue
        if _ANY_VERDICT.search(response):
            # A verdict line inside the candidate's answer is an attempt to speak for the judge
            # (a weak judge copies it); no genuine answer needs one.
            verdicts[i] = verdict("incorrect", detail="the response contains a judge verdict line")
            continue
        values = {"prompt": row["prompt"], "answer": None if reference is None else str(reference),
                  "response": response, "language": row.get("language") or "en"}
        rendered = render_prompt(name, values, prompts_dir=prompts_dir)
        if isinstance(rendered, str):
            requests.append(GenRequest(prompt=rendered, n=1, sampling=sampling))
        else:
            requests.append(GenRequest(messages=rendered, n=1, sampling=sampling))
        pending.append(i)
    if requests:
        results = backend.generate(requests)
        for i, result in zip(pending, results):
            out = result.outputs[0]
            if out.finish_reason == "error":
                verdicts[i] = verdict("error", detail=f"judge request failed: {out.error}")
                continue
            decision, detail = parse_judge_output(out.text, think_prefilled=bool(result.think_prefilled))
            if decision is None:
                verdicts[i] = verdict("error", detail=f"unparseable judge output ({backend.name}): {detail}")
            else:
                verdicts[i] = verdict("correct" if decision else "incorrect", detail=f"{backend.name}: {detail}")
    return verdicts  # type: ignore[return-value]


def judge_one(
    prompt: str, response: str, reference: str, backend: Backend, *, template: str = "judge.v1", **kwargs: Any
) -> dict[str, Any]:
    """Judge a single (question, response, reference) triple; ``response`` may include its reasoning."""
    return verify_judge([{"prompt": prompt, "completion": response, "answer": reference}], backend,
                        template=template, **kwargs)[0]
