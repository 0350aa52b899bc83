"""``ingest``: a problem file (or procedurally generated problems) -> a problems version.

Import normalizes rows to the record, removes exact duplicates and
quarantines malformed rows (``datagen.ingest``). The output version is
keyed by the file's content and the config, so rerunning the flow on the same
file resumes instead of making a new version.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Literal

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict, model_validator

from datagen.config import where
from datagen.files import hash_file_into
from datagen.store import open_store
from flows.common import StageParams, flow_run_id, logger, publish, run_key


class SyntheticProblems(BaseModel):
    """Procedurally generated verifiable problems (``datagen.problems``)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["arithmetic", "general"] = "arithmetic"
    n: int = 200
    seed: int = 0
    min_ops: int = 1
    max_ops: int = 2
    max_operand: int = 9


class IngestParams(StageParams):
    root: str | None = where(None)
    #: the output dataset
    name: str = where("problems")
    #: the input file; its content (not its path) is keyed
    file: str | None = where(None)
    synthetic: SyntheticProblems | None = None
    source: str | None = None

    @model_validator(mode="after")
    def _one_source(self):
        if (self.file is None) == (self.synthetic is None):
            raise ValueError("set exactly one of 'file' (a JSONL/Parquet/HF dataset path) or 'synthetic'")
        return self


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    if path.is_dir():
        for p in sorted(path.rglob("*")):
            if p.is_file():
                h.update(str(p.relative_to(path)).encode())
                hash_file_into(h, p)
    else:
        hash_file_into(h, path)
    return h.hexdigest()


@task(cache_policy=NO_CACHE)
def import_task(params: IngestParams) -> str:
    """Import the file (one task: the import streams the whole file)."""
    from datagen.files import write_records
    from datagen.ingest import import_file

    store = open_store(params.root)
    with tempfile.TemporaryDirectory(prefix="datagen-ingest-") as tmp:
        if params.synthetic is not None:
            from datagen import problems as problem_gen

            s = params.synthetic
            if s.kind == "arithmetic":
                rows = problem_gen.arithmetic_problems(
                    s.n, seed=s.seed, min_ops=s.min_ops, max_ops=s.max_ops, max_operand=s.max_operand
                )
            else:
                rows = problem_gen.general_problems(s.n, seed=s.seed)
            path = Path(tmp) / f"synthetic-{s.kind}.jsonl"
            write_records(path, rows)
        else:
            path = Path(params.file)
        key = run_key("import", [], {**params.stage_config(), "digest": _file_digest(path)})
        result = import_file(
            store, path, name=params.name, source=params.source, run_key=key, flow_run_id=flow_run_id()
        )
    logger().info(
        "imported %s rows (%s duplicates, %s rejected) -> %s",
        result.accepted, result.duplicates, result.rejected, result.manifest.ref,
    )
    publish("ingest", result.manifest, result.manifest.stats)
    return result.manifest.ref


@flow(name="ingest", log_prints=False)
def ingest_flow(params: IngestParams) -> str:
    """Import problems; returns the ``name@version`` written."""
    return import_task(params)
