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
import itertools
import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from datagen.files import sha256_file, write_records
from datagen.generate.backends.base import Backend, GenOutput, GenRequest, GenResult
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
    for a, b in itertools.pairwise(ordered):
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


def sample_seed(seed: int, problem_id: str, k: int) -> int:
    """The seed of sample k of a problem: a 31-bit hash of ``(seed, problem_id, k)``.

    A function of the sample alone, so a sample does not change with shard
    order, batch composition or concurrency, and two problems never share a
    seed sequence (``seed + k`` would give every problem the same seeds).
    31 bits because OpenAI-compatible servers take a signed 32-bit seed.
    """
    digest = hashlib.sha256(f"{seed}:{problem_id}:{k}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


class GenerationFailed(RuntimeError):
    """Too many samples of a shard failed to generate; the message names the endpoint and the error.

    Raised ``from ConnectionError`` when the failures were of the transient
    kind (server down, 5xx, timeouts), so the shard task is retried.
    """


def build_requests(
    problems: Sequence[Mapping[str, Any]], config: GenerateConfig
) -> tuple[list[GenRequest], str]:
    """Render one request (n samples, one seed each) per problem; also return the prompt hash."""
    template = load_template(config.template, config.prompts_dir)
    exemplars = load_exemplars(config.exemplars, config.prompts_dir) if config.exemplars else []
    base_seed = config.sampling.seed if config.sampling.seed is not None else config.seed
    requests = []
    for problem in problems:
        rendered = render_prompt(
            template_of(problem, config), problem, exemplars=exemplars, k=config.k, seed=config.seed,
            prompts_dir=config.prompts_dir,
        )
        seeds = tuple(sample_seed(base_seed, problem["problem_id"], k) for k in range(config.n))
        if isinstance(rendered, str):
            requests.append(GenRequest(prompt=rendered, n=config.n, sampling=config.sampling, seeds=seeds))
        else:
            requests.append(GenRequest(messages=rendered, n=config.n, sampling=config.sampling, seeds=seeds))
    return requests, prompt_hash(template, exemplars)


def template_of(problem: Mapping[str, Any], config: GenerateConfig) -> str:
    """The template a problem is rendered with: its own ``prompt_template`` when it has one (the
    non-reasoning sources, ``datagen.nonreasoning``, name one per task), else ``config.template``."""
    own = problem.get("prompt_template")
    return own if isinstance(own, str) and own else config.template


def generate_rows(
    problems: Sequence[Mapping[str, Any]], backend: Backend, config: GenerateConfig
) -> list[dict[str, Any]]:
    """Generate n samples per problem and parse them into output rows (no I/O).

    A request the backend could not serve yields n rows with
    ``finish_reason == "error"``; a backend that breaks its contract (wrong
    number of results or samples) raises, so a shard is never short.
    (``generate_checked`` adds the statistics and the failure threshold.)
    """
    return _generate(problems, backend, config)[0]


def _generate(
    problems: Sequence[Mapping[str, Any]], backend: Backend, config: GenerateConfig
) -> tuple[list[dict[str, Any]], list[GenOutput], list[GenRequest]]:
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
    exemplars = load_exemplars(config.exemplars, config.prompts_dir) if config.exemplars else []
    hashes = {name: prompt_hash(load_template(name, config.prompts_dir), exemplars)
              for name in {template_of(p, config) for p in problems}}
    rows, outputs = [], []
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
                prompt_template=template_of(problem, config),
                prompt_hash=hashes.get(template_of(problem, config), p_hash),
                generation_error=out.error,
                verdicts=None,
                accepted=None,
                drop=None,
            )
            rows.append(row)
            outputs.append(out)
    return rows, outputs, requests


def generate_checked(
    problems: Sequence[Mapping[str, Any]], backend: Backend, config: GenerateConfig, *, shard_name: str = "shard"
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``generate_rows`` plus the shard's statistics, failing a shard made of errors.

    Statistics are counts that add up across shards (``merge_stats``):
    samples, problems, finish reasons, completion tokens, seconds, the
    backend's ``requests`` / ``retries`` / ``errors``, ``identical_samples``
    (samples equal to an earlier sample of the same problem),
    ``with_reasoning`` and ``think_expected`` (see ``finish_stats``).

    Raises ``GenerationFailed`` when the share of failed samples is above
    ``config.max_error_share``, or when every sample failed.
    """
    started = time.monotonic()
    rows, outputs, requests = _generate(problems, backend, config)
    seconds = time.monotonic() - started
    errors = [o for o in outputs if o.finish_reason == "error"]
    stats = shard_stats(rows, outputs, requests, config)
    stats["generate_seconds"] = round(seconds, 3)
    if rows and (len(errors) == len(rows) or len(errors) / len(rows) > config.max_error_share):
        first = errors[0].error or "no error text"
        endpoint = getattr(backend, "endpoint", backend.name)
        message = (f"{shard_name}: {len(errors)} of {len(rows)} samples failed at {endpoint} "
                   f"(max_error_share={config.max_error_share}): {first}")
        if all(o.transient for o in errors):
            raise GenerationFailed(message) from ConnectionError(first)
        raise GenerationFailed(message)
    if errors:
        log.warning("%s: %d of %d samples failed (within max_error_share=%s): %s", shard_name, len(errors),
                    len(rows), config.max_error_share, errors[0].error)
    return rows, stats


def shard_stats(
    rows: Sequence[Mapping[str, Any]], outputs: Sequence[GenOutput], requests: Sequence[GenRequest],
    config: GenerateConfig,
) -> dict[str, Any]:
    """Count statistics of one shard's rows (see ``generate_checked``)."""
    finish = collections.Counter(r["finish_reason"] for r in rows)
    seen: dict[str, set[str]] = collections.defaultdict(set)
    identical = 0
    for row in rows:
        if row["finish_reason"] == "error" or row["completion"] is None:
            continue
        if row["completion"] in seen[row["problem_id"]]:
            identical += 1
        seen[row["problem_id"]].add(row["completion"])
    ok = [r for r in rows if r["finish_reason"] != "error"]
    asks_think = [THINK_TAG in _prompt_text(req) for req in requests for _ in range(req.n)]
    return {
        "samples": len(rows),
        "problems": len({r["problem_id"] for r in rows}),
        "finish_reason": dict(sorted(finish.items())),
        "completion_tokens": sum(r.get("completion_tokens") or 0 for r in rows),
        "requests": sum(o.attempts for o in outputs),
        "retries": sum(max(0, o.attempts - 1) for o in outputs),
        "errors": finish.get("error", 0),
        "identical_samples": identical if config.n > 1 else 0,
        "with_reasoning": sum(1 for r in ok if r.get("reasoning")),
        "think_expected": sum(1 for r, asks in zip(rows, asks_think) if asks and r["finish_reason"] != "error"),
    }


THINK_TAG = "<think>"


def _prompt_text(request: GenRequest) -> str:
    if request.prompt is not None:
        return request.prompt
    return "\n".join(m.get("content", "") for m in request.messages or [])


def finish_stats(stats: Mapping[str, Any], config: GenerateConfig) -> dict[str, Any]:
    """Stage statistics from the summed shard counts: adds the shares, and warns.

    Adds ``error_share``, ``identical_samples_share`` and ``reasoning_share``
    (of the samples that did not fail). Warns when, at temperature > 0 and
    n > 1, more than a tenth of the samples repeat an earlier sample of their
    problem (a server that ignores the sampling parameters: ``transformers
    serve`` samples only when the model folder's generation config has
    ``do_sample: true``), and when prompts ask for ``<think>`` but no sample
    has a reasoning part (a server that skips special tokens in decoding).
    Raises ``GenerationFailed`` when every sample failed, so a version made of
    errors is never committed.
    """
    out = dict(stats)
    samples = int(out.get("samples") or 0)
    errors = int(out.get("errors") or 0)
    good = samples - errors
    if samples and errors == samples:
        raise GenerationFailed(f"every one of the {samples} samples failed; nothing to commit")
    out["error_share"] = round(errors / samples, 4) if samples else 0.0
    out["identical_samples_share"] = round(int(out.get("identical_samples") or 0) / good, 4) if good else 0.0
    out["reasoning_share"] = round(int(out.get("with_reasoning") or 0) / good, 4) if good else 0.0
    if config.n > 1 and config.sampling.temperature > 0 and out["identical_samples_share"] > 0.1:
        log.warning(
            "%.0f%% of the samples repeat another sample of the same problem at temperature %s: is the "
            "server sampling at all? (transformers serve samples only when the model folder's "
            "generation_config.json has do_sample: true)", 100 * out["identical_samples_share"],
            config.sampling.temperature)
    if int(out.get("think_expected") or 0) > 0 and not out.get("with_reasoning"):
        log.warning(
            "the prompts ask for <think>…</think> but no sample has a reasoning part: a server that skips "
            "special tokens in decoding drops think tags (transformers serve does; for vllm serve set "
            "backend.extra_body: {skip_special_tokens: false}, or render with backend.tokenizer)")
    return out


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
    rows, stats = generate_checked(problems, backend, config, shard_name=shard_name)
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
        "stats": stats,
    }
    tmp = marker.with_name(f".{marker.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(info, indent=2, sort_keys=True))
    os.replace(tmp, marker)
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
