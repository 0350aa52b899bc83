"""The non-reasoning side of R1's SFT set (~200k of its 800k): sources of problems and chat-data import.

DeepSeek-R1 added writing, factual QA, self-cognition and translation samples
to its reasoning samples, with a chain of thought only where the task
warranted it. This module makes those problems as records (domain
``general``) that the ordinary stages carry on — generate, verify (judge,
chrF, rules), filter, mix — and imports existing chat-format SFT data as
non-reasoning versions.

**Sources** (``general_problems(config)``), one per task (the ``task`` column):

- ``writing``: writing requests; judged on a rubric (``judge_writing.v1``).
- ``factual_qa``: questions with a reference answer; judged against it (``judge.v1``).
- ``self_cognition``: who the model is — its name and maker come from the
  config and are asked about in each target language; the reference answer
  is written from them, and a rule checks each sample (``self_cognition``).
- ``translation``: a source text in one language, a reference in the target
  language; judged by the judge and by chrF (``judge_translation.v1``, ``chrf``).

Each task reads a JSONL file of items (``file:``) or, by default, the small
built-in set in ``datagen/data/general/`` (a few dozen items in en, zh, fr,
de, es, ja: enough for tests and the demo; production points ``file:`` at
real sets). ``TASKS`` says, per task, the generation template (in
``prompts/``, versioned), whether a chain of thought is wanted (``cot``:
``none`` or ``short``) and the judge template. Every row carries them:

``problem_id, source, domain="general", language, prompt, answer (reference or None), task, cot,
prompt_template`` (the generation template; the generate stage renders each
row with its own), plus ``identity`` (JSON name/maker, self-cognition) and
``source_language`` (translation).

**Import** (``import_chat``): JSONL / Parquet files and saved HF datasets of
rows with a ``messages`` list (``role``/``content``, optional leading system
turn, one or more user/assistant exchanges ending with the assistant) become
records with ``prompt`` (the last user turn), ``summary`` (the last assistant
turn, ``reasoning`` split off at the think tags), ``messages`` (the normalised
conversation, kept whole for multi-turn), ``task="chat"``. Rows are
deduplicated (same normalised conversation), decontaminated against
benchmark files (``filters.decontam``) and malformed rows are quarantined
with their reason, as ``datagen datasets import`` does (``datagen.ingest``).
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from datagen.records import RecordError, normalize_prompt, normalize_row, problem_id_for, split_completion

log = logging.getLogger(__name__)

#: The built-in items, one JSONL per task (versioned by name like prompts).
DATA_DIR = Path(__file__).resolve().parent / "data" / "general"


@dataclass(frozen=True)
class TaskSpec:
    """How one non-reasoning task is generated and judged."""

    template: str  #: generation template in ``prompts/``
    cot: Literal["none", "short"]  #: chain of thought wanted in the SFT sample
    judge_template: str | None  #: judge template (None: judged by rule only)
    verifiers: tuple[str, ...]  #: the verifiers that decide acceptance (``verify.verifiers_by_task``)
    builtin: str  #: built-in item file in ``DATA_DIR``


TASKS: dict[str, TaskSpec] = {
    "writing": TaskSpec("general_writing.v1", "short", "judge_writing.v1", ("judge",), "writing.v1.jsonl"),
    "factual_qa": TaskSpec("factual_qa.v2", "none", "judge.v1", ("judge",), "factual_qa.v1.jsonl"),
    "self_cognition": TaskSpec("self_cognition.v1", "none", None, ("self_cognition",), "self_cognition.v1.jsonl"),
    "translation": TaskSpec("translation.v2", "none", "judge_translation.v1", ("judge", "chrf"),
                            "translation.v1.jsonl"),
}
#: ``task`` of imported chat rows (no generation, no judge: the data was curated where it came from).
CHAT_TASK = "chat"

LANGUAGE_NAMES = {"en": "English", "zh": "Chinese", "fr": "French", "de": "German", "es": "Spanish",
                  "ja": "Japanese", "it": "Italian", "pt": "Portuguese", "ru": "Russian", "ko": "Korean"}


# --------------------------------------------------------------------------- config


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TaskSource(_Strict):
    """One task's items: a JSONL file (None = the built-in set), optionally capped and filtered."""

    enabled: bool = True
    file: str | None = None
    #: at most this many problems, drawn seeded (None = all)
    n: int | None = Field(None, ge=0)
    #: only items in these languages (None = all)
    languages: list[str] | None = None
    #: chain of thought wanted in the SFT sample: none, short, or None = the task's default (``TASKS``)
    cot: Literal["none", "short"] | None = None


class Identity(_Strict):
    """Who the model says it is (self-cognition); the same name and maker in every language."""

    name: str = Field("Tiny-R1", min_length=1)
    maker: str = Field("the datagen team", min_length=1)


class SelfCognitionSource(TaskSource):
    identity: Identity = Identity()
    #: target languages asked in (each needs questions in the item file); None = every language in it
    languages: list[str] | None = ["en", "zh"]


class GeneralSourcesConfig(_Strict):
    """Which non-reasoning problems to make (the ``general`` flow's config)."""

    writing: TaskSource = TaskSource()
    factual_qa: TaskSource = TaskSource()
    self_cognition: SelfCognitionSource = SelfCognitionSource()
    translation: TaskSource = TaskSource()
    seed: int = 0

    @model_validator(mode="after")
    def _something(self) -> GeneralSourcesConfig:
        if not any(getattr(self, t).enabled for t in TASKS):
            raise ValueError("every task is disabled: enable at least one of " + ", ".join(TASKS))
        return self


# --------------------------------------------------------------------------- sources


def _items(task: str, source: TaskSource | None) -> tuple[list[dict[str, Any]], str]:
    source = source or (SelfCognitionSource() if task == "self_cognition" else TaskSource())
    path = Path(source.file) if source.file else DATA_DIR / TASKS[task].builtin
    if not path.is_file():
        raise FileNotFoundError(f"{task}.file: {path} does not exist (a JSONL file of {task} items)")
    items = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"{path}:{i}: not a JSON object ({exc})") from None
        if not isinstance(item, dict):
            raise TypeError(f"{path}:{i}: expected a JSON object, got {type(item).__name__}")
        items.append(item)
    name = f"builtin-{task}" if source.file is None else path.stem
    return items, name


def _need(item: Mapping[str, Any], key: str, where: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}: needs a non-empty string {key!r}")
    return value


def _row(task: str, source: str, prompt: str, language: str, answer: str | None, **extra: Any) -> dict[str, Any]:
    spec = TASKS[task]
    row = {"prompt": prompt, "source": source, "domain": "general", "language": language, "answer": answer,
           "task": task, "cot": spec.cot, "prompt_template": spec.template, **extra}
    return normalize_row(row, default_source=source)


def writing_problems(source: TaskSource | None = None) -> list[dict[str, Any]]:
    """Writing requests (item: ``prompt``, ``language``, optional ``answer``: a model piece, used as a
    response by the mix's ``references``; samples are judged on a rubric, not against it)."""
    items, name = _items("writing", source)
    return [_row("writing", name, _need(it, "prompt", f"writing item {i}"), it.get("language") or "en",
                 it.get("answer") if isinstance(it.get("answer"), str) and it["answer"].strip() else None)
            for i, it in enumerate(items, 1)]


def factual_qa_problems(source: TaskSource | None = None) -> list[dict[str, Any]]:
    """Factual questions with a reference answer (item: ``prompt``, ``answer``, ``language``)."""
    items, name = _items("factual_qa", source)
    return [_row("factual_qa", name, _need(it, "prompt", f"factual_qa item {i}"), it.get("language") or "en",
                 _need(it, "answer", f"factual_qa item {i}")) for i, it in enumerate(items, 1)]


def translation_problems(source: TaskSource | None = None) -> list[dict[str, Any]]:
    """Translation pairs (item: ``text``, ``source_language``, ``language`` = target, ``answer`` = reference).

    The prompt is ``Translate the following <source> text into <target>:`` and the text."""
    items, name = _items("translation", source)
    rows = []
    for i, it in enumerate(items, 1):
        where = f"translation item {i}"
        text, src, tgt = _need(it, "text", where), _need(it, "source_language", where), _need(it, "language", where)
        if src == tgt:
            raise ValueError(f"{where}: source_language and language are both {src!r}")
        prompt = (f"Translate the following {LANGUAGE_NAMES.get(src, src)} text into "
                  f"{LANGUAGE_NAMES.get(tgt, tgt)}:\n\n{text}")
        rows.append(_row("translation", name, prompt, tgt, _need(it, "answer", where), source_language=src))
    return rows


def self_cognition_problems(source: SelfCognitionSource | None = None) -> list[dict[str, Any]]:
    """Questions about the model itself in each target language (item: ``language``, ``questions``,
    ``answer`` with ``{name}``/``{maker}``); the reference is that answer filled from ``source.identity``.

    Raises ``ValueError`` when a target language has no questions in the item file."""
    source = source or SelfCognitionSource()
    items, name = _items("self_cognition", source)
    by_language = {it.get("language"): it for it in items}
    languages = source.languages if source.languages is not None else sorted(k for k in by_language if k)
    missing = [lang for lang in languages if lang not in by_language]
    if missing:
        raise ValueError(f"self_cognition: no questions for language(s) {missing} in "
                         f"{source.file or DATA_DIR / TASKS['self_cognition'].builtin} "
                         f"(have {sorted(k for k in by_language if k)}); add them or drop them from languages")
    ident = {"name": source.identity.name, "maker": source.identity.maker}
    rows = []
    for lang in languages:
        item = by_language[lang]
        reference = _need(item, "answer", f"self_cognition {lang}").format(**ident)
        for question in item.get("questions") or []:
            rows.append(_row("self_cognition", name, question, lang, reference,
                             identity=json.dumps(ident, ensure_ascii=False)))
    return rows


_MAKERS = {"writing": writing_problems, "factual_qa": factual_qa_problems,
           "self_cognition": self_cognition_problems, "translation": translation_problems}


def general_problems(config: GeneralSourcesConfig | None = None) -> list[dict[str, Any]]:
    """Every enabled task's problems (see the module docstring), each capped to its ``n`` by a seeded
    draw and filtered to its ``languages``; sorted by ``problem_id``, duplicates (same id) removed."""
    config = config or GeneralSourcesConfig()
    rows: dict[str, dict[str, Any]] = {}
    for task, make in _MAKERS.items():
        source = getattr(config, task)
        if not source.enabled:
            continue
        made = make(source)
        if source.cot is not None:
            made = [{**r, "cot": source.cot} for r in made]
        if source.languages is not None and task != "self_cognition":
            made = [r for r in made if r["language"] in source.languages]
        if source.n is not None and len(made) > source.n:
            made = random.Random(f"{config.seed}:{task}").sample(made, source.n)
        for row in made:
            rows.setdefault(row["problem_id"], row)
    return [rows[k] for k in sorted(rows)]


# --------------------------------------------------------------------------- chat import


_ROLES = ("system", "user", "assistant")


class ChatError(ValueError):
    """A conversation that cannot become a record; ``reason`` is the quarantine slug."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


def chat_to_record(raw: Any, *, default_source: str, index: int | None = None) -> dict[str, Any]:
    """One chat row (``{"messages": [...], ...}``) -> a non-reasoning record; ``ChatError`` if malformed.

    Normalised: roles lower-cased (``human``/``gpt`` read as user/assistant), contents stripped of
    surrounding whitespace, one optional leading system turn, then alternating user/assistant turns
    ending with the assistant. Extra fields (``source``, ``language``, ``domain``…) are kept."""
    if not isinstance(raw, Mapping):
        raise ChatError("not_an_object", f"expected an object with 'messages', got {type(raw).__name__}")
    messages = raw.get("messages", raw.get("conversations"))
    if isinstance(messages, str):
        try:
            messages = json.loads(messages)
        except ValueError:
            raise ChatError("bad_messages", "'messages' is a string that is not JSON") from None
    if messages is None:
        raise ChatError("missing_messages", "no 'messages' (or 'conversations') list")
    if not isinstance(messages, (list, tuple)) or not messages:
        raise ChatError("bad_messages", f"'messages' must be a non-empty list, got {type(messages).__name__}")
    turns = []
    for j, m in enumerate(messages):
        if not isinstance(m, Mapping):
            raise ChatError("bad_messages", f"turn {j} is {type(m).__name__}, not an object")
        role = m.get("role", m.get("from"))
        content = m.get("content", m.get("value"))
        role = {"human": "user", "gpt": "assistant", "bot": "assistant"}.get(str(role).lower(), str(role).lower())
        if role not in _ROLES:
            raise ChatError("bad_role", f"turn {j} has role {m.get('role', m.get('from'))!r}; expected one of {_ROLES}")
        if not isinstance(content, str) or not content.strip():
            raise ChatError("empty_turn", f"turn {j} ({role}) has no text")
        turns.append({"role": role, "content": content.strip()})
    body = turns[1:] if turns[0]["role"] == "system" else turns
    if not body or len(body) % 2 or any(t["role"] != ("user", "assistant")[k % 2] for k, t in enumerate(body)):
        raise ChatError("bad_turn_order", "expected [system], then user/assistant turns alternating, ending with "
                                          f"the assistant; got {[t['role'] for t in turns]}")
    split = split_completion(body[-1]["content"])
    if not split.summary:
        raise ChatError("no_response", "the last assistant turn has no answer after its reasoning")
    row = {k: v for k, v in raw.items() if k not in ("messages", "conversations")}
    row.update(prompt=body[-2]["content"], summary=split.summary, reasoning=split.reasoning,
               messages=turns, task=CHAT_TASK, domain=row.get("domain") or "general")
    source = row.get("source") if isinstance(row.get("source"), str) else default_source
    # The id covers the whole conversation: two chats may end in the same question.
    row["problem_id"] = row.get("problem_id") or problem_id_for(source, json.dumps(turns, ensure_ascii=False))
    try:
        return normalize_row(row, default_source=default_source, index=index)
    except RecordError as exc:
        raise ChatError(f"bad_{exc.field or 'row'}", str(exc)) from None


@dataclass
class ChatImportResult:
    manifest: Any
    input_rows: int
    accepted: int
    duplicates: int
    contaminated: int
    rejected: int
    rejected_by_reason: dict[str, int] = field(default_factory=dict)


def import_chat(
    store: Any,
    path: str | os.PathLike,
    *,
    name: str,
    source: str | None = None,
    benchmarks: Sequence[str] | Mapping[str, str] = (),
    ngram: int = 8,
    run_key: str | None = None,
    flow_run_id: str | None = None,
    allow_empty: bool = False,
) -> ChatImportResult:
    """Import a chat-format JSONL / Parquet file or saved HF dataset as a non-reasoning version of ``name``.

    Reads through ``datagen.ingest``'s reader (a bad JSON line or a non-UTF-8 byte loses its line, not
    the file). Every input row is written, counted as a duplicate (same normalised conversation as an
    earlier row), dropped as contaminated (a user turn shares a word ``ngram`` with a benchmark file;
    counted by benchmark), or quarantined in the version's rejected part with its reason
    (``missing_messages``, ``bad_messages``, ``bad_role``, ``empty_turn``, ``bad_turn_order``,
    ``no_response``, or the reader's). A run with ``run_key`` resumes its committed version.
    Raises ``ValueError`` when nothing is importable (unless ``allow_empty``)."""
    from datagen.ingest import _iter_source  # the one reader of problem files (JSONL/Parquet/HF folder)
    from filters.base import KEEP
    from filters.config import DecontamConfig
    from filters.decontam import DecontamFilter, load_benchmarks

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    default_source = source or path.stem
    decontam = DecontamFilter(load_benchmarks(benchmarks), DecontamConfig(ngram=ngram)) if benchmarks else None
    writer = store.writer(name, stage="import_chat", config={"file": str(path), "source": default_source,
                                                             "benchmarks": list(benchmarks), "ngram": ngram},
                          run_key=run_key, flow_run_id=flow_run_id)
    if writer.committed is not None:
        s = writer.committed.stats.get("import", {})
        return ChatImportResult(writer.committed, s.get("input_rows", 0), s.get("accepted", 0),
                                s.get("duplicates", 0), sum(s.get("contaminated", {}).values()),
                                s.get("rejected", 0), s.get("rejected_by_reason", {}))
    seen: set[str] = set()
    rejected: list[dict[str, Any]] = []
    reasons: dict[str, int] = {}
    contaminated: dict[str, int] = {}
    n_in = n_ok = n_dup = 0
    try:
        for rownum, raw, error in _iter_source(path):
            n_in += 1
            row, reason, detail = None, None, error
            if error is not None:
                slug = error.split(":", 1)[0]
                reason = slug if slug.isidentifier() and slug.islower() else "invalid_json"
            else:
                try:
                    row = chat_to_record(raw, default_source=default_source, index=rownum)
                except ChatError as exc:
                    reason, detail = exc.reason, str(exc)
            if row is None:
                reasons[reason] = reasons.get(reason, 0) + 1
                rejected.append({"file": str(path), "row": rownum, "reason": reason, "detail": detail,
                                 "raw": raw if isinstance(raw, str) else json.dumps(raw, default=str,
                                                                                    ensure_ascii=False)})
                continue
            key = "\x00".join(f"{t['role']}:{normalize_prompt(t['content'])}" for t in row["messages"])
            if key in seen:
                n_dup += 1
                continue
            seen.add(key)
            if decontam is not None:
                user_text = "\n".join(t["content"] for t in row["messages"] if t["role"] == "user")
                decision = decontam.check_prompt(user_text)
                if decision is not KEEP and decision.reason is not None:
                    contaminated[decision.reason] = contaminated.get(decision.reason, 0) + 1
                    continue
            writer.write([row])
            n_ok += 1
        if n_ok == 0 and not allow_empty:
            raise ValueError(f"{path}: no conversation to import ({n_in} rows; quarantined: "
                             f"{', '.join(f'{k} {v}' for k, v in sorted(reasons.items())) or 'none'}; "
                             f"duplicates {n_dup}; contaminated {sum(contaminated.values())}); fix the input "
                             "or allow an empty version")
        writer.write_rejected(rejected)
        stats = {"import": {"input_rows": n_in, "accepted": n_ok, "duplicates": n_dup,
                            "contaminated": dict(sorted(contaminated.items())), "rejected": len(rejected),
                            "rejected_by_reason": dict(sorted(reasons.items()))}}
        manifest = writer.commit(stats=stats)
    except BaseException:
        writer.abort()
        raise
    return ChatImportResult(manifest, n_in, n_ok, n_dup, sum(contaminated.values()), len(rejected), reasons)


__all__ = [
    "CHAT_TASK",
    "TASKS",
    "ChatError",
    "ChatImportResult",
    "GeneralSourcesConfig",
    "Identity",
    "SelfCognitionSource",
    "TaskSource",
    "TaskSpec",
    "chat_to_record",
    "factual_qa_problems",
    "general_problems",
    "import_chat",
    "self_cognition_problems",
    "translation_problems",
    "writing_problems",
]
