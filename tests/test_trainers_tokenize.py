"""Tokenise once (issue 18): token ids + assistant masks on disk, keyed by data and
chat template, read memory-mapped; packing plans from lengths alone."""

from __future__ import annotations

import json

import numpy as np
import pytest

from datagen.tinymodel import build_tokenizer
from trainers.data import IGNORE, pack, tokenize_chat
from trainers.tokenize import TokenizedSet, pack_plan, tokenize_stage

TOK = build_tokenizer()
ROWS = [{"messages": [{"role": "user", "content": f"q{i}" * (1 + i % 5)}, {"role": "assistant", "content": "a" * i}]}
        for i in range(1, 40)]


def test_the_set_on_disk_equals_tokenising_in_memory(tmp_path):
    path = tokenize_stage(TOK, source=ROWS, max_length=48, cache_root=tmp_path)
    ts = TokenizedSet.open(path)
    samples = [tokenize_chat(TOK, r["messages"]) for r in ROWS]
    kept = [s for s in samples if len(s.input_ids) <= 48]
    assert len(ts) == len(kept) and ts.meta["dropped_too_long"] == len(samples) - len(kept) > 0
    meta = json.loads((path / "meta.json").read_text())
    assert len(meta["template_sha256"]) == 64 and meta["template_name"]
    # packed rows from the memmap equal the in-memory packer's rows
    starts = pack_plan(ts.lengths(), 48)
    rows = [ts.row(np.arange(starts[k], starts[k + 1])) for k in range(len(starts) - 1)]
    ref = pack(kept, 48)
    assert [r.seq_lens for r in rows] == [r.seq_lens for r in ref]
    for a, b in zip(rows, ref):
        assert list(a.input_ids) == b.input_ids and list(a.labels) == b.labels and list(a.position_ids) == b.position_ids
    assert IGNORE in rows[0].labels


def test_cached_by_data_and_template(tmp_path):
    first = tokenize_stage(TOK, source=ROWS, max_length=48, cache_root=tmp_path)
    (first / "tokens.bin").touch()
    mtime = (first / "tokens.bin").stat().st_mtime_ns
    assert tokenize_stage(TOK, source=ROWS, max_length=48, cache_root=tmp_path) == first
    assert (first / "tokens.bin").stat().st_mtime_ns == mtime  # not rewritten
    other = build_tokenizer(prefill_think=True)  # another chat template
    assert tokenize_stage(other, source=ROWS, max_length=48, cache_root=tmp_path) != first
    assert tokenize_stage(TOK, source=ROWS[:-1], max_length=48, cache_root=tmp_path) != first


def test_too_long_fails_when_asked_and_empty_fails(tmp_path):
    with pytest.raises(ValueError, match="max_length"):
        tokenize_stage(TOK, source=ROWS, max_length=48, truncate="error", cache_root=tmp_path)
    with pytest.raises(ValueError, match="'messages'"):
        tokenize_stage(TOK, source=[{"text": "x"}], max_length=48, cache_root=tmp_path)


def test_streams_a_parquet_file(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    f = tmp_path / "d.parquet"
    pq.write_table(pa.table({"messages": [json.dumps(r["messages"]) for r in ROWS]}), f)
    ts = TokenizedSet.open(tokenize_stage(TOK, path=str(f), max_length=4096, cache_root=tmp_path / "c"))
    assert len(ts) == len(ROWS)
    assert list(ts.tokens[ts.offsets[3]: ts.offsets[4]]) == tokenize_chat(TOK, ROWS[3]["messages"]).input_ids
