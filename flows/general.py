"""The non-reasoning sources as flows: ``general`` (writing, factual QA, self-cognition and
translation problems -> a problems version) and ``import_chat`` (existing chat-format SFT
data -> a non-reasoning version). The logic is ``datagen.nonreasoning``; these are thin
shells that key the output version by the config and the content of the files read, so a
rerun resumes instead of making a new version.

The problems version then goes through the ordinary stages (generate renders each row with
its task's template; verify judges it with the verifiers of its task), and ``mix`` takes the
verified samples, the imported conversations and, optionally, the sources' own reference
answers as its non-reasoning inputs.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from pydantic import Field

from datagen.config import where
from datagen.files import hash_file_into
from datagen.nonreasoning import DATA_DIR, TASKS, GeneralSourcesConfig
from datagen.store import open_store
from flows.common import StageParams, flow_run_id, logger, open_stage, publish, run_key


class GeneralParams(StageParams):
    root: str | None = where(None)
    output: str = where("general-problems")
    sources: GeneralSourcesConfig = Field(default_factory=GeneralSourcesConfig)


class ImportChatParams(StageParams):
    root: str | None = where(None)
    #: the chat file: JSONL / Parquet with a ``messages`` list per row, or a saved HF dataset folder
    file: str = where(...)
    name: str = where("chat-import")
    source: str | None = None
    #: benchmark files (JSONL/Parquet of problems) a user turn must share no word n-gram with
    benchmarks: list[str] = Field(default_factory=list)
    ngram: int = Field(8, ge=1)


def _digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for path in paths:
        h.update(str(path.name).encode())
        if path.is_dir():
            for p in sorted(path.rglob("*")):
                if p.is_file():
                    h.update(str(p.relative_to(path)).encode())
                    hash_file_into(h, p)
        elif path.is_file():
            hash_file_into(h, path)
    return h.hexdigest()


@task(cache_policy=NO_CACHE)
def general_task(params: GeneralParams) -> str:
    from datagen.nonreasoning import general_problems

    run = open_stage(params, "general", [])
    files = [Path(getattr(params.sources, t).file) if getattr(params.sources, t).file else DATA_DIR / s.builtin
             for t, s in TASKS.items() if getattr(params.sources, t).enabled]
    writer = run.writer(params.output, extra_key={"items": _digest(files)})
    if run.done(writer):
        return writer.committed.ref
    rows = general_problems(params.sources)
    writer.write(rows)
    counts: dict[str, dict[str, int]] = {}
    for row in rows:
        by_lang = counts.setdefault(row["task"], {})
        by_lang[row["language"]] = by_lang.get(row["language"], 0) + 1
    stats = {"general": {"rows": len(rows), "by_task": {t: sum(c.values()) for t, c in sorted(counts.items())},
                         "composition": dict(sorted(counts.items()))}}
    manifest = writer.commit(stats=stats)
    publish("general", manifest, stats)
    return manifest.ref


@flow(name="general")
def general_flow(params: GeneralParams) -> str:
    """Write the non-reasoning problems version; returns its ``name@version``."""
    return general_task(params)


@task(cache_policy=NO_CACHE)
def import_chat_task(params: ImportChatParams) -> str:
    from datagen.nonreasoning import import_chat

    store = open_store(params.root)
    inputs = [Path(params.file), *(Path(b) for b in params.benchmarks)]
    key = run_key("import_chat", [], {**params.stage_config(), "digest": _digest(inputs)})
    result = import_chat(store, params.file, name=params.name, source=params.source, benchmarks=params.benchmarks,
                         ngram=params.ngram, run_key=key, flow_run_id=flow_run_id())
    logger().info("imported %s conversations (%s duplicates, %s contaminated, %s quarantined) -> %s",
                  result.accepted, result.duplicates, result.contaminated, result.rejected, result.manifest.ref)
    publish("import_chat", result.manifest, result.manifest.stats)
    return result.manifest.ref


@flow(name="import_chat")
def import_chat_flow(params: ImportChatParams) -> str:
    """Import chat-format SFT data as a non-reasoning version; returns its ``name@version``."""
    return import_chat_task(params)
