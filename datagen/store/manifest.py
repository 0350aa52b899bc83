"""The manifest of a dataset version: written last, create-only — it *is* the commit.

A version directory without ``manifest.json`` does not exist to readers. The
manifest lists every shard (path relative to the store root, rows, sha256,
bytes), so reading a version never lists the bucket, and a version may reuse
a parent's unchanged shards by pointing at them.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
import subprocess
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

FORMAT_VERSION = 1
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class StoreNameError(ValueError):
    """A dataset, version or tag name that the store cannot hold."""


def check_name(name: str, what: str = "dataset") -> str:
    """Names are path segments: letters, digits, '.', '_', '-'; not starting with '_' or '.'."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise StoreNameError(
            f"invalid {what} name {name!r}: use letters, digits, '.', '_' and '-' (up to 128), "
            "starting with a letter or digit"
        )
    return name


def new_version_id(now: dt.datetime | None = None) -> str:
    """Time-sortable, collision-free: ``20261121T193500Z-3fa9c2d1``."""
    now = now or dt.datetime.now(dt.UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


def code_revision() -> str:
    """The code revision that wrote a version: ``$DATAGEN_CODE_REVISION``, else the
    git commit of the package checkout (``+dirty`` when modified), else the
    package version."""
    env = os.environ.get("DATAGEN_CODE_REVISION")
    if env:
        return env
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,  # a failing status means "unknown", not dirty
        ).stdout.strip()
        return rev + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        from importlib.metadata import PackageNotFoundError, version

        try:
            return f"datagen-{version('datagen')}"
        except PackageNotFoundError:
            return "unknown"


class ShardInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str  # relative to the store root
    rows: int
    sha256: str
    bytes: int


class ParentRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: str
    version: str

    def __str__(self) -> str:
        return f"{self.dataset}@{self.version}"


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: int = FORMAT_VERSION
    id: str
    dataset: str
    created: str  # ISO 8601, UTC
    parents: list[ParentRef] = Field(default_factory=list)
    stage: str
    config: dict[str, Any] = Field(default_factory=dict)
    code_revision: str
    flow_run_id: str | None = None
    rows: int
    schema_: list[dict[str, str]] = Field(default_factory=list, alias="schema")
    shards: list[ShardInfo] = Field(default_factory=list)
    stats: dict[str, Any] = Field(default_factory=dict)
    # Quarantined rows (import's rejected part): not part of the data.
    rejected: list[ShardInfo] = Field(default_factory=list)
    # A random id of the commit attempt: the retry of our own create-only PUT
    # (its reply lost) is byte-identical and accepted; another writer's manifest
    # of the same version never is, even within the same second.
    commit_token: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.dataset}@{self.id}"

    def to_json(self) -> bytes:
        return json.dumps(self.model_dump(by_alias=True), indent=2, sort_keys=False, default=str).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> Manifest:
        return cls.model_validate(json.loads(data))


def schema_to_list(schema) -> list[dict[str, str]]:
    """An Arrow schema as ``[{name, type}]`` (JSON-friendly, diffable)."""
    return [{"name": f.name, "type": str(f.type)} for f in schema]


def flatten_stats(stats: Any, prefix: str = "") -> dict[str, Any]:
    """Nested stats -> ``{"a/b/c": value}`` (the metric keys tables and diffs show)."""
    if isinstance(stats, dict):
        out: dict[str, Any] = {}
        for k, v in stats.items():
            out.update(flatten_stats(v, f"{prefix}/{k}" if prefix else str(k)))
        return out
    return {prefix: stats}
