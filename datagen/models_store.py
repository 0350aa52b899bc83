"""Models as store versions: a trained model travels by name, not by a worker's disk path.

A model version is an ordinary store version (``<root>/<name>/<version>/``,
local or S3, immutable, visible once its manifest exists) whose files —
weights, tokenizer, config, generation config — are objects under
``files/<relative path>``; its one data shard is the file index (``file``,
``bytes``, ``sha256``), so ``datagen datasets show NAME@VERSION`` lists them and
the manifest's ``stats`` says ``kind: model``. A store gc keeps ``files/`` (it
only prunes ``data/``, ``markers/`` and ``stats/`` orphans).

Every place that takes a model path also takes ``NAME@VERSION`` (or
``NAME@TAG``, ``NAME`` = latest): ``resolve_model`` returns a local folder,
fetching the version once into a cache (``$DATAGEN_MODEL_CACHE``, else
``~/.cache/datagen/models``) keyed by root, name and version. A fetch writes
into a temporary folder, checks every file's sha256 against the index, and
renames it into place, so a killed fetch never leaves a folder that looks
complete and a second call reads the cache without touching the store.

Which root: the ``root`` argument (a config's ``model_store``), else
``$DATAGEN_ROOT``, else ``./datasets`` — the same default as datasets.
A text that is an existing local path is always a path.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FILES_DIR = "files"
_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(@[A-Za-z0-9._:-]+)?$")


class ModelRefError(ValueError):
    """A model reference that names nothing usable; the message says what to fix."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def commit_model(folder: str | os.PathLike, name: str, *, root: str | None = None, stage: str = "train",
                 config: Mapping[str, Any] | None = None, parents: Sequence[str] = (),
                 stats: Mapping[str, Any] | None = None, tags: Sequence[str] = ()):
    """Commit the model folder ``folder`` (``save_pretrained`` output: weights,
    tokenizer, config) as a new version of ``name`` in the store at ``root``;
    returns its manifest (``manifest.ref`` is ``NAME@VERSION``)."""
    from datagen.store import open_store

    src = Path(folder)
    if not (src / "config.json").is_file():
        raise ModelRefError(f"{src}: not a model folder (no config.json); pass the save_pretrained output dir")
    store = open_store(root)
    files = sorted(p for p in src.rglob("*") if p.is_file())
    writer = store.writer(name, stage=stage, config=dict(config or {}), parents=list(parents))
    index = []
    for p in files:
        rel = p.relative_to(src).as_posix()
        store.objects.put_file(f"{writer.prefix}/{FILES_DIR}/{rel}", p)
        index.append({"file": rel, "bytes": p.stat().st_size, "sha256": _sha256(p)})
    import pyarrow as pa

    # an Arrow table, not dicts: dicts are read as dataset records (their core schema)
    writer.write_shard("part-00000", pa.Table.from_pylist(
        index, schema=pa.schema([("file", pa.string()), ("bytes", pa.int64()), ("sha256", pa.string())])))
    total = sum(r["bytes"] for r in index)
    manifest = writer.commit(stats={"kind": "model", "files": len(index), "bytes": total, **dict(stats or {})},
                             move_refs=("latest", *tags))
    log.info("committed model %s (%d files, %.1f MB) to %s", manifest.ref, len(index), total / 1e6, store.root)
    return manifest


def default_cache_dir() -> Path:
    env = os.environ.get("DATAGEN_MODEL_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "datagen" / "models"


def is_model_ref(text: str) -> bool:
    """True when ``text`` is not an existing path and reads as ``NAME@VERSION``."""
    return "@" in text and not Path(text).exists() and bool(_REF.match(text))


def fetch_model(ref: str, *, root: str | None = None, cache_dir: str | os.PathLike | None = None) -> Path:
    """The local folder of model version ``ref`` (``NAME@VERSION``/``NAME@TAG``/``NAME``),
    downloaded once into the cache and checked against its file index."""
    from datagen.store import open_store
    from datagen.store.objects import StoreError

    store = open_store(root)
    try:
        manifest = store.resolve(ref)
    except StoreError as exc:
        raise ModelRefError(f"model {ref!r} not found in store {store.root}: {exc}") from None
    if manifest.stats.get("kind") != "model":
        raise ModelRefError(f"{manifest.ref} in {store.root} is a dataset, not a model (commit one with commit_model)")
    root_key = hashlib.sha256(store.root.encode()).hexdigest()[:12]
    dest = Path(cache_dir or default_cache_dir()) / root_key / manifest.dataset / manifest.id
    if (dest / "config.json").is_file():
        return dest  # complete: folders only appear by rename
    dest.parent.mkdir(parents=True, exist_ok=True)
    index = store.read_rows(manifest.ref)
    tmp = Path(tempfile.mkdtemp(prefix=f".{manifest.id}-", dir=dest.parent))
    try:
        prefix = f"{manifest.dataset}/{manifest.id}/{FILES_DIR}"
        for row in index:
            local = tmp / row["file"]
            local.parent.mkdir(parents=True, exist_ok=True)
            store.objects.download(f"{prefix}/{row['file']}", local)
            if _sha256(local) != row["sha256"]:
                raise ModelRefError(f"{manifest.ref}: {row['file']} does not match its sha256; the store copy is "
                                    "damaged, commit the model again")
        try:
            tmp.rename(dest)
        except OSError:
            if not (dest / "config.json").is_file():  # lost a race to another fetch: theirs is as good
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("fetched model %s from %s into %s", manifest.ref, store.root, dest)
    return dest


def resolve_model(text: str | None, *, root: str | None = None,
                  cache_dir: str | os.PathLike | None = None) -> str | None:
    """A model argument as a loadable path: ``NAME@VERSION`` is fetched from the
    store (once); a local path or a hub id is returned unchanged."""
    if text is None or not is_model_ref(str(text)):
        return text
    return str(fetch_model(str(text), root=root, cache_dir=cache_dir))
