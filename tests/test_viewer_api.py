"""The viewer's JSON API and pages in-process (FastAPI's test client over a real
store): filters, pagination, one sample, diff, errors. The browser test
(test_viewer_browser.py) covers the same app end to end in Chromium."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from datagen.store import Store
from datagen.viewer.app import create_app


def _verdicts(outcome: str) -> str:
    return json.dumps({"math": {"outcome": outcome, "score": 1.0 if outcome == "correct" else 0.0, "detail": "d"}})


def _row(i: int) -> dict:
    outcome = ["correct", "incorrect", "unparseable", "timeout"][i % 4]
    return {
        "problem_id": f"p{i // 2}", "sample_id": f"p{i // 2}:{i % 2}", "source": "t",
        "domain": "code" if i % 3 == 0 else "math", "language": "en",
        "prompt": f"Compute {i} (a+b)*c?" if i != 7 else "Needle [x] in a haystack",
        "completion": f"<think>step {i}</think>answer {i}", "reasoning": f"step {i}", "summary": f"answer {i}",
        "completion_tokens": 10 + i, "verdicts": _verdicts(outcome), "accepted": outcome == "correct",
        "drop": None if i % 5 else "length:truncated",
    }


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("viewer") / "store")
    store = Store(root)
    w = store.writer("gens", stage="filter", batch_rows=16, shard_bytes=1)  # several shards
    w.write([_row(i) for i in range(60)])
    a = w.commit(stats={"outcomes": {"math": {"correct": 15, "incorrect": 15, "unparseable": 15, "timeout": 15}}})
    w = store.writer("gens", stage="filter", parents=[a.ref])
    w.write([_row(i) for i in range(10, 70)])
    b = w.commit()
    with TestClient(create_app(root)) as c:
        c.refs = (a.ref, b.ref)
        yield c


def _rows(client, ref, *filters, **params):
    r = client.get(f"/api/versions/{ref}/rows", params={"filter": list(filters), **params})
    assert r.status_code == 200, r.text
    return r.json()


def test_datasets_versions_and_version(client):
    a, b = client.refs
    names = [d["name"] for d in client.get("/api/datasets").json()]
    assert names == ["gens"]
    versions = client.get("/api/datasets/gens/versions").json()
    assert [v["ref"] for v in versions] == [b, a]  # newest first
    v = client.get("/api/versions/gens@latest").json()
    assert v["summary"]["ref"] == b and v["summary"]["tags"] == ["latest"] and v["rows"] == 60
    assert any(p.endswith("/plots/lengths.png") for p in v["plots"])
    assert client.get(v["plots"][0]).headers["content-type"] == "image/png"


@pytest.mark.parametrize("filters, expected", [
    (["drop=length:truncated"], [i for i in range(60) if i % 5 == 0]),
    (["drop=kept"], [i for i in range(60) if i % 5]),
    (["outcome=timeout"], [i for i in range(60) if i % 4 == 3]),
    (["outcome=math:correct", "domain=code"], [i for i in range(60) if i % 4 == 0 and i % 3 == 0]),
    (["accepted=false", "drop=dropped"], [i for i in range(60) if i % 4 and i % 5 == 0]),
    (["column=completion_tokens", "value=17"], [7]),
    (["q=needle [X]"], [7]),  # case-insensitive, regex characters taken literally
    (["q=(a+b)*c"], [i for i in range(60) if i != 7]),
])
def test_filters_select_exactly_the_matching_rows(client, filters, expected):
    a, _ = client.refs
    got = _rows(client, a, *filters, limit=200, columns=["sample_id", "completion_tokens"])
    assert got["total"] == len(expected)
    assert sorted(r["completion_tokens"] - 10 for r in got["rows"]) == expected


def test_pages_walk_the_filtered_rows_in_order(client):
    a, _ = client.refs
    everything = _rows(client, a, "drop=kept", limit=200, columns=["sample_id"])["rows"]
    pages = [_rows(client, a, "drop=kept", offset=o, limit=7, columns=["sample_id"]) for o in range(0, 56, 7)]
    assert [r for p in pages for r in p["rows"]] == everything and all(p["total"] == 48 for p in pages)
    assert _rows(client, a, limit=10_000)["limit"] == 200  # clipped, not refused


@pytest.mark.parametrize("query, message", [
    ({"filter": ["bogus=1"]}, "unknown filter"),
    ({"filter": ["drop"]}, "KEY=VALUE"),
    ({"filter": ["outcome=maybe"]}, "outcome 'maybe'"),
    ({"filter": ["accepted=yes"]}, "accepted='yes'"),
    ({"filter": ["column=nope", "value=1"]}, "no column 'nope'"),
    ({"filter": ["value=1"]}, "needs column"),
    ({"offset": -1}, "offset must be"),
])
def test_bad_filters_are_400_with_a_message(client, query, message):
    a, _ = client.refs
    r = client.get(f"/api/versions/{a}/rows", params=query)
    assert r.status_code == 400 and message in r.json()["error"]


def test_sample_page_and_errors(client):
    a, _ = client.refs
    page = client.get(f"/v/{a}/sample/p3:1")
    assert page.status_code == 200
    assert "step 7" in page.text and 'id="reasoning"' in page.text and "outcome-timeout" in page.text
    assert client.get(f"/v/{a}/sample/nope").status_code == 404
    assert client.get("/v/gens@nope/").status_code == 404
    assert client.get("/api/versions/Bad..Name@x").status_code in (400, 404)
    assert client.get(f"/v/{a}", follow_redirects=False).status_code == 308


def test_diff_counts_rows_added_and_removed_by_key(client):
    a, b = client.refs
    d = client.get("/api/diff", params={"a": a, "b": b}).json()
    # a has rows 0..59, b rows 10..69: sample ids of 60..69 added, 0..9 removed.
    assert d["added"]["count"] == 10 and d["removed"]["count"] == 10
    assert "p0:0" in d["removed"]["keys"] and "p34:1" in d["added"]["keys"]
    html = client.get("/diff", params={"a": a, "b": b}).text
    assert 'id="added">10<' in html and 'id="removed">10<' in html
