"""Mix reasoning and non-reasoning samples into the SFT set, as chat messages.

DeepSeek-R1's second SFT round used ~600k reasoning samples (rejection-sampled,
verified, filtered) plus ~200k non-reasoning ones (writing, factual QA,
self-cognition, translation; chain of thought only where the task warranted
it): 800k, and the same 800k distilled the small dense models. This module
builds that mix from two row sets:

1. Each row becomes an assistant turn. A reasoning row needs its reasoning and
   its summary (from the ``reasoning``/``summary`` columns, else split from
   ``completion`` by ``records.split_completion``); a non-reasoning row needs a
   response (``summary``, else the split ``completion``, else the reference
   ``answer`` — a written reference answer is a response, as R1 reused
   DeepSeek-V3's SFT data) and shows its chain of thought only if it has one.
   Rows that lack what they need are skipped and counted by reason.
2. The assistant text is either R1's ``<think>\\n{reasoning}\\n</think>\\n\\n{summary}``
   or the cold-start readable format ``|special_token|{reasoning}|special_token|{summary}``.
3. Exact duplicates (same normalized prompt and same assistant text) are
   removed across both sets; the kept copy is the reasoning one, then the
   smallest ``sample_id``, so the result does not depend on input order.
4. Each part is cut to its target (counts, or a reasoning fraction of a total)
   by a seeded per-row hash; when fewer rows exist than the target, all are
   taken and the shortfall is recorded in the stats and logged — never silent.
5. The union is shuffled with the seed (again by per-row hash, so it is
   reproducible from the data alone).

Non-reasoning rows (``datagen.nonreasoning``): a generated sample (one with a
``completion`` that was verified) enters only when the verifiers accepted it
(else it is skipped as ``not_accepted``), while a written response (a reference
answer, an imported conversation) enters as it is; a row's ``cot`` says
whether its chain of thought is kept (``none``: dropped; ``short``: kept up to
``max_short_cot_chars``), and an imported multi-turn conversation keeps its
earlier turns (``messages``). The stats count the composition by kind, task
and language (``composition``), which the mix card shows.

Output rows: ``problem_id``, ``sample_id``, ``source``, ``domain``,
``language``, ``prompt``, ``kind`` (``reasoning``/``non_reasoning``), ``task`` and ``messages``, a
``list<struct{role: str, content: str}>`` column (polars, pyarrow, Parquet and
``datasets`` read it natively).

Plain Python on polars, no Prefect. ``mix`` works on frames in memory;
``mix_streaming`` makes the same rows in bounded memory (decide on ids and
keys, then build the chosen rows batch by batch with an on-disk shuffle) and is
what ``flows/mix.py`` calls. Mix takes
the rows it is given: accepting and filtering happened upstream.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, model_validator

from datagen.records import Rows, as_frame, normalize_prompt, seeded_rank, split_completion

log = logging.getLogger(__name__)

#: The Arrow/polars type of the ``messages`` column.
MESSAGES_DTYPE = pl.List(pl.Struct({"role": pl.String, "content": pl.String}))
ROLES = ("system", "user", "assistant")
KINDS = ("reasoning", "non_reasoning")
# ``prompt`` stays so each output row is still a valid record (a required column).
OUTPUT_COLUMNS = ("problem_id", "sample_id", "source", "domain", "language", "prompt", "kind", "task", "messages")

DEFAULT_REASONING_COUNT = 600_000
DEFAULT_NON_REASONING_COUNT = 200_000


class MixConfig(BaseModel):
    """Mix settings (also the ``mix`` flow's parameters).

    Targets are either counts (``reasoning_count``, ``non_reasoning_count``;
    defaults 600k : 200k, R1's mix) or a ratio (``reasoning_fraction`` of
    ``total``), not both.
    """

    model_config = ConfigDict(extra="forbid")

    reasoning_count: int = Field(DEFAULT_REASONING_COUNT, ge=0, description="reasoning samples to take")
    non_reasoning_count: int = Field(DEFAULT_NON_REASONING_COUNT, ge=0, description="non-reasoning samples to take")
    reasoning_fraction: float | None = Field(None, ge=0.0, le=1.0, description="share of reasoning samples in total")
    total: int | None = Field(None, ge=0, description="total samples, with reasoning_fraction")
    format: Literal["think_tags", "cold_start"] = Field(
        "think_tags",
        description="'think_tags': <think>\\nR\\n</think>\\n\\nS; "
        "'cold_start': {special_token}R{special_token}S (R1's readable cold-start format)",
    )
    special_token: str = Field("|special_token|", min_length=1, description="delimiter of the cold_start format")
    system_prompt: str | None = Field(None, description="system message put first in every conversation; none if null")
    seed: int = Field(0, description="seed of the per-part sampling and the final shuffle")
    max_short_cot_chars: int = Field(
        2000, ge=0, description="a non-reasoning row whose task wants a short chain of thought (cot: short) keeps "
        "its reasoning up to this many characters; longer reasoning is dropped, the answer kept")
    require_reasoning: bool = Field(
        True,
        description="skip reasoning samples without a reasoning trace (counted as no_reasoning); false keeps them "
        "answer-only, for tasks whose verified answers need no chain of thought",
    )

    @model_validator(mode="after")
    def _counts_or_ratio(self) -> MixConfig:
        ratio_set = {"reasoning_fraction", "total"} & self.model_fields_set
        counts_set = {"reasoning_count", "non_reasoning_count"} & self.model_fields_set
        if ratio_set and counts_set:
            raise ValueError(
                f"set either counts ({', '.join(sorted(counts_set))}) or a ratio "
                f"({', '.join(sorted(ratio_set))}), not both; drop one of them"
            )
        if ratio_set and (self.reasoning_fraction is None or self.total is None):
            raise ValueError(
                "a ratio needs both reasoning_fraction and total (e.g. reasoning_fraction=0.75, total=800000)"
            )
        return self

    def targets(self) -> dict[str, int]:
        """Target rows per kind: ``{"reasoning": r, "non_reasoning": nr}``."""
        if self.reasoning_fraction is not None and self.total is not None:
            reasoning = round(self.total * self.reasoning_fraction)
            return {"reasoning": reasoning, "non_reasoning": self.total - reasoning}
        return {"reasoning": self.reasoning_count, "non_reasoning": self.non_reasoning_count}


@dataclasses.dataclass
class MixResult:
    """``rows``: the mixed, shuffled conversations (``OUTPUT_COLUMNS``). ``stats``: see ``mix``."""

    rows: pl.DataFrame
    stats: dict[str, Any]


def assistant_text(reasoning: str | None, summary: str, config: MixConfig) -> str:
    """The assistant turn: the summary, preceded by the reasoning in the configured format when there is one."""
    if not reasoning:
        return summary
    if config.format == "think_tags":
        return f"<think>\n{reasoning}\n</think>\n\n{summary}"
    return f"{config.special_token}{reasoning}{config.special_token}{summary}"


def mix(reasoning: Rows, non_reasoning: Rows, config: MixConfig | None = None) -> MixResult:
    """Mix the two row sets into chat conversations (see the module docstring).

    ``stats``: ``input`` (rows given per kind), ``skipped`` (kind -> reason ->
    rows: ``no_reasoning``, ``no_summary``, ``no_response``, ``not_accepted``; and ``cot_removed``,
    rows kept without their reasoning),
    ``duplicates_removed``, ``available`` (per kind, after skipping and
    dedup), ``target``, ``taken``, ``shortfall`` (per kind, target − taken
    when positive, else 0), ``rows``, ``by_kind``, ``by_source``,
    ``by_domain``, ``by_language``, ``composition`` (kind -> task -> language -> rows) and ``config``.
    """
    config = config or MixConfig()
    parts, skipped, given = [], {}, {}
    for kind, rows in (("reasoning", reasoning), ("non_reasoning", non_reasoning)):
        frame = as_frame(rows)
        given[kind] = frame.height
        part, skipped[kind] = _conversations(frame, kind, config)
        parts.append(part)
    mixed, stats = _choose(pl.concat(parts, how="vertical"), given, skipped, config)
    rows = mixed.with_columns(_messages_column(mixed, config)).select(OUTPUT_COLUMNS)
    return MixResult(rows=rows, stats=stats)


def _choose(candidates: pl.DataFrame, given: dict[str, int], skipped: dict[str, dict[str, int]],
            config: MixConfig) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Dedup, cut each kind to its target and shuffle: the chosen candidates in output order, and the stats.

    Reads only ids, kind, ``_key``/``_key64`` and the count columns, so the streaming
    mix calls it on candidates without their text."""
    # Dedup: reasoning copy first, then smallest sample_id, whatever the input order.
    before = candidates.height
    candidates = (
        candidates.with_columns(
            pl.col("kind")
            .replace_strict({"reasoning": 0, "non_reasoning": 1}, return_dtype=pl.Int8)
            .alias("_kind_order")
        )
        .sort(["_key", "_kind_order", "sample_id"])
        .unique(subset="_key", keep="first", maintain_order=True)
        .drop("_kind_order")
    )
    duplicates = before - candidates.height

    targets = config.targets()
    available, taken, shortfall, chosen = {}, {}, {}, []
    for kind in KINDS:
        part = candidates.filter(pl.col("kind") == kind)
        available[kind] = part.height
        if part.height > targets[kind]:
            part = (
                part.with_columns(seeded_rank(part["_key64"], config.seed, salt=1).alias("_rank"))
                .sort("_rank")
                .head(targets[kind])
                .drop("_rank")
            )
        taken[kind] = part.height
        shortfall[kind] = max(targets[kind] - part.height, 0)
        if shortfall[kind]:
            log.warning(
                "mix: only %d %s samples available for a target of %d (shortfall %d)",
                part.height,
                kind,
                targets[kind],
                shortfall[kind],
            )
        chosen.append(part)
    mixed = pl.concat(chosen, how="vertical")
    mixed = mixed.with_columns(seeded_rank(mixed["_key64"], config.seed, salt=2).alias("_order")).sort("_order")
    rows = mixed  # the stats below read only the metadata columns

    stats = {
        "input": given,
        "skipped": skipped,
        "duplicates_removed": duplicates,
        "available": available,
        "target": targets,
        "taken": taken,
        "shortfall": shortfall,
        "rows": rows.height,
        "by_kind": _counts(rows, "kind"),
        "by_source": _counts(rows, "source"),
        "by_domain": _counts(rows, "domain"),
        "by_language": _counts(rows, "language"),
        "composition": _composition(rows),
        "config": config.model_dump(),
    }
    log.info("mix: %d rows (%s), %d duplicates removed", rows.height, taken, duplicates)
    return mixed, stats


#: A source of rows for ``mix_streaming``: its kind, and a callable that yields its rows as frames, in the
#: same order each time it is called (a version's shards read batch by batch).
Source = tuple[str, Callable[[], Iterable[pl.DataFrame]]]

#: Text columns the candidates of ``mix_streaming``'s first pass drop (kept: ids, kind, key, position).
_TEXT = ("prompt", "_history", "_content")


def mix_streaming(sources: Sequence[Source], write: Callable[[pl.DataFrame], None],
                  config: MixConfig | None = None, *, spill_dir: str | os.PathLike,
                  bucket_rows: int = 20_000) -> dict[str, Any]:
    """``mix`` in bounded memory, for versions of any size; returns ``mix``'s stats.

    Pass 1 reads each source batch by batch and keeps, per usable row, only its
    ids, kind, dedup key and position — never its text — then dedups, cuts and
    shuffles those (``_choose``, the same decision as ``mix``). Pass 2 reads the
    sources again, builds the chosen rows' messages batch by batch and spills
    them to Parquet under ``spill_dir`` in buckets of ``bucket_rows`` consecutive
    output positions; each bucket is then sorted and handed to ``write`` in turn.
    Memory: one input batch or one bucket at a time. The rows written, in order,
    equal ``mix(...).rows`` over the same inputs (several sources of one kind are
    concatenated, as ``mix`` is given them)."""
    config = config or MixConfig()
    parts: list[pl.DataFrame] = []
    given = {kind: 0 for kind in KINDS}
    skipped: dict[str, dict[str, int]] = {kind: {} for kind in KINDS}
    for src, (kind, batches) in enumerate(sources):
        if kind not in KINDS:
            raise ValueError(f"mix source {src} has kind {kind!r}; use one of {KINDS}")
        offset = 0
        for batch in batches():
            part, skips = _conversations(batch, kind, config)
            parts.append(part.drop(_TEXT).with_columns(pl.lit(src, dtype=pl.Int32).alias("_src"),
                                                            (pl.col("_row") + offset).alias("_row")))
            given[kind] += batch.height
            offset += batch.height
            for reason, n in skips.items():
                skipped[kind][reason] = skipped[kind].get(reason, 0) + n
    skipped = {kind: dict(sorted(v.items())) for kind, v in skipped.items()}
    empty = _conversations(pl.DataFrame(schema={c: pl.String for c in ("problem_id", "sample_id", "prompt")}),
                           "reasoning", config)[0].drop(_TEXT).with_columns(
        pl.lit(0, dtype=pl.Int32).alias("_src"))
    candidates = pl.concat([empty, *parts], how="vertical_relaxed")
    chosen, stats = _choose(candidates, given, skipped, config)
    chosen = chosen.select("_src", "_row", pl.int_range(pl.len(), dtype=pl.Int64).alias("_pos"))
    del parts, candidates

    spill = Path(spill_dir)
    spill.mkdir(parents=True, exist_ok=True)
    buckets: set[int] = set()
    for src, (kind, batches) in enumerate(sources):
        wanted = chosen.filter(pl.col("_src") == src)
        offset, n = 0, 0
        for batch in batches():
            here = wanted.filter(pl.col("_row").is_between(offset, offset + batch.height - 1)).sort("_row")
            if here.height:
                rows = batch[(here["_row"] - offset).to_list()]
                part, _ = _conversations(rows, kind, config)
                part = part.with_columns(_messages_column(part, config)).select(
                    *OUTPUT_COLUMNS, here["_pos"].alias("_pos"))
                part = part.with_columns((pl.col("_pos") // bucket_rows).alias("_bucket"))
                for (bucket,), piece in part.partition_by("_bucket", as_dict=True, include_key=False).items():
                    piece.write_parquet(spill / f"b{bucket:06d}-s{src:03d}-{n:06d}.parquet")
                    buckets.add(bucket)
                    n += 1
            offset += batch.height
    if not buckets:  # nothing chosen: still one (empty) write, so the version has its columns
        write(pl.DataFrame(schema={c: MESSAGES_DTYPE if c == "messages" else pl.String for c in OUTPUT_COLUMNS}))
    for bucket in sorted(buckets):
        files = sorted(spill.glob(f"b{bucket:06d}-*.parquet"))
        write(pl.concat([pl.read_parquet(f) for f in files], how="vertical_relaxed").sort("_pos").drop("_pos"))
        for f in files:
            f.unlink()
    return stats


def _conversations(frame: pl.DataFrame, kind: str, config: MixConfig) -> tuple[pl.DataFrame, dict[str, int]]:
    """One candidate row per usable input row: ids, prompt, assistant text and dedup key."""
    n = frame.height
    for name in ("problem_id", "sample_id", "prompt"):
        if name not in frame.columns:
            raise ValueError(f"mix needs a {name!r} column in the {kind} rows; got columns {frame.columns}")

    def column(name: str) -> list[Any]:
        return frame[name].to_list() if name in frame.columns else [None] * n

    prompts = column("prompt")
    reasonings, summaries, completions, answers = (
        column("reasoning"),
        column("summary"),
        column("completion"),
        column("answer"),
    )
    accepted, cots, histories, verdicts = column("accepted"), column("cot"), column("messages"), column("verdicts")
    keep, contents, keys, history = [], [], [], []
    skipped: dict[str, int] = {}
    for i in range(n):
        reasoning, summary = reasonings[i], summaries[i]
        if reasoning is None and summary is None and completions[i] is not None:
            split = split_completion(completions[i])
            reasoning, summary = split.reasoning, split.summary
        if kind == "non_reasoning" and summary is None and completions[i] is None:
            summary = answers[i]
        reason = None
        if kind == "non_reasoning" and completions[i] is not None and (
                accepted[i] is False or (accepted[i] is None and verdicts[i] not in (None, "", "{}", {}))):
            reason = "not_accepted"  # a verified sample the verifiers rejected or could not decide
        elif kind == "reasoning" and not reasoning and config.require_reasoning:
            reason = "no_reasoning"
        elif not summary:
            reason = "no_summary" if kind == "reasoning" else "no_response"
        if reason:
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        if kind == "non_reasoning" and reasoning and (
                cots[i] == "none" or (cots[i] == "short" and len(reasoning) > config.max_short_cot_chars)):
            reasoning = None  # the task wants no (or only a short) chain of thought: keep the answer alone
            skipped["cot_removed"] = skipped.get("cot_removed", 0) + 1
        content = assistant_text(reasoning, summary, config)
        earlier = _earlier_turns(histories[i])
        keep.append(i)
        contents.append(content)
        history.append(earlier)
        context = "".join(f"{t['role']}\x00{normalize_prompt(t['content'])}\x00" for t in earlier)
        keys.append(hashlib.blake2b(f"{context}{normalize_prompt(prompts[i])}\x00{content}".encode(),
                                    digest_size=16).digest())
    if skipped:
        log.warning("mix: skipped %s %s rows", skipped, kind)

    base = frame.select(
        [
            pl.col(c) if c in frame.columns else pl.lit(None, dtype=pl.String).alias(c)
            for c in ("problem_id", "sample_id", "source", "domain", "language", "prompt", "task")
        ]
    ).with_columns(pl.all().cast(pl.String))
    part = base if len(keep) == n else (base[keep] if keep else base.head(0))
    part = part.with_columns(
        pl.lit(kind).alias("kind"),
        pl.Series("_history", history, dtype=MESSAGES_DTYPE),
        pl.Series("_content", contents, dtype=pl.String),
        pl.Series("_key", keys, dtype=pl.Binary),
        pl.Series("_row", keep, dtype=pl.Int64),
    ).with_columns(pl.col("_key").bin.slice(0, 8).bin.reinterpret(dtype=pl.UInt64, endianness="big").alias("_key64"))
    return part, dict(sorted(skipped.items()))


def _earlier_turns(messages: Any) -> list[dict[str, str]]:
    """The turns before the last user/assistant exchange of an imported conversation (system included)."""
    if not messages:
        return []
    turns = [{"role": str(t["role"]), "content": str(t["content"])} for t in messages]
    return turns[:-2] if len(turns) > 2 else []


def _messages_column(frame: pl.DataFrame, config: MixConfig) -> pl.Series:
    """The ``messages`` column, assembled in Arrow: the turns' texts interleaved
    row by row into one flat struct array, cut into lists by fixed offsets.
    (polars' ``concat_list`` of ``struct`` expressions does the same ~3x slower.)
    Rows with earlier turns (imported multi-turn chats) are assembled one by one."""
    n = frame.height
    if n and frame["_history"].list.len().sum() > 0:
        out = []
        for earlier, prompt, content in zip(frame["_history"].to_list(), frame["prompt"].to_list(),
                                            frame["_content"].to_list()):
            turns = list(earlier or [])
            if config.system_prompt is not None and not (turns and turns[0]["role"] == "system"):
                turns.insert(0, {"role": "system", "content": config.system_prompt})
            out.append([*turns, {"role": "user", "content": prompt}, {"role": "assistant", "content": content}])
        return pl.Series("messages", out, dtype=MESSAGES_DTYPE)
    texts = [frame["prompt"].to_arrow(), frame["_content"].to_arrow()]
    roles = ["user", "assistant"]
    if config.system_prompt is not None:
        texts.insert(0, pa.array([config.system_prompt] * n, type=pa.large_string()))
        roles.insert(0, "system")
    turns = len(texts)
    flat = pa.concat_arrays([_one_chunk(t).cast(pa.large_string()) for t in texts])
    # Row i's turn j sits at j * n + i in ``flat``; gather them row-major.
    order = (np.arange(n, dtype=np.int64)[:, None] + np.arange(turns, dtype=np.int64)[None, :] * n).ravel()
    content = flat.take(pa.array(order))
    role = pa.DictionaryArray.from_arrays(
        pa.array(np.tile(np.arange(turns, dtype=np.int8), n)), pa.array(roles, type=pa.large_string())
    ).cast(pa.large_string())
    structs = pa.StructArray.from_arrays([role, content], names=["role", "content"])
    offsets = pa.array(np.arange(0, n * turns + 1, turns, dtype=np.int64))
    return pl.Series("messages", pa.LargeListArray.from_arrays(offsets, structs)).cast(MESSAGES_DTYPE)


def _one_chunk(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array


def _composition(frame: pl.DataFrame) -> dict[str, dict[str, dict[str, int]]]:
    """kind -> task (``-`` when none) -> language -> rows: what the mix is made of."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    counts = frame.group_by("kind", "task", "language").len().iter_rows()
    for kind, task, language, n in sorted(counts, key=lambda r: (str(r[0]), str(r[1]), str(r[2]))):
        out.setdefault(str(kind), {}).setdefault(task or "-", {})[str(language)] = int(n)
    return out


def _counts(frame: pl.DataFrame, column: str) -> dict[str, int]:
    return {str(k): int(v) for k, v in sorted(frame.group_by(column).len().iter_rows(), key=lambda kv: str(kv[0]))}


__all__ = [
    "DEFAULT_NON_REASONING_COUNT",
    "DEFAULT_REASONING_COUNT",
    "KINDS",
    "MESSAGES_DTYPE",
    "OUTPUT_COLUMNS",
    "MixConfig",
    "MixResult",
    "assistant_text",
    "mix",
    "mix_streaming",
]
