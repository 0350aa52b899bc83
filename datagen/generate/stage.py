"""The generation stage on one machine: problems in, n samples per problem out,
in resumable shards.

Plain functions over rows and a local shard folder; the Prefect flow wraps
them (one task per shard) and commits the shard files as a dataset version.

Resumability (STYLE.md habit 10):

- ``plan_shards`` sorts the problems by id and cuts them into shards whose
  names are a function of the ids and the config fingerprint, so a rerun
  with the same config computes the same names, and a changed config never
  picks up shards made by another.
- ``generate_shard`` writes the shard's Parquet file to a temporary name and
  renames it, then writes a completion marker ``<shard>.done.json`` (rows,
  sha256 of the file, config fingerprint, statistics) the same way. A shard
  counts as finished only when its marker exists and matches the file, so a
  process killed at any moment leaves either a finished shard or one that the
  rerun regenerates whole — never a partial or doubled set of samples.

Output rows: the problem row (verdicts/accepted/drop reset, they described
the problem, not this sample) plus ``sample_id = problem_id:k`` for k < n,
``completion``, ``reasoning``, ``summary``, ``model``, ``finish_reason``,
``completion_tokens``, ``prompt_tokens``, ``sampling`` (JSON),
``prompt_template``, ``prompt_hash`` and ``generation_error`` (the backend's
error text on ``finish_reason == "error"`` rows, else null).
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from datagen.files import sha256_file, write_records
from datagen.generate.backends.base import Backend, GenRequest, GenResult
from datagen.generate.config import GenerateConfig
from datagen.generate.prompts import load_exemplars, load_template, prompt_hash, render_prompt
from datagen.records import sample_id_for, split_completion

log = logging.getLogger(__name__)

MARKER_SUFFIX = ".done.json"
DATA_SUFFIX = ".parquet"


@dataclasses.dataclass(frozen=True)
class Shard:
    """One unit of work: a deterministic name and its problems (sorted by id)."""

    name: str
    problems: list[dict[str, Any]]


def plan_shards(problems: Sequence[Mapping[str, Any]], config: GenerateConfig, shard_size: int) -> list[Shard]:
    """Split problems into shards of ``shard_size``, sorted by ``problem_id``.

    The name is ``shard-<index>-<digest>``, the digest covering the shard's
    problem ids and ``config.fingerprint()``. Raises ``ValueError`` on a
    duplicated ``problem_id`` (its samples would collide).
    """
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    ordered = sorted((dict(p) for p in problems), key=lambda p: p["problem_id"])
    for a, b in zip(ordered, ordered[1:]):
        if a["problem_id"] == b["problem_id"]:
            raise ValueError(f"duplicate problem_id {a['problem_id']!r}: deduplicate the problems first")
    fingerprint = config.fingerprint()
    shards = []
    for index, start in enumerate(range(0, len(ordered), shard_size)):
        chunk = ordered[start : start + shard_size]
        digest = hashlib.sha256("\n".join([fingerprint, *(p["problem_id"] for p in chunk)]).encode()).hexdigest()
        shards.append(Shard(f"shard-{index:05d}-{digest[:12]}", chunk))
    return shards


def shard_paths(shard_dir: str | os.PathLike, shard_name: str) -> tuple[Path, Path]:
    """(data file, completion marker) of a shard."""
    shard_dir = Path(shard_dir)
    return shard_dir / f"{shard_name}{DATA_SUFFIX}", shard_dir / f"{shard_name}{MARKER_SUFFIX}"


def read_marker(shard_dir: str | os.PathLike, shard_name: str, config: GenerateConfig) -> dict[str, Any] | None:
    """The shard's completion marker if the shard is finished for this config, else None.

    Finished = marker present, same config fingerprint, and the data file's
    sha256 equal to the one the marker recorded.
    """
    data, marker = shard_paths(shard_dir, shard_name)
    try:
        info = json.loads(marker.read_text())
    except (FileNotFoundError, ValueError):
        return None
    if info.get("config_fingerprint") != config.fingerprint() or not data.is_file():
        return None
    if sha256_file(data) != info.get("sha256"):
        log.warning("shard %s: data does not match its marker; regenerating", shard_name)
        return None
    return info


def build_requests(
    problems: Sequence[Mapping[str, Any]], config: GenerateConfig
) -> tuple[list[GenRequest], str]:
    """Render one request (n samples) per problem; also return the prompt hash."""
    template = load_template(config.template, config.prompts_dir)
    exemplars = load_exemplars(config.exemplars, config.prompts_dir) if config.exemplars and template.uses_exemplars else []
    requests = []
    for problem in problems:
        rendered = render_prompt(
            config.template, problem, exemplars=exemplars, k=config.k, seed=config.seed, prompts_dir=config.prompts_dir
        )
        if isinstance(rendered, str):
            requests.append(GenRequest(prompt=rendered, n=config.n, sampling=config.sampling))
        else:
            requests.append(GenRequest(messages=rendered, n=config.n, sampling=config.sampling))
    return requests, prompt_hash(template, exemplars)


def generate_rows(
    problems: Sequence[Mapping[str, Any]], backend: Backend, config: GenerateConfig
) -> list[dict[str, Any]]:
    """Generate n samples per problem and parse them into output rows (no I/O).

    A request the backend could not serve yields n rows with
    ``finish_reason == "error"``; a backend that breaks its contract (wrong
    number of results or samples) raises, so a shard is never short.
    """
    requests, p_hash = build_requests(problems, config)
    results: list[GenResult] = []
    step = config.request_batch_size or max(1, len(requests))
    for start in range(0, len(requests), step):
        batch = requests[start : start + step]
        got = backend.generate(batch)
        if len(got) != len(batch):
            raise RuntimeError(f"backend {backend.name!r} returned {len(got)} results for {len(batch)} requests")
        results.extend(got)
        log.info("generated %d/%d prompts", len(results), len(requests))
    sampling = json.dumps({**config.sampling.model_dump(mode="json"), "n": config.n}, sort_keys=True)
    rows = []
    for problem, result in zip(problems, results):
        if len(result.outputs) != config.n:
            raise RuntimeError(f"backend {backend.name!r} returned {len(result.outputs)} samples, expected {config.n}")
        prefilled = config.think_prefilled if config.think_prefilled is not None else bool(result.think_prefilled)
        for k, out in enumerate(result.outputs):
            ok = out.finish_reason != "error" and out.text is not None
            split = split_completion(out.text, think_prefilled=prefilled) if ok else None
            row = dict(problem)
            row.update(
                sample_id=sample_id_for(problem["problem_id"], k),
                completion=out.text,
                reasoning=split.reasoning if split else None,
                summary=split.summary if split else None,
                model=backend.name,
                finish_reason=out.finish_reason,
                completion_tokens=out.completion_tokens,
                prompt_tokens=out.prompt_tokens,
                sampling=sampling,
                prompt_template=config.template,
                prompt_hash=p_hash,
                generation_error=out.error,
                verdicts=None,
                accepted=None,
                drop=None,
            )
            rows.append(row)
    return rows


def generate_shard(
    problems: list[dict[str, Any]],
    backend: Backend,
    config: GenerateConfig,
    *,
    shard_dir: str | os.PathLike,
    shard_name: str,
) -> Path:
    """Generate one shard unless it is already finished; return its data file.

    Writes ``<shard_dir>/<shard_name>.parquet`` then the marker
    ``<shard_name>.done.json``, each atomically. One writer per shard at a time.
    """
    data, marker = shard_paths(shard_dir, shard_name)
    if read_marker(shard_dir, shard_name, config) is not None:
        log.info("shard %s already finished; skipping", shard_name)
        return data
    for stale in Path(shard_dir).glob(f".{shard_name}*.tmp-*"):  # left by a killed writer
        stale.unlink(missing_ok=True)
    started = time.monotonic()
    rows = generate_rows(problems, backend, config)
    write_records(data, rows)
    finish = collections.Counter(r["finish_reason"] for r in rows)
    info = {
        "shard": shard_name,
        "file": data.name,
        "rows": len(rows),
        "problems": len(problems),
        "sha256": sha256_file(data),
        "config_fingerprint": config.fingerprint(),
        "model": backend.name,
        "finish_reasons": dict(sorted(finish.items())),
        "completion_tokens": sum(r["completion_tokens"] or 0 for r in rows),
        "seconds": round(time.monotonic() - started, 3),
    }
    tmp = marker.with_name(f".{marker.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(info, indent=2, sort_keys=True))
    os.replace(tmp, marker)
    if finish.get("error"):
        log.warning("shard %s: %d of %d samples failed", shard_name, finish["error"], len(rows))
    return data


def generate(
    problems: Sequence[Mapping[str, Any]],
    backend: Backend,
    config: GenerateConfig,
    *,
    work_dir: str | os.PathLike,
    shard_size: int,
) -> list[Path]:
    """Generate every shard of ``problems`` under ``work_dir``, skipping finished ones.

    Returns the shard data files in shard order. Safe to rerun after a crash.
    """
    Path(work_dir).mkdir(parents=True, exist_ok=True)
    shards = plan_shards(problems, config, shard_size)
    paths = []
    for i, shard in enumerate(shards, 1):
        paths.append(generate_shard(shard.problems, backend, config, shard_dir=work_dir, shard_name=shard.name))
        log.info("shard %d/%d done: %s", i, len(shards), shard.name)
    return paths
