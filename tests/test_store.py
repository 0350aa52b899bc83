"""The versioned store, on a local root and on a real S3 server (moto, loopback)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import polars as pl
import pytest

from datagen.records import problem_id_for
from datagen.store import (
    AlreadyExists,
    Conflict,
    Store,
    StoreError,
    VersionNotFound,
)


def _rows(n, start=0, text="x"):
    out = []
    for i in range(start, start + n):
        prompt = f"problem {i} {text}"
        pid = problem_id_for("t", prompt)
        out.append(
            {"problem_id": pid, "sample_id": pid, "source": "t", "domain": "math", "language": "en",
             "prompt": prompt, "answer": str(i)}
        )
    return out


def test_round_trip_and_lazy_read(any_root):
    store = Store(any_root)
    w = store.writer("probs", stage="import", config={"k": 1})
    w.write(_rows(50))
    m = w.commit(stats={"import": {"accepted": 50}})
    assert m.rows == 50 and len(m.shards) == 1
    assert m.shards[0].sha256 and m.shards[0].rows == 50
    again = Store(any_root).resolve("probs")
    assert again.id == m.id and again.stats == {"import": {"accepted": 50}}
    df = store.scan("probs").filter(pl.col("answer") == "7").collect()
    assert df["prompt"].to_list() == ["problem 7 x"]
    assert [r["answer"] for r in store.read_rows(f"probs@{m.id}")][:3] == ["0", "1", "2"]
    assert "code_revision" in json.loads(m.to_json()) and m.code_revision


def test_polars_lazy_read_from_s3_without_listing(s3_root):
    store = Store(s3_root)
    w = store.writer("probs", stage="import", shard_bytes=1)  # one shard per batch
    w.batch_rows = 10
    w.write(_rows(35))
    m = w.commit()
    assert len(m.shards) == 4 and m.rows == 35
    assert all(u.startswith("s3://") for u in store.uris(m))
    lf = store.scan(m)
    assert lf.select(pl.len()).collect().item() == 35
    assert lf.filter(pl.col("answer").cast(pl.Int64) >= 30).collect().height == 5


def test_hf_datasets_loads_the_same_shards(any_root):
    store = Store(any_root)
    w = store.writer("probs", stage="import")
    w.write(_rows(12))
    w.commit()
    ds = store.load_hf("probs")
    assert ds.num_rows == 12 and ds[0]["prompt"] == "problem 0 x"


def test_second_commit_of_same_version_is_refused(any_root):
    store = Store(any_root)
    w1 = store.writer("probs", stage="import", version="20260101T000000Z-aaaaaaaa")
    w1.write(_rows(3))
    w1.commit()
    w2 = store.writer("probs", stage="import", version="20260101T000000Z-aaaaaaaa")
    with pytest.raises(AlreadyExists):
        w2.commit()
    assert store.resolve("probs@20260101T000000Z-aaaaaaaa").rows == 3


def test_stale_compare_and_swap_is_refused(any_root):
    store = Store(any_root)
    for n in (2, 4):
        w = store.writer("probs", stage="import")
        w.write(_rows(n))
        w.commit()
    v_old, v_new = [m.id for m in store.versions("probs")]
    store.move_ref("probs", "gold", v_old, expected_etag=None)  # create
    _, etag = store.get_ref("probs", "gold")
    store.move_ref("probs", "gold", v_new, expected_etag=etag)  # a fresh writer
    with pytest.raises(Conflict):
        store.move_ref("probs", "gold", v_old, expected_etag=etag)  # stale etag
    with pytest.raises(Conflict):
        store.move_ref("probs", "gold", v_old, expected_etag=None)  # "must not exist"
    assert store.resolve("probs@gold").id == v_new


def test_unknown_refs_say_what_is_missing(tmp_path):
    store = Store(tmp_path)
    with pytest.raises(VersionNotFound, match="has no versions"):
        store.resolve("nothing")
    w = store.writer("probs", stage="import")
    w.write(_rows(1))
    w.commit()
    with pytest.raises(VersionNotFound, match="no version or tag 'nope'"):
        store.resolve("probs@nope")


def test_streaming_writer_bounds_shards(tmp_path):
    store = Store(tmp_path)
    w = store.writer("big", stage="t", shard_bytes=64 * 1024, batch_rows=500)
    rows = _rows(5000)
    for r in rows:
        r["completion"] = os.urandom(100).hex()  # incompressible, ~200 B a row
    w.write(rows)
    m = w.commit()
    assert m.rows == 5000 and len(m.shards) > 3
    assert max(s.bytes for s in m.shards) < 64 * 1024 * 3
    assert store.scan(m).select(pl.col("answer").cast(pl.Int64).sum()).collect().item() == sum(range(5000))


def test_resume_by_run_key_skips_done_shards(tmp_path):
    store = Store(tmp_path)
    w = store.writer("gen", stage="generate", run_key="abc123")
    w.write_shard("shard-00000", _rows(3))
    assert w.shard_done("shard-00000") and not w.shard_done("shard-00001")
    # a rerun of the same stage on the same inputs finds the same version
    w2 = store.writer("gen", stage="generate", run_key="abc123")
    assert w2.version == w.version and w2.shard_done("shard-00000")
    w2.write_shard("shard-00001", _rows(2, start=3))
    m = w2.commit()
    assert m.rows == 5
    w3 = store.writer("gen", stage="generate", run_key="abc123")
    assert w3.committed is not None and w3.committed.id == m.id


def test_reuse_parent_shards_by_reference(tmp_path):
    store = Store(tmp_path)
    w = store.writer("probs", stage="import")
    w.write(_rows(4))
    parent = w.commit()
    w2 = store.writer("probs2", stage="copy", parents=[parent.ref])
    for s in parent.shards:
        w2.add_existing_shard(s)
    w2.write(_rows(1, start=100))
    child = w2.commit()
    assert child.rows == 5 and child.shards[0].path == parent.shards[0].path
    assert store.scan(child).collect().height == 5
    assert [m.ref for m in store.lineage(child)] == [child.ref, parent.ref]


_WRITER = textwrap.dedent(
    """
    import sys, time
    from datagen.store import Store
    root, name, n, sleep = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    rows = [{"problem_id": str(i), "sample_id": str(i), "source": "t", "domain": "math",
             "language": "en", "prompt": "p%d" % i} for i in range(n)]
    store = Store(root)
    w = store.writer(name, stage="test", shard_bytes=1, batch_rows=10)
    for i in range(0, n, 10):
        w.write(rows[i:i + 10])
        time.sleep(sleep)
    m = w.commit()
    print(m.id, flush=True)
    """
)


def _spawn_writer(root, name, n, sleep):
    return subprocess.Popen(
        [sys.executable, "-c", _WRITER, root, name, str(n), str(sleep)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy(),
    )


def test_two_concurrent_writer_processes_make_two_intact_versions(any_root):
    procs = [_spawn_writer(any_root, "shared", 60, 0.01) for _ in range(2)]
    ids = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        ids.append(out.strip())
    store = Store(any_root)
    versions = store.versions("shared")
    assert sorted(m.id for m in versions) == sorted(ids) and len(set(ids)) == 2
    for m in versions:
        assert m.rows == 60 and store.scan(m).collect().height == 60
    assert store.resolve("shared").id == max(ids)  # latest only moves forward


def test_writer_killed_midway_leaves_nothing_visible(any_root):
    p = _spawn_writer(any_root, "killed", 10_000, 0.05)
    store = Store(any_root)
    deadline = time.time() + 60
    # wait until it has uploaded some shards, then kill it hard
    while time.time() < deadline:
        if any(k.endswith(".parquet") for k in store.objects.list_keys("killed")):
            break
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert store.versions("killed") == []
    with pytest.raises(VersionNotFound):
        store.resolve("killed")
    w = store.writer("killed", stage="test")
    w.write(_rows(3))
    m = w.commit()
    assert [v.id for v in store.versions("killed")] == [m.id] and store.resolve("killed").rows == 3


def test_s3_errors_say_what_is_wrong(s3_server):
    with pytest.raises(StoreError, match="bucket 'no-such-bucket' does not exist"):
        Store("s3://no-such-bucket/x").objects.put_bytes("a", b"1")


def test_s3_bad_endpoint_is_explained(monkeypatch, s3_server):
    from datagen.store.objects import RetryPolicy, S3Objects

    objs = S3Objects("s3://b/x", endpoint_url="http://127.0.0.1:9", retry=RetryPolicy(sleep=lambda s: None))
    with pytest.raises(StoreError, match="cannot connect to the S3 endpoint http://127.0.0.1:9"):
        objs.get_bytes("k")


def test_s3_transient_errors_are_retried_and_counted(s3_root):
    from botocore.exceptions import ClientError

    from datagen.store.objects import RetryPolicy

    store = Store(s3_root)
    objs = store.objects
    objs.retry = RetryPolicy(sleep=lambda s: None)
    real = objs.client.put_object
    failures = {"n": 0}

    def flaky(**kw):
        if failures["n"] < 2:
            failures["n"] += 1
            raise ClientError({"Error": {"Code": "SlowDown", "Message": "slow down"},
                               "ResponseMetadata": {"HTTPStatusCode": 503}}, "PutObject")
        return real(**kw)

    objs.client.put_object = flaky
    objs.put_bytes("k", b"v")
    assert objs.retries == 2 and objs.get_bytes("k") == b"v"

    def denied(**kw):
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"},
                           "ResponseMetadata": {"HTTPStatusCode": 403}}, "PutObject")

    objs.client.put_object = denied
    with pytest.raises(StoreError, match="access denied"):
        objs.put_bytes("k2", b"v")
    assert objs.retries == 2  # not retried


def test_a_commit_cut_before_latest_moved_is_still_visible_and_a_rerun_repairs_it(any_root):
    """The manifest is the commit; `latest` follows. If the writer dies in between,
    readers of NAME still find the version, and the rerun (same run key) moves `latest`."""
    store = Store(any_root)
    w = store.writer("probs", stage="import", run_key="k")
    w.write(_rows(3))
    w.commit(move_refs=())  # as if cut right after the manifest PUT
    assert store.get_ref("probs", "latest") == (None, None)
    assert store.resolve("probs").id == w.version
    again = Store(any_root).writer("probs", stage="import", run_key="k")
    assert again.committed is not None
    assert store.get_ref("probs", "latest")[0] == w.version


def test_streaming_writer_converts_by_text_size_not_only_row_count(tmp_path):
    """Long rows are converted (and written) when the buffer holds ``batch_bytes`` of text,
    long before ``batch_rows``: R1-shaped rows must not sit 8192 at a time in memory."""
    store = Store(tmp_path)
    w = store.writer("long", stage="t", shard_bytes=1, batch_bytes=10_000)  # one shard per conversion
    w.write([{**r, "completion": "x" * 3_000} for r in _rows(10)])
    m = w.commit()
    assert [s.rows for s in m.shards] == [4, 4, 2]  # 4 x ~3 KB reaches 10 KB
    assert store.scan(m).select(pl.col("completion").str.len_bytes().sum()).collect().item() == 30_000


def test_a_failed_background_write_fails_the_writer_and_commits_nothing(tmp_path):
    """Parquet writes run on the writer's own thread: a batch that cannot be written (a null in
    a required column) raises in the caller — at the next write or at commit — and no version
    becomes visible."""
    import pyarrow as pa

    store = Store(tmp_path)
    w = store.writer("bad", stage="t")
    w.write([{k: v for k, v in r.items() if k != "problem_id"} for r in _rows(3)])
    with pytest.raises(pa.ArrowInvalid, match="problem_id"):
        w.commit()
    w.abort()
    assert store.versions("bad") == []
