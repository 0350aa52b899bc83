"""Rejection sampling: keep up to k accepted samples per problem, and pick
the GRPO prompt set by pass rate.

DeepSeek-R1 ("Rejection sampling and SFT") sampled several outputs per prompt
from the RL checkpoint and kept only the correct ones; this module is that
step, plus the pass-rate band that picks prompts for the next GRPO round
(prompts the policy always or never solves give every sample the same reward,
so GRPO's group-normalised advantage is zero for them and they teach nothing).
Whether a sample is accepted was decided by the verify stage
(``datagen.verify.stage.accept``); this module only reads ``accepted``.

Plain Python on polars, no Prefect (STYLE.md habit 12). Memory is bounded by
the decision, not the text: ``decide`` reads only the columns a decision needs
(ids, verdict, drop, lengths — ``completion`` only as its length, computed by
polars' streaming engine) and returns which rows to keep; ``stream_selected``
then copies the kept rows of a version shard by shard (``flows/select.py``),
so RSS stays flat however long the completions are. ``select`` is the same
decision applied to one in-memory frame.

Counting rules (the contract):

- ``select``: per problem, ``n_samples`` counts all its rows,
  ``n_judged`` the rows whose ``accepted`` is not null, ``n_accepted`` the
  rows with ``accepted`` True, and ``pass_rate = n_accepted / n_judged``
  (null when nothing was judged). Undecided rows are left out of the
  denominator — counting them as failures would be turning "could not judge"
  into a score. Rows dropped by a filter (``drop`` not null) *do* count in the
  pass rate: the pass rate measures whether the policy solves the problem
  (what GRPO's accuracy reward sees), while filters judge readability; a
  dropped sample is never *selected*, though.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from datagen.records import Rows, as_frame, key64, seeded_rank

log = logging.getLogger(__name__)

#: Columns describing a problem (not one generation of it): the GRPO prompt rows keep these.
PROBLEM_COLUMNS: tuple[str, ...] = ("problem_id", "source", "domain", "language", "prompt", "answer", "tests")


# --------------------------------------------------------------------------- select


class SelectConfig(BaseModel):
    """Rejection-sampling settings (also the ``select`` flow's parameters)."""

    model_config = ConfigDict(extra="forbid")

    k: int = Field(4, ge=1, description="keep at most k accepted, not-dropped samples per problem")
    tie_break: Literal["shortest", "random"] = Field(
        "shortest",
        description="which k when more are accepted: 'shortest' (completion_tokens, then "
        "characters, then sample_id) or 'random' (seeded, independent of row order)",
    )
    seed: int = Field(0, description="seed for tie_break='random'")
    band_low: float = Field(0.1, ge=0.0, le=1.0, description="GRPO prompts: lowest pass rate kept (inclusive)")
    band_high: float = Field(0.9, ge=0.0, le=1.0, description="GRPO prompts: highest pass rate kept (inclusive)")
    min_judged: int = Field(1, ge=1, description="GRPO prompts: a problem needs this many judged samples")
    histogram_bins: int = Field(10, ge=1, le=1000, description="bins of the pass-rate histogram in the stats")

    @model_validator(mode="after")
    def _band_is_ordered(self) -> SelectConfig:
        if self.band_low > self.band_high:
            raise ValueError(
                f"band_low ({self.band_low}) is above band_high ({self.band_high}); "
                "set band_low <= band_high, both within [0, 1]"
            )
        return self


@dataclasses.dataclass
class SelectResult:
    """``selected``: the kept sample rows (all input columns + ``pass_rate``).
    ``grpo_prompts``: one problem row per problem in the band, with
    ``pass_rate``, ``n_samples``, ``n_judged``, ``n_accepted``.
    ``stats``: see ``select``."""

    selected: pl.DataFrame
    grpo_prompts: pl.DataFrame
    stats: dict[str, Any]


#: Separates the tie-break's seeded hash from other seeded choices (records.seeded_rank).
_TIE_BREAK_SALT = 4
# Float pass rates such as 9/10 must land inside a band edge written as 0.9.
_BAND_EPS = 1e-9


def select(samples: Rows, config: SelectConfig | None = None) -> SelectResult:
    """Rejection sampling over generation rows (see the module docstring for counting).

    ``samples`` need ``problem_id``, ``sample_id`` and ``accepted`` (bool or
    null); ``drop``, ``completion_tokens``, ``completion`` and ``domain`` are
    used when present. ``selected`` is ordered by problem_id, then by the
    tie-break; ``grpo_prompts`` by problem_id.

    ``stats``: ``problems``, ``samples``, ``judged``, ``undecided``,
    ``dropped``, ``selected``, ``problems_zero_accepted`` (judged, none
    accepted), ``problems_unjudged``, ``problems_with_selection``,
    ``grpo_prompts``, ``pass_rate_histogram`` (``"lo-hi"`` -> problems; the
    last bin includes 1.0), ``by_domain`` (samples, judged, accepted,
    undecided, dropped, selected, acceptance_rate per domain) and ``config``.
    """
    config = config or SelectConfig()
    lazy = samples.lazy() if isinstance(samples, (pl.DataFrame, pl.LazyFrame)) else as_frame(samples).lazy()
    decision = decide(lazy, config)
    frame = lazy.collect()
    selected = (
        frame.with_row_index("_row")
        .join(decision.keep, on="_row", how="inner")
        .sort("_order")
        .drop("_row", "_order")
    )
    return SelectResult(selected=selected, grpo_prompts=decision.grpo_prompts, stats=decision.stats)


@dataclasses.dataclass
class Decision:
    """What ``decide`` chose. ``keep``: ``_row`` (position in the input), ``pass_rate``
    and ``_order`` (problem_id, then tie-break rank) of each selected row;
    ``grpo_prompts`` and ``stats`` as in ``SelectResult``."""

    keep: pl.DataFrame
    grpo_prompts: pl.DataFrame
    stats: dict[str, Any]

    def rows_of_shard(self, offset: int, rows: int) -> tuple[pl.Series, pl.Series]:
        """(row indices within a shard that starts at input row ``offset``, their pass rates), in input order."""
        part = self.keep.filter(pl.col("_row").is_between(offset, offset + rows - 1)).sort("_row")
        return (part["_row"] - offset).cast(pl.Int64), part["pass_rate"]


#: Columns ``decide`` reads per row (``completion`` only as its length).
DECISION_COLUMNS: tuple[str, ...] = ("problem_id", "sample_id", "accepted", "drop", "completion_tokens", "domain")


def decide(samples: pl.LazyFrame, config: SelectConfig | None = None) -> Decision:
    """Rejection sampling from the decision columns only (see the module docstring).

    ``samples`` is a lazy frame over the version (``Store.scan``); its text is
    never collected: per row only ``DECISION_COLUMNS`` and the completion's
    length, then the problem columns of the GRPO band's problems (one row each).
    Rows are identified by their position in ``samples`` (``Decision.keep._row``)."""
    config = config or SelectConfig()
    schema = samples.collect_schema()
    for name in ("problem_id", "sample_id", "accepted"):
        if name not in schema:
            raise ValueError(f"select needs a {name!r} column; got columns {list(schema.names())}")
    chars = (pl.col("completion").str.len_chars() if "completion" in schema and schema["completion"] != pl.Null
             else pl.lit(None, dtype=pl.UInt32))
    light = samples.select([c for c in DECISION_COLUMNS if c in schema]
                           + [chars.cast(pl.Int64).alias("_chars")]).with_row_index("_row")
    frame = _with_defaults(light.collect(engine="streaming"))

    judged = pl.col("accepted").is_not_null()
    is_accepted = pl.col("accepted").fill_null(False)
    per_problem = (
        frame.group_by("problem_id")
        .agg(
            [
                pl.len().alias("n_samples"),
                judged.sum().alias("n_judged"),
                is_accepted.sum().alias("n_accepted"),
            ]
        )
        .with_columns(
            pl.col("n_samples").cast(pl.Int64),
            pl.col("n_judged").cast(pl.Int64),
            pl.col("n_accepted").cast(pl.Int64),
        )
        .with_columns(
            pl.when(pl.col("n_judged") > 0)
            .then(pl.col("n_accepted") / pl.col("n_judged"))
            .otherwise(None)
            .alias("pass_rate")
        )
        .sort("problem_id")
    )

    selected = _pick(frame.filter(is_accepted & pl.col("drop").is_null()), config)
    selected = selected.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias("_order")).join(
        per_problem.select("problem_id", "pass_rate"), on="problem_id", how="left").sort("_order")

    in_band = (
        (pl.col("n_judged") >= config.min_judged)
        & (pl.col("pass_rate") >= config.band_low - _BAND_EPS)
        & (pl.col("pass_rate") <= config.band_high + _BAND_EPS)
    )
    band = per_problem.filter(in_band).select("problem_id", "pass_rate", "n_samples", "n_judged", "n_accepted")
    # The problem columns (prompt, answer, tests) of the band's problems only: one row per problem.
    problem_cols = [c for c in PROBLEM_COLUMNS if c in schema]
    problems = (
        samples.select(problem_cols)
        .join(band.lazy().select("problem_id"), on="problem_id", how="semi")
        .unique(subset="problem_id", keep="first", maintain_order=True)
        .collect(engine="streaming")
    )
    grpo_prompts = (
        band.join(problems, on="problem_id", how="left")
        .select(problem_cols + ["pass_rate", "n_samples", "n_judged", "n_accepted"])
        # A problem row's sample_id is its problem_id (the record contract).
        .with_columns(pl.col("problem_id").alias("sample_id"))
    )
    grpo_prompts = grpo_prompts.select(
        ["problem_id", "sample_id"] + [c for c in grpo_prompts.columns if c not in ("problem_id", "sample_id")]
    )

    stats = _select_stats(frame, per_problem, selected, grpo_prompts, config)
    keep = selected.select("_row", "pass_rate", "_order")
    log.info(
        "select: %d problems, %d samples -> %d selected, %d GRPO prompts",
        stats["problems"],
        stats["samples"],
        stats["selected"],
        stats["grpo_prompts"],
    )
    return Decision(keep=keep, grpo_prompts=grpo_prompts, stats=stats)


def _with_defaults(frame: pl.DataFrame) -> pl.DataFrame:
    """Give the columns select reads one shape: add missing optional ones as
    nulls, and type all-null columns (polars infers ``Null`` for a column of
    Nones, which string and boolean expressions refuse)."""
    for name in ("problem_id", "sample_id", "accepted"):
        if name not in frame.columns:
            raise ValueError(f"select needs a {name!r} column; got columns {frame.columns}")
    fixes = []
    for name, dtype in (
        ("accepted", pl.Boolean),
        ("drop", pl.String),
        ("completion_tokens", pl.Int64),
        ("_chars", pl.Int64),
        ("domain", pl.String),
    ):
        if name not in frame.columns:
            fixes.append(pl.lit(None, dtype=dtype).alias(name))
        elif frame.schema[name] == pl.Null:
            fixes.append(pl.col(name).cast(dtype))
    return frame.with_columns(fixes) if fixes else frame


def _pick(candidates: pl.DataFrame, config: SelectConfig) -> pl.DataFrame:
    """Up to k rows per problem from the accepted, not-dropped candidates."""
    if config.tie_break == "shortest":
        # Missing lengths sort last: an unknown length is never "shortest".
        keys = [
            pl.col("problem_id"),
            pl.col("completion_tokens"),
            pl.col("_chars"),
            pl.col("sample_id"),
        ]
        ordered = candidates.sort(keys, nulls_last=True)
    else:
        # A per-sample seeded hash, not a shuffle: the choice depends only on
        # (seed, sample_id), never on the input's row order or sharding.
        ranks = seeded_rank(key64(candidates["sample_id"].to_list()), config.seed, salt=_TIE_BREAK_SALT)
        ordered = (
            candidates.with_columns(ranks.alias("_rank"))
            .sort(["problem_id", "_rank", "sample_id"])
            .drop("_rank")
        )
    return ordered.filter(pl.int_range(pl.len()).over("problem_id") < config.k)


def _select_stats(
    frame: pl.DataFrame,
    per_problem: pl.DataFrame,
    selected: pl.DataFrame,
    grpo_prompts: pl.DataFrame,
    config: SelectConfig,
) -> dict[str, Any]:
    bins = config.histogram_bins
    labels = [f"{i / bins:.{_decimals(bins)}f}-{(i + 1) / bins:.{_decimals(bins)}f}" for i in range(bins)]
    histogram = dict.fromkeys(labels, 0)
    for rate in per_problem["pass_rate"].drop_nulls().to_list():
        histogram[labels[min(int(rate * bins + _BAND_EPS), bins - 1)]] += 1

    by_domain_samples = (
        frame.group_by("domain")
        .agg(
            pl.len().alias("samples"),
            pl.col("accepted").is_not_null().sum().alias("judged"),
            pl.col("accepted").fill_null(False).sum().alias("accepted"),
            pl.col("accepted").is_null().sum().alias("undecided"),
            pl.col("drop").is_not_null().sum().alias("dropped"),
        )
        .to_dicts()
    )
    selected_by_domain = dict(selected.group_by("domain").len().iter_rows())
    by_domain: dict[str, dict[str, Any]] = {}
    for row in by_domain_samples:
        domain = str(row.pop("domain"))
        row = {k: int(v) for k, v in row.items()}
        row["selected"] = int(selected_by_domain.get(None if domain == "None" else domain, 0))
        row["acceptance_rate"] = row["accepted"] / row["judged"] if row["judged"] else None
        by_domain[domain] = row

    return {
        "problems": per_problem.height,
        "samples": frame.height,
        "judged": int(frame["accepted"].is_not_null().sum()),
        "undecided": int(frame["accepted"].is_null().sum()),
        "dropped": int(frame["drop"].is_not_null().sum()),
        "selected": selected.height,
        "problems_zero_accepted": int(
            per_problem.filter((pl.col("n_judged") > 0) & (pl.col("n_accepted") == 0)).height
        ),
        "problems_unjudged": int(per_problem.filter(pl.col("n_judged") == 0).height),
        "problems_with_selection": int(selected["problem_id"].n_unique()) if selected.height else 0,
        "grpo_prompts": grpo_prompts.height,
        "pass_rate_histogram": histogram,
        "by_domain": dict(sorted(by_domain.items())),
        "config": config.model_dump(),
    }


def _decimals(bins: int) -> int:
    """Enough decimals for bin edges to read exactly (10 bins -> 1, 20 -> 2)."""
    return 1 if 10 % bins == 0 else (2 if 100 % bins == 0 else 3)


__all__ = ["DECISION_COLUMNS", "PROBLEM_COLUMNS", "Decision", "SelectConfig", "SelectResult", "decide", "select"]
