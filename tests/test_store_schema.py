"""One schema per version, and a card every reader loads (issue 19).

A column that is null in every row of a shard used to be written with Arrow
type ``null``; when that shard sorted first, polars, ``datasets`` and duckdb
failed on the whole version. Mix wrote ``large_string`` where verify wrote
``string``. And ``datasets.load_dataset(<version folder>)`` picked the JSON
builder (it found ``manifest.json``) and failed.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datagen.store import Store
from datagen.store.writer import SchemaMismatch


def _row(i: int, **extra) -> dict:
    return {"problem_id": f"p{i}", "sample_id": f"p{i}:0", "source": "t", "domain": "math", "language": "en",
            "prompt": f"what is {i}+{i}?", "completion": f"<think>so {i}</think>{2 * i}", **extra}


def _two_shard_version(store: Store):
    """First shard: optional columns null in every row (and no `accepted`);
    second shard: the same columns with values, written from a polars frame
    (large_string)."""
    w = store.writer("gens", stage="generate")
    w.write_shard("part-00000", [_row(i, generation_error=None, prompt_tokens=None, extra_note=None)
                                 for i in range(3)])
    from datagen.records import to_arrow

    # Through polars, as mix writes: every string column becomes large_string.
    second = pl.from_arrow(to_arrow([_row(i, generation_error="backend timeout", prompt_tokens=7, extra_note="x")
                                     for i in range(3, 6)]))
    assert second.to_arrow().schema.field("prompt").type == pa.large_string()
    w.write_shard("part-00001", second)
    return w.commit()


def test_first_shard_all_null_optional_columns_load_in_every_reader(tmp_path):
    store = Store(tmp_path / "store")
    m = _two_shard_version(store)
    files = store.uris(m)
    types = {f["name"]: f["type"] for f in m.schema_}
    assert types["generation_error"] == "string" and types["prompt_tokens"] == "int64"
    assert types["extra_note"] == "string" and types["prompt"] == "string"
    for path in files:
        schema = pq.read_schema(path)
        assert not any(pa.types.is_null(f.type) or pa.types.is_large_string(f.type) for f in schema), schema

    # polars, on the files as they are (no datagen in between)
    df = pl.scan_parquet(files).collect()
    assert df.height == 6 and df["prompt_tokens"].to_list() == [None] * 3 + [7] * 3

    # datasets' parquet builder
    import datasets

    ds = datasets.load_dataset("parquet", data_files=files, split="train", cache_dir=str(tmp_path / "hf"))
    assert ds.num_rows == 6 and ds["generation_error"][3] == "backend timeout"

    # duckdb
    import duckdb

    got = duckdb.sql(f"select count(*), count(prompt_tokens), max(generation_error) from read_parquet({files!r})")
    assert got.fetchall() == [(6, 3, "backend timeout")]

    # datasets on the version folder itself: the card's front matter names the shards
    folder = Path(store.objects.path(f"{m.dataset}/{m.id}"))
    card = (folder / "README.md").read_text()
    assert card.startswith("---\n") and "data_files" in card and "size_categories" in card
    ds = datasets.load_dataset(str(folder), split="train", cache_dir=str(tmp_path / "hf2"))
    assert ds.num_rows == 6 and sorted(ds["sample_id"]) == sorted(df["sample_id"].to_list())


def test_version_folder_loads_with_a_parent_shard_reused_by_reference(tmp_path):
    import datasets

    store = Store(tmp_path / "store")
    parent = _two_shard_version(store)
    w = store.writer("gens2", stage="mix", parents=[parent.ref])
    w.add_existing_shard(parent.shards[0])
    w.write_shard("part-00001", [_row(9, generation_error=None, prompt_tokens=3, extra_note=None)])
    child = w.commit()
    folder = Path(store.objects.path(f"{child.dataset}/{child.id}"))
    ds = datasets.load_dataset(str(folder), split="train", cache_dir=str(tmp_path / "hf"))
    assert ds.num_rows == 4


def test_commit_refuses_shards_that_disagree_on_a_type(tmp_path):
    store = Store(tmp_path / "store")
    w = store.writer("gens", stage="generate")
    w.write_shard("part-00000", [_row(0, score=1.5)])
    # A shard written by something else (an older writer, another tool) with
    # the same column as a string: upload it and its marker by hand.
    table = pa.table({"problem_id": ["p1"], "score": ["high"]})
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "part-00001.parquet"
        pq.write_table(table, local)
        w._upload("part-00001", local, 1)
    with pytest.raises(SchemaMismatch, match=r"column 'score'.*double.*string"):
        w.commit()
    assert not store.objects.exists(f"gens/{w.version}/manifest.json")


def test_commit_refuses_a_null_typed_shard(tmp_path):
    store = Store(tmp_path / "store")
    w = store.writer("gens", stage="generate")
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "part-00000.parquet"
        pq.write_table(pa.table({"problem_id": ["p1"], "prompt_tokens": pa.nulls(1)}), local)
        w._upload("part-00000", local, 1)
    with pytest.raises(SchemaMismatch, match="prompt_tokens.*null"):
        w.commit()


def test_streaming_writer_keeps_one_schema_across_batches(tmp_path):
    store = Store(tmp_path / "store")
    w = store.writer("gens", stage="generate", batch_rows=2, shard_bytes=1)  # one shard per batch
    w.write([_row(0, prompt_tokens=None), _row(1, prompt_tokens=None), _row(2, prompt_tokens=5), _row(3)])
    m = w.commit()
    assert len(m.shards) == 2
    schemas = [pq.read_schema(u) for u in store.uris(m)]
    assert schemas[0].field("prompt_tokens").type == schemas[1].field("prompt_tokens").type == pa.int64()


def test_commit_accepts_shards_that_differ_only_in_column_order_or_nullability(tmp_path):
    store = Store(tmp_path / "store")
    w = store.writer("gens", stage="generate")
    w.write_shard("part-00000", pa.table({"problem_id": ["a"], "score": [1.0]}))
    strict = pa.schema([pa.field("score", pa.float64(), nullable=False), pa.field("problem_id", pa.string())])
    w.write_shard("part-00001", pa.table({"score": [2.0], "problem_id": ["b"]}, schema=strict))
    m = w.commit()
    assert pl.scan_parquet(store.uris(m)).collect().sort("problem_id")["score"].to_list() == [1.0, 2.0]
