"""Plots made at commit (issue 19): each kind appears exactly when the version
holds what it shows, is a real PNG beside the card, and is linked from it."""

from __future__ import annotations

import pyarrow as pa
import pytest

from datagen.store import Store


def _plots(store: Store, m) -> set[str]:
    keys = store.objects.list_keys(f"{m.dataset}/{m.id}/plots")
    for k in keys:
        assert store.objects.get_bytes(k)[:8] == b"\x89PNG\r\n\x1a\n", k
    card = store.objects.get_bytes(f"{m.dataset}/{m.id}/README.md").decode()
    names = {k.rsplit("/", 1)[1][:-4] for k in keys}
    for n in names:
        assert f"(plots/{n}.png)" in card
    return names


def _record(i: int, **extra) -> dict:
    return {"problem_id": f"p{i}", "sample_id": f"p{i}:0", "source": "t", "domain": ["math", "code"][i % 2],
            "language": "en", "prompt": "q", **extra}


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "store")


def test_filtered_samples_get_lengths_drops_and_outcomes(store):
    w = store.writer("filtered", stage="filter")
    w.write([_record(i, completion_tokens=10 * i, accepted=i % 3 == 0, drop=None if i % 4 else "length:truncated")
             for i in range(40)])
    m = w.commit(stats={"verify": {"outcomes": {"math": {"correct": 7, "incorrect": 13}, "code": {"timeout": 2}}}})
    assert _plots(store, m) == {"lengths", "drops", "outcomes"}


def test_problems_get_no_plot(store):
    w = store.writer("problems", stage="import")
    w.write([_record(i) for i in range(5)])
    assert _plots(store, w.commit(stats={"import": {"rows": 5}})) == set()


def test_select_mix_and_training_runs(store):
    w = store.writer("selected", stage="select")
    w.write([_record(i, pass_rate=i / 10) for i in range(10)])
    hist = {f"{a / 10:.1f}-{(a + 1) / 10:.1f}": a for a in range(10)}
    assert "pass_rate" in _plots(store, w.commit(stats={"select": {"pass_rate_histogram": hist}}))

    w = store.writer("sft-mix", stage="mix")
    w.write([_record(i) for i in range(4)])
    m = w.commit(stats={"mix": {"by_kind": {"reasoning": 3, "non_reasoning": 1}, "by_domain": {"math": 4}}})
    assert _plots(store, m) == {"composition"}

    w = store.writer("grpo-run", stage="grpo")
    w.write(pa.table({"step": [1, 2, 3], "loss": [0.5, 0.4, 0.3], "reward/mean": [0.1, 0.3, None],
                      "kl": [0.0, 0.01, 0.02], "completion_length/mean": [30.0, 28.0, 25.0]}))
    assert _plots(store, w.commit()) == {"training"}
