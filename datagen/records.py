"""The one record that flows through every stage (shared/DESIGN.md, "The record").

A stage adds columns; it never invents a new structure. This module holds:

- ``SCHEMA``: the Arrow schema of the core columns (Parquet on disk). Extra
  columns a stage adds (``sampling``, ``prompt_template``, ``pass_rate``,
  ``messages`` …) are allowed and kept as they are.
- ``as_frame``: rows of any shape a stage takes (dicts, polars frames) as
  one polars frame with the record's types.
- ``seeded_rank`` / ``seeded_hash``: the one seeded hash every seeded choice
  uses (selection tie-breaks, mixing, held-out splits), stable across
  machines and library versions.
- ``validate_row`` / ``normalize_row``: checks that name the bad field and
  the row, so a malformed input row can be quarantined with its reason.
- ``split_completion``: the single place that splits a completion into
  ``reasoning`` and ``summary`` at the think tags; generation, filters and
  verifiers all call it, so they can never disagree on where an answer is.
- ``problem_id_for``: the stable id of a problem (a hash of source + prompt).

``verdicts`` is a map ``verifier -> {outcome, score, detail}``; in Parquet it
is stored as a JSON string (portable across polars, pyarrow and ``datasets``),
in JSONL and in Python as an object.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import numpy as np
import polars as pl
import pyarrow as pa

#: Typed verifier outcomes. "Could not judge" (error, timeout of the verifier)
#: is never turned into a score.
Outcome = Literal[
    "correct", "incorrect", "unparseable", "timeout", "memory", "runtime_error", "error"
]
OUTCOMES: tuple[str, ...] = (
    "correct",
    "incorrect",
    "unparseable",
    "timeout",
    "memory",
    "runtime_error",
    "error",
)

#: Core columns, in order, with their Arrow types.
SCHEMA = pa.schema(
    [
        pa.field("problem_id", pa.string(), nullable=False),
        pa.field("sample_id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("domain", pa.string(), nullable=False),
        pa.field("language", pa.string(), nullable=False),
        pa.field("prompt", pa.string(), nullable=False),
        pa.field("answer", pa.string()),
        pa.field("tests", pa.string()),
        pa.field("completion", pa.string()),
        pa.field("reasoning", pa.string()),
        pa.field("summary", pa.string()),
        pa.field("model", pa.string()),
        pa.field("finish_reason", pa.string()),
        pa.field("completion_tokens", pa.int64()),
        pa.field("verdicts", pa.string()),  # JSON object, see module docstring
        pa.field("accepted", pa.bool_()),
        pa.field("drop", pa.string()),
    ]
)
CORE_COLUMNS: tuple[str, ...] = tuple(SCHEMA.names)
REQUIRED_COLUMNS: tuple[str, ...] = ("problem_id", "sample_id", "source", "domain", "language", "prompt")
_STR_COLUMNS = {f.name for f in SCHEMA if pa.types.is_string(f.type)} - {"verdicts"}

DOMAINS = ("math", "code", "general")


class RecordError(ValueError):
    """A row that does not fit the record. The message names the field (and row)."""

    def __init__(self, message: str, *, field: str | None = None, row: int | None = None):
        self.field = field
        self.row = row
        where = f"row {row}: " if row is not None else ""
        super().__init__(f"{where}{message}")


def encode_verdicts(verdicts: Any) -> str | None:
    """Verdicts map -> JSON string for Parquet (None/empty stays None)."""
    if verdicts is None or verdicts == {}:
        return None
    if isinstance(verdicts, str):
        return verdicts
    return json.dumps(verdicts, sort_keys=True, ensure_ascii=False)


def decode_verdicts(value: Any) -> dict[str, dict[str, Any]]:
    """JSON string, dict or None -> verdicts dict."""
    if value is None or value == "":
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    parsed = json.loads(value)
    if not isinstance(parsed, dict):
        raise RecordError(f"verdicts must be a JSON object, got {type(parsed).__name__}", field="verdicts")
    return parsed


def verdict(outcome: str, score: float | None = None, detail: str = "") -> dict[str, Any]:
    """Build one verdict; checks the outcome is one of ``OUTCOMES``.

    ``score`` defaults to 1.0 for ``correct``, 0.0 for a judged failure, and
    None where the verifier could not judge (``error``, ``unparseable`` is a
    judgement on the candidate and scores 0.0).
    """
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}; expected one of {', '.join(OUTCOMES)}")
    if score is None and outcome != "error":
        score = 1.0 if outcome == "correct" else 0.0
    return {"outcome": outcome, "score": score, "detail": detail}


# --------------------------------------------------------------------------- ids


def normalize_prompt(prompt: str) -> str:
    """Normalization used for exact-duplicate detection and ids: NFKC, case-folded,
    whitespace collapsed."""
    text = unicodedata.normalize("NFKC", prompt).casefold()
    return " ".join(text.split())


def problem_id_for(source: str, prompt: str) -> str:
    """Stable id of a problem: a hash of its source and normalized prompt."""
    digest = hashlib.sha256(f"{source}\x00{normalize_prompt(prompt)}".encode()).hexdigest()
    return digest[:16]


def sample_id_for(problem_id: str, k: int) -> str:
    """Id of the k-th generation of a problem."""
    return f"{problem_id}:{k}"


# --------------------------------------------------------------------------- validation


def validate_row(row: Mapping[str, Any], index: int | None = None) -> None:
    """Raise ``RecordError`` naming the field and row when ``row`` breaks the record."""
    if not isinstance(row, Mapping):
        raise RecordError(f"expected an object, got {type(row).__name__}", row=index)
    for name in REQUIRED_COLUMNS:
        value = row.get(name)
        if value is None:
            raise RecordError(f"missing required field {name!r}", field=name, row=index)
        if not isinstance(value, str):
            raise RecordError(f"field {name!r} must be a string, got {type(value).__name__}", field=name, row=index)
        if name == "prompt" and not value.strip():
            raise RecordError("field 'prompt' is empty", field=name, row=index)
    for name in _STR_COLUMNS:
        value = row.get(name)
        if value is not None and not isinstance(value, str):
            raise RecordError(f"field {name!r} must be a string or null, got {type(value).__name__}", field=name, row=index)
    tokens = row.get("completion_tokens")
    if tokens is not None and (isinstance(tokens, bool) or not isinstance(tokens, int)):
        raise RecordError(f"field 'completion_tokens' must be an integer, got {type(tokens).__name__}", field="completion_tokens", row=index)
    accepted = row.get("accepted")
    if accepted is not None and not isinstance(accepted, bool):
        raise RecordError(f"field 'accepted' must be a boolean, got {type(accepted).__name__}", field="accepted", row=index)
    try:
        decode_verdicts(row.get("verdicts"))
    except (ValueError, TypeError) as exc:
        raise RecordError(f"field 'verdicts' is not a JSON object: {exc}", field="verdicts", row=index) from None
    tests = row.get("tests")
    if tests is not None:
        try:
            spec = json.loads(tests)
        except ValueError as exc:
            raise RecordError(f"field 'tests' is not valid JSON: {exc}", field="tests", row=index) from None
        if not isinstance(spec, dict):
            raise RecordError("field 'tests' must be a JSON object", field="tests", row=index)


def normalize_row(raw: Mapping[str, Any], *, default_source: str = "unknown", index: int | None = None) -> dict[str, Any]:
    """Turn a loosely-shaped input row (a problem file line) into a valid record row.

    Fills ``source`` (default), ``domain`` (``math`` when an answer is given,
    ``code`` when tests are, else ``general``), ``language`` (``en``),
    ``problem_id`` (hash of source + prompt) and ``sample_id``; encodes a
    ``tests`` object and ``verdicts`` as JSON. Raises ``RecordError`` for a
    row that cannot be made valid (no prompt, wrong types).
    """
    if not isinstance(raw, Mapping):
        raise RecordError(f"expected an object, got {type(raw).__name__}", row=index)
    row = dict(raw)
    prompt = row.get("prompt")
    if prompt is None:
        # Common aliases in public problem sets.
        for alias in ("problem", "question", "instruction"):
            if isinstance(row.get(alias), str):
                prompt = row.pop(alias)
                break
    if prompt is None:
        raise RecordError("missing required field 'prompt' (also looked for 'problem', 'question')", field="prompt", row=index)
    if not isinstance(prompt, str):
        raise RecordError(f"field 'prompt' must be a string, got {type(prompt).__name__}", field="prompt", row=index)
    row["prompt"] = prompt
    if row.get("answer") is None and isinstance(row.get("solution"), str) and "answer" not in raw:
        pass  # a worked solution is not a gold answer; keep it as an extra column
    answer = row.get("answer")
    if isinstance(answer, (int, float)) and not isinstance(answer, bool):
        row["answer"] = str(answer)
    tests = row.get("tests")
    if isinstance(tests, (dict, list)):
        row["tests"] = json.dumps(tests)
    if isinstance(row.get("verdicts"), Mapping):
        row["verdicts"] = encode_verdicts(row["verdicts"])
    row.setdefault("source", default_source)
    if row.get("source") is None:
        row["source"] = default_source
    if row.get("domain") is None:
        row["domain"] = "code" if row.get("tests") is not None else ("math" if row.get("answer") is not None else "general")
    if row.get("language") is None:
        row["language"] = "en"
    if row.get("problem_id") is None and isinstance(row.get("source"), str):
        row["problem_id"] = problem_id_for(row["source"], prompt)
    if row.get("sample_id") is None:
        row["sample_id"] = row.get("problem_id")
    validate_row(row, index)
    return row


def to_arrow(rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Rows -> Arrow table: core columns with ``SCHEMA`` types first, extras inferred.

    Column-wise, and a core column no row has is a null array of its type without
    a pass over the rows: a stage's rows carry ~half the core columns."""
    rows = rows if isinstance(rows, list) else list(rows)
    n = len(rows)
    present = dict.fromkeys(itertools.chain.from_iterable(rows))  # every key, first-seen order
    arrays, fields = [], []
    for f in SCHEMA:
        if f.name not in present:
            arrays.append(pa.nulls(n, type=f.type))
        else:
            values = [row.get(f.name) for row in rows]
            if f.name == "verdicts":
                values = [encode_verdicts(v) for v in values]
            arrays.append(pa.array(values, type=f.type))
        fields.append(f)
    for name in present:
        if name in CORE_COLUMNS:
            continue
        arr = pa.array([row.get(name) for row in rows])
        arrays.append(arr)
        fields.append(pa.field(name, arr.type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


# --------------------------------------------------------------------------- completion parsing

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
_ANSWER_TAG = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.DOTALL)


@dataclasses.dataclass(frozen=True)
class Split:
    """A completion split at the think tags.

    ``closed`` is False when a think block was opened (or pre-filled) and
    never closed: the generation was cut inside its reasoning, so there is
    no final answer (``summary`` is None).
    """

    reasoning: str | None
    summary: str | None
    closed: bool


def split_completion(completion: str | None, *, think_prefilled: bool = False) -> Split:
    """Split a completion into ``reasoning`` and ``summary``.

    - ``<think>R</think>S`` -> (R, S).
    - ``R</think>S`` (the chat template pre-filled ``<think>``, so the
      completion lacks the opening tag) -> (R, S). Treating this as "no
      think block" is the trap that zeroes format rewards in other tools.
    - ``<think>R`` with no closing tag -> (R, None, closed=False).
    - no tags at all -> (None, text) — a non-reasoning answer — unless
      ``think_prefilled``: then the whole text is unfinished reasoning.
    - an R1-Zero ``<answer>…</answer>`` in the summary is unwrapped.
    """
    if completion is None:
        return Split(None, None, False)
    text = completion
    close = text.find(THINK_CLOSE)
    open_ = text.find(THINK_OPEN)
    if close >= 0 and (open_ < 0 or open_ > close):
        # Pre-filled <think>: everything before the first </think> is reasoning.
        reasoning, rest = text[:close], text[close + len(THINK_CLOSE):]
    elif open_ >= 0:
        after = text[open_ + len(THINK_OPEN):]
        inner_close = after.find(THINK_CLOSE)
        if inner_close < 0:
            return Split(after.strip(), None, False)
        reasoning, rest = after[:inner_close], after[inner_close + len(THINK_CLOSE):]
    elif think_prefilled:
        return Split(text.strip(), None, False)
    else:
        return Split(None, _unwrap_answer(text).strip(), True)
    return Split(reasoning.strip(), _unwrap_answer(rest).strip(), True)


def response_of(row: Mapping[str, Any], *, think_prefilled: bool = False) -> str | None:
    """The final-answer part of a row: its ``summary`` column, else split from its ``completion``."""
    summary = row.get("summary")
    if isinstance(summary, str):
        return summary
    return split_completion(row.get("completion"), think_prefilled=think_prefilled).summary


def _unwrap_answer(text: str) -> str:
    match = _ANSWER_TAG.search(text)
    return match.group(1) if match else text


# --------------------------------------------------------------------------- frames and seeded hashing

#: Rows as polars frames, lazy frames, or plain dicts (e.g. ``files.read_records``).
Rows = pl.DataFrame | pl.LazyFrame | Iterable[Mapping[str, Any]]


def as_frame(rows: Rows) -> pl.DataFrame:
    """Rows -> a polars DataFrame. Dicts go through ``to_arrow`` so core columns
    get their record types and a ``verdicts`` object becomes its JSON string."""
    if isinstance(rows, pl.LazyFrame):
        return rows.collect()
    if isinstance(rows, pl.DataFrame):
        return rows
    frame = pl.from_arrow(to_arrow(list(rows)))
    assert isinstance(frame, pl.DataFrame)
    return frame


def key64(texts: Iterable[str]) -> pl.Series:
    """A 64-bit content key per string (the first 8 bytes of its blake2b digest), as UInt64."""
    keys = [int.from_bytes(hashlib.blake2b(t.encode(), digest_size=8).digest(), "big") for t in texts]
    return pl.Series("key64", keys, dtype=pl.UInt64)


def seeded_rank(keys: pl.Series, seed: int, *, salt: int = 0) -> pl.Series:
    """A seeded pseudo-random UInt64 per 64-bit key: splitmix64's finalizer (Steele et al.,
    "Fast splittable pseudorandom number generators", 2014) over ``key ^ mix(seed, salt)``.

    Vectorised (numpy), the same on every machine and polars version (``Expr.hash`` promises
    stability only within one version), and a function of the key only, so a seeded choice
    never depends on row order or sharding. ``salt`` separates independent uses of one seed."""
    with np.errstate(over="ignore"):
        offset = _splitmix64(np.array([(seed * 0x9E3779B97F4A7C15 + salt) % 2**64], dtype=np.uint64))[0]
        return pl.Series(keys.name, _splitmix64(keys.to_numpy() ^ offset), dtype=pl.UInt64)


def seeded_hash(seed: int, key: str, *, salt: int = 0) -> int:
    """``seeded_rank`` of one string key (a Python int < 2**64)."""
    return int(seeded_rank(key64([key]), seed, salt=salt)[0])


def _splitmix64(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.uint64, copy=True)
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x
