"""Tokenise once, as a stage: chat ``messages`` -> token ids + assistant masks on
disk, read memory-mapped by every rank.

Why: holding every sample's token lists in Python costs ~100 bytes per token
(hundreds of GB for 800k long CoTs) and repeating it on every rank multiplies
that. Here the tokenised set is four flat files:

- ``tokens.bin``: every sample's token ids back to back (``uint32``);
- ``trained.bin``: one byte per token, 1 where the token is in the loss
  (assistant content and its end-of-turn token; ``trainers.data.tokenize_chat``);
- ``offsets.bin``: ``int64`` sample boundaries (``n + 1`` of them);
- ``meta.json`` (written last: its presence marks the set complete): the chat
  template's name and sha256, the tokenizer's fingerprint, the source key,
  ``max_length`` and counts.

The folder name is a hash of (source, tokenizer + template fingerprint,
max_length, truncate), so a second run on the same data and template finds it
and tokenises nothing; a changed template gets a new folder. Rows are read and
written in chunks, so tokenising holds one chunk in memory, whatever the
dataset's size.

``TokenizedSet`` opens the files with ``numpy.memmap``: opening it and planning
the packing costs ~16 bytes per sample (offsets and the plan), and a rank
reads only the token ranges of the rows it trains on.

In a pipeline the tokenised data is a dataset version (the ``tokenize`` stage,
``flows/tokenize.py``): Parquet shards with ``input_ids`` (``list<uint32>``),
``assistant_mask`` (``list<uint8>``) and ``n_tokens`` beside the rows' ids, the
template's name and hash, the tokenizer's hash and ``max_length`` in its
manifest's config, and its run key made of (input version, those hashes,
``max_length``, ``truncate``): the same data and template resolve to the same
version. ``tokenize_batch`` is that stage's work on one batch of rows;
``materialize_version`` streams such a version, shard by shard, into the four
flat files above in a local cache (once per version and machine: an
immutable version never goes stale), which ``TokenizedSet`` memory-maps.
Parquet itself cannot be memory-mapped (it is compressed), hence this one
sequential decoding pass; it holds one record batch at a time.
"""

from __future__ import annotations

import array
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trainers.data import IGNORE, PackedRow, parse_messages, tokenize_chat

log = logging.getLogger(__name__)

CHUNK_ROWS = 1024
FORMAT = 1


def template_fingerprint(tokenizer) -> dict[str, str]:
    """The chat template's name and sha256, and a hash of the tokenizer's vocabulary and
    special tokens: what a tokenised set depends on besides its data."""
    template = getattr(tokenizer, "chat_template", None) or ""
    if isinstance(template, dict):
        template = json.dumps(template, sort_keys=True)
    vocab = hashlib.sha256(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    vocab.update(json.dumps([tokenizer.eos_token_id, tokenizer.pad_token_id, tokenizer.bos_token_id]).encode())
    return {
        "template_name": str(getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__),
        "template_sha256": hashlib.sha256(template.encode()).hexdigest(),
        "tokenizer_sha256": vocab.hexdigest(),
    }


def encode_chat(tokenizer, messages: Any) -> tuple[np.ndarray, np.ndarray]:
    """One chat's token ids (``uint32``) and trained mask (``bool``): ``trainers.data.tokenize_chat``
    (loss on assistant content and its end-of-turn token) as arrays."""
    s = tokenize_chat(tokenizer, parse_messages(messages))
    return np.asarray(s.input_ids, dtype=np.uint32), np.asarray(s.labels, dtype=np.int64) != IGNORE


def _too_long(n: int, max_length: int, truncate: str) -> bool:
    """True when a sample of ``n`` tokens is to be dropped; raises under ``truncate='error'``."""
    if n <= max_length:
        return False
    if truncate == "error":
        raise ValueError(f"a sample has {n} tokens > max_length={max_length}; raise max_length or set truncate: drop")
    return True


def iter_messages(source: Any = None, path: str | None = None, chunk: int = CHUNK_ROWS) -> Iterator[Any]:
    """Each row's ``messages`` in order, streamed: rows in code (dicts or a polars
    frame), or a JSONL/Parquet file read ``chunk`` rows at a time."""
    if source is None:
        if path is None:
            raise ValueError("no SFT data: set `data:` in the config or pass rows=[{'messages': [...]}, ...]")
        from datagen.files import file_format

        if file_format(path) == "parquet":
            import pyarrow.parquet as pq

            pf = pq.ParquetFile(path)
            if "messages" not in pf.schema_arrow.names:
                raise ValueError(f"{path}: SFT rows need a 'messages' column; got {sorted(pf.schema_arrow.names)}")
            for batch in pf.iter_batches(batch_size=chunk, columns=["messages"]):
                yield from batch.column(0).to_pylist()
            return
        with open(path, encoding="utf-8") as fh:
            for no, line in enumerate(fh, 1):
                if line.strip():
                    row = json.loads(line)
                    if "messages" not in row:
                        raise ValueError(f"{path}:{no}: SFT rows need a 'messages' column; got {sorted(row)}")
                    yield row["messages"]
        return
    if hasattr(source, "collect"):
        source = source.select("messages").collect()
    if hasattr(source, "iter_slices"):
        if "messages" not in source.columns:
            raise ValueError(f"SFT rows need a 'messages' column; got columns {sorted(source.columns)}")
        for part in source.iter_slices(chunk):
            yield from part.get_column("messages").to_list()
        return
    for r in source:
        if "messages" not in r:
            raise ValueError(f"SFT rows need a 'messages' column; got columns {sorted(r)}")
        yield r["messages"]


def source_key(source: Any = None, path: str | None = None) -> str:
    """What identifies the data: a file's path, size and mtime; rows in code by a hash of their content."""
    if source is None and path is not None:
        st = os.stat(path)
        return f"file:{os.path.abspath(path)}:{st.st_size}:{st.st_mtime_ns}"
    h = hashlib.sha256()
    for m in iter_messages(source, None):
        h.update(json.dumps(m, sort_keys=True, ensure_ascii=False).encode() if not isinstance(m, str) else m.encode())
        h.update(b"\x1e")
    return "rows:" + h.hexdigest()


def _cache_dir(cache_root: str | os.PathLike, key: str, fp: dict[str, str], max_length: int, truncate: str) -> Path:
    h = hashlib.sha256(json.dumps([FORMAT, key, fp, max_length, truncate]).encode()).hexdigest()[:24]
    return Path(cache_root) / h


def default_cache_root() -> Path:
    env = os.environ.get("DATAGEN_TOKEN_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "datagen" / "tokenized"


def tokenize_to_disk(messages: Iterable[Any], tokenizer, out_dir: str | os.PathLike, *, max_length: int,
                     truncate: str = "drop", meta: dict[str, Any] | None = None,
                     encode=None) -> Path:
    """Tokenise a stream of ``messages`` into ``out_dir`` (the four files above);
    samples longer than ``max_length`` are dropped (counted) or, with
    ``truncate='error'``, fail. ``encode(messages) -> (ids, trained_mask)`` replaces
    the chat-template path (the benchmark's synthetic fast path). Returns ``out_dir``."""
    out = Path(out_dir)
    tmp = out.with_name(out.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    n, n_tok, dropped, longest = 0, 0, 0, 0
    offsets = [0]
    with open(tmp / "tokens.bin", "wb") as ft, open(tmp / "trained.bin", "wb") as fm, \
            open(tmp / "offsets.bin", "wb") as fo:
        ids_buf: list[np.ndarray] = []
        mask_buf: list[np.ndarray] = []

        def flush():
            if ids_buf:
                ft.write(np.concatenate(ids_buf).astype(np.uint32).tobytes())
                fm.write(np.concatenate(mask_buf).astype(np.uint8).tobytes())
                ids_buf.clear()
                mask_buf.clear()
            fo.write(np.asarray(offsets[:-1], dtype=np.int64).tobytes())
            del offsets[:-1]

        for msgs in messages:
            ids, trained = encode(msgs) if encode is not None else encode_chat(tokenizer, msgs)
            if _too_long(len(ids), max_length, truncate):
                dropped += 1
                continue
            ids_buf.append(np.asarray(ids))
            mask_buf.append(np.asarray(trained))
            n += 1
            n_tok += len(ids)
            longest = max(longest, len(ids))
            offsets.append(n_tok)
            if len(offsets) > CHUNK_ROWS:
                flush()
        flush()
        fo.write(np.asarray(offsets, dtype=np.int64).tobytes())
    if n == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ValueError("the SFT dataset is empty (or every sample is longer than max_length)")
    info = {"format": FORMAT, **(meta or {}), "max_length": max_length, "truncate": truncate, "samples": n,
            "tokens": n_tok, "dropped_too_long": dropped, "longest": longest}
    (tmp / "meta.json").write_text(json.dumps(info, indent=1))
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    if dropped:
        log.warning("dropped %d samples longer than max_length=%d", dropped, max_length)
    return out


def tokenize_stage(tokenizer, *, source: Any = None, path: str | None = None, max_length: int,
                   truncate: str = "drop", cache_root: str | os.PathLike | None = None) -> Path:
    """The tokenised set of this data + tokenizer/template + max_length, from the
    cache when it is there (``meta.json`` present), else tokenised now.

    ``path`` may also be a tokenised set's folder (one ``materialize_version`` wrote, or
    ``tokenize_to_disk``): it is used as it is, after checking that this tokenizer and chat
    template made it and that its longest sample fits ``max_length`` (``check_set``)."""
    if source is None and path is not None and (Path(path) / "meta.json").is_file():
        return check_set(Path(path), tokenizer, max_length)
    fp = template_fingerprint(tokenizer)
    key = source_key(source, path)
    out = _cache_dir(cache_root or default_cache_root(), key, fp, max_length, truncate)
    if (out / "meta.json").is_file():
        log.info("tokenised data from cache %s", out)
        return out
    return tokenize_to_disk(iter_messages(source, path), tokenizer, out, max_length=max_length, truncate=truncate,
                            meta={**fp, "source": key})


def check_set(path: Path, tokenizer, max_length: int) -> Path:
    """``path`` when the tokenised set there was made by this tokenizer and chat template and
    its longest sample fits ``max_length``; else a ``ValueError`` saying what to rerun."""
    meta = json.loads((path / "meta.json").read_text())
    fp = template_fingerprint(tokenizer)
    for k in ("template_sha256", "tokenizer_sha256"):
        if meta.get(k) != fp[k]:
            raise ValueError(f"{meta.get('source', path)} was tokenised with another tokenizer or chat template "
                             f"({k} {str(meta.get(k))[:12]} != this model's {fp[k][:12]}); tokenize the messages "
                             "again with this model's tokenizer (datagen run tokenize --set tokenizer=MODEL)")
    if int(meta.get("longest", 0)) > max_length:
        raise ValueError(f"{meta.get('source', path)} holds samples of up to {meta['longest']} tokens > "
                         f"max_length={max_length}; tokenize again with max_length={max_length} or raise max_length")
    return path


def load_tokenizer(ref: str, model_store: str | None = None):
    """The tokenizer of a model dir, hub id or ``NAME@VERSION`` in ``model_store``, with the pad
    token set as the trainers set it (``trainers.runtime.load_model_and_tokenizer``): its
    fingerprint is then the one SFT sees."""
    from transformers import AutoTokenizer

    from datagen.models_store import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(ref, root=model_store))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


#: Row ids a tokenised version carries over from its input (its text stays in the parent
#: version, one lineage hop away: copying 8-30 KB chats would double the data for nothing).
ID_COLUMNS = ("problem_id", "sample_id", "source", "domain", "language")
#: What makes a version tokenised (and what ``materialize_version`` reads).
TOKEN_COLUMNS = ("input_ids", "assistant_mask")


def tokenize_batch(batch, tokenizer, *, max_length: int, truncate: str = "drop", encode=None):
    """One Arrow batch (or table) of rows with ``messages`` -> ``(table, stats)``: the kept rows'
    ids (``ID_COLUMNS`` present), ``input_ids`` ``list<uint32>``, ``assistant_mask``
    ``list<uint8>`` (1 = in the loss), ``n_tokens``; stats count ``rows_in``, ``samples``,
    ``tokens``, ``dropped_too_long`` and give ``longest``. Token lists go to Arrow from numpy,
    never as Python ints. ``encode`` as in ``tokenize_to_disk``."""
    import pyarrow as pa

    if "messages" not in batch.schema.names:
        raise ValueError(f"tokenize needs a 'messages' column; got {sorted(batch.schema.names)}")
    keep, ids_parts, mask_parts, lens = [], [], [], []
    for i, msgs in enumerate(batch.column("messages").to_pylist()):
        ids, trained = encode(msgs) if encode is not None else encode_chat(tokenizer, msgs)
        if _too_long(len(ids), max_length, truncate):
            continue
        keep.append(i)
        ids_parts.append(np.asarray(ids, dtype=np.uint32))
        mask_parts.append(np.asarray(trained, dtype=np.uint8))
        lens.append(len(ids))
    offsets = np.zeros(len(lens) + 1, dtype=np.int64)
    np.cumsum(lens, out=offsets[1:])
    if offsets[-1] >= 2**31:
        raise ValueError(f"a batch of {len(lens)} rows holds {offsets[-1]} tokens (> 2^31): lower batch_rows")
    off = pa.array(offsets.astype(np.int32))
    values = np.concatenate(ids_parts) if ids_parts else np.zeros(0, np.uint32)
    masks = np.concatenate(mask_parts) if mask_parts else np.zeros(0, np.uint8)
    idx = pa.array(keep, type=pa.int64())
    cols = {c: batch.column(c).take(idx) for c in ID_COLUMNS if c in batch.schema.names}
    table = pa.table({**cols,
                      "input_ids": pa.ListArray.from_arrays(off, pa.array(values, type=pa.uint32())),
                      "assistant_mask": pa.ListArray.from_arrays(off, pa.array(masks, type=pa.uint8())),
                      "n_tokens": pa.array(lens, type=pa.int32())})
    stats = {"rows_in": batch.num_rows, "samples": len(lens), "tokens": int(offsets[-1]),
             "dropped_too_long": batch.num_rows - len(lens), "longest": max(lens, default=0)}
    return table, stats


def is_tokenized(manifest) -> bool:
    """True for a version holding token ids and assistant masks (the ``tokenize`` stage's output)."""
    names = {c["name"] for c in manifest.schema_}
    return all(c in names for c in TOKEN_COLUMNS)


def materialize_version(store, manifest, cache_root: str | os.PathLike) -> Path:
    """The tokenised version ``manifest`` of ``store`` as a local tokenised set (the flat files
    ``TokenizedSet`` memory-maps), decoded once per version and machine under ``cache_root``.

    Shards are streamed a record batch at a time, so memory stays flat whatever the version's
    size. Concurrent callers (the ranks of one node) take a file lock: one decodes, the others
    wait and open its result. The folder is named by the version and its commit token, so a
    cache never serves another store's namesake."""
    import fcntl

    if not is_tokenized(manifest):
        raise ValueError(f"{manifest.ref} holds no token ids (columns {[c['name'] for c in manifest.schema_]}); "
                         "tokenize it first: datagen run tokenize --set input=" + manifest.ref)
    key = hashlib.sha256(json.dumps([FORMAT, manifest.dataset, manifest.id, manifest.commit_token]).encode())
    root = Path(cache_root)
    out = root / f"{manifest.dataset}-{manifest.id}-{key.hexdigest()[:12]}"
    if (out / "meta.json").is_file():
        return out
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{out.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (out / "meta.json").is_file():  # another rank decoded it while we waited
            return out
        tmp = out.with_name(out.name + f".tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        n, n_tok, longest = 0, 0, 0
        with open(tmp / "tokens.bin", "wb") as ft, open(tmp / "trained.bin", "wb") as fm, \
                open(tmp / "offsets.bin", "wb") as fo:
            fo.write(np.zeros(1, np.int64).tobytes())
            for batch in store.iter_batches(manifest, columns=list(TOKEN_COLUMNS), batch_size=1024):
                ids, mask = batch.column(0), batch.column(1)
                lens = ids.value_lengths().to_numpy(zero_copy_only=False).astype(np.int64)
                if not np.array_equal(lens, mask.value_lengths().to_numpy(zero_copy_only=False)):
                    raise ValueError(f"{manifest.ref}: input_ids and assistant_mask differ in length in a row")
                ft.write(ids.flatten().to_numpy(zero_copy_only=False).astype(np.uint32, copy=False).tobytes())
                fm.write(mask.flatten().to_numpy(zero_copy_only=False).astype(np.uint8, copy=False).tobytes())
                fo.write((n_tok + np.cumsum(lens)).tobytes())
                n, n_tok = n + len(lens), n_tok + int(lens.sum())
                longest = max(longest, int(lens.max(initial=0)))
        if n == 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise ValueError(f"{manifest.ref} is empty: nothing to train on")
        cfg, st = manifest.config, manifest.stats.get("tokenize", {})
        meta = {"format": FORMAT, **{k: cfg.get(k) for k in ("template_name", "template_sha256", "tokenizer_sha256",
                                                             "max_length", "truncate")},
                "source": manifest.ref, "samples": n, "tokens": n_tok, "longest": longest,
                "dropped_too_long": int(st.get("dropped_too_long", 0))}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    log.info("tokenised version %s decoded to %s (%d samples, %d tokens)", manifest.ref, out, n, n_tok)
    return out


@dataclass
class TokenizedSet:
    """A tokenised set opened memory-mapped; samples ``sample_ids`` of it (all by default)."""

    path: Path
    tokens: np.ndarray
    trained: np.ndarray
    offsets: np.ndarray
    meta: dict[str, Any]

    @classmethod
    def open(cls, path: str | os.PathLike) -> TokenizedSet:
        p = Path(path)
        meta = json.loads((p / "meta.json").read_text())
        return cls(p, np.memmap(p / "tokens.bin", dtype=np.uint32, mode="r"),
                   np.memmap(p / "trained.bin", dtype=np.uint8, mode="r"),
                   np.memmap(p / "offsets.bin", dtype=np.int64, mode="r"), meta)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def row(self, sample_ids: np.ndarray) -> PackedRow:
        """The samples ``sample_ids`` packed into one row (positions restart, the first
        token of each sample is never a target)."""
        ids, labels, pos, lens = [], [], [], []
        for i in sample_ids:
            a, b = int(self.offsets[i]), int(self.offsets[i + 1])
            t = self.tokens[a:b].astype(np.int64)
            lab = np.where(self.trained[a:b] != 0, t, IGNORE)
            lab[0] = IGNORE
            ids.append(t)
            labels.append(lab)
            pos.append(np.arange(b - a, dtype=np.int64))
            lens.append(b - a)
        # numpy arrays in the row: collate copies them into the batch without Python lists
        return PackedRow(np.concatenate(ids), np.concatenate(labels), np.concatenate(pos), lens)


def pack_plan(lengths: np.ndarray, max_length: int, *, packing: bool = True) -> np.ndarray:
    """Greedy in-order packing of samples with ``lengths`` into rows of at most
    ``max_length`` tokens: ``starts`` with ``starts[k]:starts[k+1]`` the sample
    positions of row k (``len(lengths) + 1`` boundaries at most). O(n) time, 8
    bytes per row."""
    n = len(lengths)
    if not packing:
        return np.arange(n + 1, dtype=np.int64)
    starts = array.array("q", [0])  # 8 bytes a row, not a Python int object each
    used = 0
    for base in range(0, n, 65536):  # a chunk at a time: no list of n Python ints
        for j, k in enumerate(np.asarray(lengths[base: base + 65536]).tolist()):
            if used + k > max_length and used:
                starts.append(base + j)
                used = 0
            used += k
    starts.append(n)
    return np.frombuffer(starts, dtype=np.int64).copy()
