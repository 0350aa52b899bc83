"""Plots of a dataset version, made when it is committed and kept beside its card.

Each plot is a PNG at ``<root>/<dataset>/<version>/plots/<name>.png``; the card
(``README.md``) and the viewer (``datagen datasets serve``) show them. Which
plots a version gets depends on what it holds, never on a stage name list:

- ``lengths``: completion-length histogram per domain, accepted vs rejected
  (columns ``completion_tokens``, ``domain``, ``accepted``);
- ``drops``: rows dropped by filter and reason (column ``drop``);
- ``outcomes``: verifier outcomes per verifier (stats ``outcomes``);
- ``pass_rate``: problems per pass-rate bin (select's ``pass_rate_histogram``
  stat, else a ``pass_rate`` column);
- ``composition``: the mix by kind, domain and source (mix's ``by_*`` stats);
- ``training``: loss / reward / KL / length curves of an SFT or GRPO run
  (numeric columns of a run version against ``step``).

The data is aggregated lazily with polars (only the needed columns are read,
in streaming), so a plot of a million-row version costs one column scan.
Matplotlib is used through ``Figure`` directly (the Agg canvas, no pyplot
global state), so plotting is safe from any thread and needs no display.
"""

from __future__ import annotations

import io
import itertools
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl

    from datagen.store import Manifest, Store

log = logging.getLogger(__name__)

#: Training metrics plotted against ``step`` when a run version has them.
TRAINING_METRICS = ("loss", "eval_loss", "reward/mean", "reward", "kl", "completion_length/mean",
                    "completion_length", "grad_norm", "lr")
_COLORS = {"accepted": "#2a9d8f", "rejected": "#e76f51", "undecided": "#8d99ae"}


@dataclass(frozen=True)
class Plot:
    """One rendered plot: ``name`` is its file stem, ``png`` its bytes."""

    name: str
    title: str
    png: bytes


def version_plots(store: Store, manifest: Manifest) -> list[Plot]:
    """Every plot that fits what ``manifest``'s version holds (possibly none)."""
    lf = store.scan(manifest)
    columns = set(lf.collect_schema().names())
    makers = [
        ("lengths", lambda: _lengths(lf, columns)),
        ("drops", lambda: _drops(lf, columns)),
        ("outcomes", lambda: _outcomes(manifest.stats)),
        ("pass_rate", lambda: _pass_rate(manifest.stats, lf, columns)),
        ("composition", lambda: _composition(manifest.stats)),
        ("training", lambda: _training(lf, columns)),
    ]
    plots = []
    for name, make in makers:
        try:
            made = make()
        except Exception as exc:  # noqa: BLE001 - one bad plot must not cost the others (or the commit)
            log.warning("plot %s of %s failed: %s", name, manifest.ref, exc)
            continue
        if made is not None:
            title, fig = made
            plots.append(Plot(name, title, _png(fig)))
    return plots


# ----------------------------------------------------------------------------- one function per plot


def _lengths(lf: pl.LazyFrame, columns: set[str]):
    import numpy as np
    import polars as pl

    if "completion_tokens" not in columns:
        return None
    status = pl.lit("all")
    if "accepted" in columns:
        status = (
            pl.when(pl.col("accepted")).then(pl.lit("accepted"))
            .when(pl.col("accepted").not_()).then(pl.lit("rejected"))
            .otherwise(pl.lit("undecided"))
        )
    domain = pl.col("domain") if "domain" in columns else pl.lit("all")
    df = (
        lf.select(domain.alias("domain"), status.alias("status"), pl.col("completion_tokens"))
        .filter(pl.col("completion_tokens").is_not_null())
        .collect()
    )
    if df.height == 0:
        return None
    top = int(df["completion_tokens"].max()) or 1
    edges = np.linspace(0, top, min(40, top) + 1)
    domains = sorted(df["domain"].unique().to_list())
    fig = _figure(width=6.4, height=2.4 * len(domains))
    for i, dom in enumerate(domains, 1):
        ax = fig.add_subplot(len(domains), 1, i)
        part = df.filter(pl.col("domain") == dom)
        for status_name in ("accepted", "rejected", "undecided", "all"):
            values = part.filter(pl.col("status") == status_name)["completion_tokens"].to_numpy()
            if values.size:
                ax.hist(values, bins=edges, alpha=0.6, label=f"{status_name} ({values.size:,})",
                        color=_COLORS.get(status_name, "#264653"))
        ax.set_title(f"domain: {dom}", fontsize=9)
        ax.set_ylabel("samples")
        ax.legend(fontsize=8)
    ax.set_xlabel("completion tokens")
    return "Completion length by domain, accepted vs rejected", fig


def _drops(lf: pl.LazyFrame, columns: set[str]):
    import polars as pl

    if "drop" not in columns:
        return None
    counts = (
        lf.select(pl.col("drop")).filter(pl.col("drop").is_not_null())
        .group_by("drop").len().sort("len", descending=True).collect()
    )
    kept = lf.select(pl.col("drop").is_null().sum()).collect().item()
    if counts.height == 0:
        return None
    labels = counts["drop"].to_list()[:30]
    values = counts["len"].to_list()[:30]
    fig = _figure(width=6.4, height=1.2 + 0.32 * len(labels))
    ax = fig.add_subplot(1, 1, 1)
    ax.barh(labels[::-1], values[::-1], color=_COLORS["rejected"])
    for y, v in enumerate(values[::-1]):
        ax.text(v, y, f" {v:,}", va="center", fontsize=8)
    ax.set_xlabel(f"rows dropped (kept: {kept:,})")
    return "Drops by filter and reason", fig


def _outcomes(stats: Mapping[str, Any]):
    outcomes = find_stat(stats, "outcomes")
    if not outcomes or not all(isinstance(v, Mapping) for v in outcomes.values()):
        return None
    from datagen.records import OUTCOMES

    verifiers = sorted(outcomes)
    fig = _figure(width=6.4, height=1.4 + 0.5 * len(verifiers))
    ax = fig.add_subplot(1, 1, 1)
    left = [0] * len(verifiers)
    palette = ["#2a9d8f", "#e76f51", "#f4a261", "#e9c46a", "#9d4edd", "#6d597a", "#264653"]
    names = list(OUTCOMES) + sorted({o for v in outcomes.values() for o in v} - set(OUTCOMES))
    for color, outcome in zip(palette * 3, names):
        vals = [int(outcomes[v].get(outcome, 0) or 0) for v in verifiers]
        if any(vals):
            ax.barh(verifiers, vals, left=left, label=outcome, color=color)
            left = [a + b for a, b in zip(left, vals)]
    ax.set_xlabel("samples")
    fig.legend(loc="outside lower center", ncols=4, fontsize=8)
    return "Verifier outcomes", fig


def _pass_rate(stats: Mapping[str, Any], lf: pl.LazyFrame, columns: set[str]):
    hist = find_stat(stats, "pass_rate_histogram")
    if hist:
        labels, values = list(hist), [int(v or 0) for v in hist.values()]
    elif "pass_rate" in columns:
        import numpy as np
        import polars as pl

        rates = lf.select(pl.col("pass_rate")).drop_nulls().collect()["pass_rate"].to_numpy()
        if rates.size == 0:
            return None
        values, edges = np.histogram(rates, bins=10, range=(0, 1))
        labels = [f"{a:.1f}-{b:.1f}" for a, b in itertools.pairwise(edges)]
        values = values.tolist()
    else:
        return None
    fig = _figure(width=6.4, height=3)
    ax = fig.add_subplot(1, 1, 1)
    ax.bar(labels, values, color="#264653")
    ax.set_xlabel("pass rate")
    ax.set_ylabel("problems")
    ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    return "Pass rate per problem", fig


def _composition(stats: Mapping[str, Any]):
    parts = {k: find_stat(stats, k) for k in ("by_kind", "by_domain", "by_source")}
    parts = {k: v for k, v in parts.items() if isinstance(v, Mapping) and v and
             all(isinstance(x, (int, float)) for x in v.values())}
    if not parts:
        return None
    fig = _figure(width=6.4, height=2.2 * len(parts))
    for i, (key, counts) in enumerate(parts.items(), 1):
        ax = fig.add_subplot(len(parts), 1, i)
        items = sorted(counts.items(), key=lambda kv: -kv[1])[:20]
        ax.barh([k for k, _ in items][::-1], [v for _, v in items][::-1], color="#2a9d8f")
        ax.set_title(key.replace("_", " "), fontsize=9)
    return "Mix composition", fig


def _training(lf: pl.LazyFrame, columns: set[str]):
    import polars as pl

    metrics = [m for m in TRAINING_METRICS if m in columns]
    if "step" not in columns or not metrics:
        return None
    df = lf.select(["step", *metrics]).sort("step").collect()
    metrics = [m for m in metrics if df[m].null_count() < df.height and df[m].dtype.is_numeric()]
    if not metrics:
        return None
    fig = _figure(width=6.4, height=2.0 * len(metrics))
    first = None
    for i, m in enumerate(metrics, 1):
        ax = fig.add_subplot(len(metrics), 1, i, sharex=first)
        first = first or ax
        part = df.select("step", m).filter(pl.col(m).is_not_null())
        ax.plot(part["step"].to_numpy(), part[m].to_numpy(), marker=".", color="#264653")
        ax.set_ylabel(m, fontsize=8)
    ax.set_xlabel("step")
    return "Training curves", fig


# ----------------------------------------------------------------------------- helpers


def find_stat(stats: Any, key: str) -> Any:
    """The first value under ``key`` anywhere in nested stats (stages nest theirs
    under their own name: ``{"select": {"pass_rate_histogram": …}}``)."""
    if not isinstance(stats, Mapping):
        return None
    if key in stats:
        return stats[key]
    for v in stats.values():
        found = find_stat(v, key)
        if found is not None:
            return found
    return None


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, min(max(height, 2.2), 14)), dpi=96, layout="constrained")
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


__all__ = ["TRAINING_METRICS", "Plot", "find_stat", "version_plots"]
