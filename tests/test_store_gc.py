"""``datagen datasets gc`` and ``rm`` (issue 19), on a local root and on S3.

A real writer process is killed (SIGKILL) after uploading some shards; gc
must remove everything it left, and leave every committed version's shards
byte-identical (sha256), including a shard one version reuses from another.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap

import pytest

from datagen.cli.main import main
from datagen.store import Store

ROWS = [{"problem_id": f"p{i}", "sample_id": f"p{i}:0", "source": "t", "domain": "math", "language": "en",
         "prompt": f"q{i}"} for i in range(4)]

KILLED_WRITER = textwrap.dedent("""
    import sys, time
    from datagen.store import open_store
    rows = [{"problem_id": f"k{i}", "sample_id": f"k{i}:0", "source": "t", "domain": "math", "language": "en",
             "prompt": f"k{i}"} for i in range(3)]
    w = open_store(sys.argv[1]).writer("gens", stage="generate", run_key="killedrun")
    w.write_shard("part-00000", rows)
    w.write_shard("part-00001", rows)
    print(w.version, flush=True)
    time.sleep(600)
""")


def _hashes(store: Store) -> dict[str, str]:
    """sha256 of every shard every committed version lists, and of the manifests."""
    out = {}
    for name in store.datasets():
        for m in store.versions(name):
            for s in m.shards:
                out[s.path] = hashlib.sha256(store.objects.get_bytes(s.path)).hexdigest()
            key = f"{m.dataset}/{m.id}/manifest.json"
            out[key] = hashlib.sha256(store.objects.get_bytes(key)).hexdigest()
    return out


def _committed_store(root: str):
    store = Store(root)
    w = store.writer("gens", stage="generate")
    w.write_shard("part-00000", ROWS[:2])
    w.write_shard("part-00001", ROWS[2:])
    gens = w.commit()
    w = store.writer("mix", stage="mix", parents=[gens.ref])
    w.add_existing_shard(gens.shards[0])  # reused by reference, not copied
    w.write_shard("part-00000", ROWS[:1])
    mix = w.commit()
    return store, gens, mix


def _kill_a_writer(root: str) -> str:
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, root], stdout=subprocess.PIPE, text=True,
                            env=os.environ.copy())
    try:
        version = proc.stdout.readline().strip()
        assert version, "the writer died before writing its shards"
    finally:
        proc.kill()
        proc.wait()
    return version


def test_gc_removes_a_killed_writers_parts_and_nothing_committed(any_root, capsys):
    store, gens, mix = _committed_store(any_root)
    killed = _kill_a_writer(any_root)
    killed_keys = store.objects.list_keys(f"gens/{killed}")
    assert any("/data/" in k for k in killed_keys) and any("/markers/" in k for k in killed_keys)
    assert store.objects.exists("gens/_runs/killedrun.json")
    # A stray object inside a committed version (a retried upload the manifest never listed).
    stray = f"gens/{gens.id}/data/part-00007.parquet"
    store.objects.put_bytes(stray, store.objects.get_bytes(gens.shards[0].path))
    before = _hashes(store)
    refs_before = {name: store.tags(name) for name in store.datasets()}

    # Everything is younger than a 1 h grace period: a dry run and a real run remove nothing.
    assert main(["datasets", "gc", "--root", any_root, "--grace", "1h", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["removed"] == [] and f"gens/{killed}/markers/part-00000.json" in report["kept_young"]
    assert store.objects.list_keys(f"gens/{killed}") == killed_keys

    assert main(["datasets", "gc", "--root", any_root, "--grace", "0s", "--dry-run", "--json"]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert set(dry["removed"]) == set(killed_keys) | {stray, "gens/_runs/killedrun.json"}
    assert store.objects.list_keys(f"gens/{killed}") == killed_keys  # dry run: nothing gone

    assert main(["datasets", "gc", "--root", any_root, "--grace", "0s", "--json"]) == 0
    done = json.loads(capsys.readouterr().out)
    assert set(done["removed"]) == set(dry["removed"]) and done["bytes"] > 0
    assert store.objects.list_keys(f"gens/{killed}") == []
    assert not store.objects.exists(stray) and not store.objects.exists("gens/_runs/killedrun.json")

    fresh = Store(any_root)
    assert _hashes(fresh) == before
    assert {name: fresh.tags(name) for name in fresh.datasets()} == refs_before
    assert fresh.scan(mix.ref).collect().height == 3 and fresh.scan(gens.ref).collect().height == 4
    for m in (gens, mix):  # cards and plots stay
        assert fresh.objects.exists(f"{m.dataset}/{m.id}/README.md")

    # A second gc finds nothing.
    assert main(["datasets", "gc", "--root", any_root, "--grace", "0s", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["removed"] == []


def test_rm_deletes_a_version_and_refuses_one_still_reused(any_root, capsys):
    store, gens, mix = _committed_store(any_root)
    # Ids sort by creation second; give the newer version an id that sorts later.
    w = store.writer("gens", stage="generate", version=gens.id.split("-")[0] + "-ffffffff")
    w.write_shard("part-00000", ROWS)
    gens2 = w.commit()
    assert store.tags("gens")["latest"] == gens2.id

    assert main(["datasets", "rm", "--root", any_root, gens.ref]) == 2  # no --yes: shows, deletes nothing
    assert "add --yes" in capsys.readouterr().out
    assert main(["datasets", "rm", "--root", any_root, gens.ref, "--yes"]) == 2  # mix reuses a shard
    assert mix.ref in capsys.readouterr().err
    assert Store(any_root).resolve(gens.ref).id == gens.id

    before = _hashes(store)
    assert main(["datasets", "rm", "--root", any_root, gens2.ref, "--yes"]) == 0
    assert "latest -> " + gens.id in capsys.readouterr().out
    fresh = Store(any_root)
    assert [m.id for m in fresh.versions("gens")] == [gens.id]
    assert fresh.tags("gens")["latest"] == gens.id
    assert fresh.objects.list_keys(f"gens/{gens2.id}") == []
    assert _hashes(fresh) == {k: v for k, v in before.items() if gens2.id not in k}

    assert main(["datasets", "rm", "--root", any_root, mix.ref, "--yes"]) == 0
    assert main(["datasets", "rm", "--root", any_root, gens.ref, "--yes"]) == 0
    capsys.readouterr()
    fresh = Store(any_root)
    assert fresh.versions("gens") == [] and fresh.versions("mix") == []
    assert main(["datasets", "rm", "--root", any_root, "gens@" + gens.id, "--yes"]) == 2
    assert "no version or tag" in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["24", "1w", "soon"])
def test_gc_grace_must_have_a_unit(tmp_path, capsys, bad):
    assert main(["datasets", "gc", "--root", str(tmp_path), "--grace", bad]) == 2
    assert "--grace" in capsys.readouterr().err
