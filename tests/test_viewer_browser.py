"""The viewer in a real browser (issue 19): ``datagen datasets serve`` as a
subprocess over a store written by the real pipeline flows, once on a local
root and once on S3 (moto server on loopback), driven by Playwright with
Debian's headless Chromium.

A user opens the index, a version page (its plots load, its lineage graph
links parent and children), filters samples by drop reason, opens one sample
and reads its reasoning and verdicts. Screenshots are kept under
``test-artifacts/viewer/`` (git-ignored) for a person to look at.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from datagen.files import write_records
from datagen.problems import arithmetic_problems
from datagen.store import Store
from datagen.tinymodel import save_tiny

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "viewer"

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (make test apt-installs it)"),
    pytest.mark.xdist_group("viewer-browser"),
]


def _run_pipeline(tmp, root: str) -> dict:
    """Run the real pipeline into ``root`` (tiny random model; completions count
    as reasoning because the template pre-fills <think>)."""
    from datagen.config import build
    from flows.pipeline import PipelineParams, pipeline_flow

    model = str(save_tiny(tmp / "model"))
    problems = tmp / "problems.jsonl"
    write_records(problems, arithmetic_problems(6, seed=0, max_ops=1, max_operand=9))
    params = build(PipelineParams, {
        "root": root,
        "ingest": {"file": str(problems)},
        "generate": {"shard_size": 3, "generation": {
            "backend": {"kind": "hf", "model": model}, "n": 2, "k": 0, "exemplars": None,
            "template": "r1_zero.v1", "think_prefilled": True, "sampling": {"max_tokens": 12, "seed": 0}}},
        "filter": {"filters": {"language": {"enabled": False}}},
        "select": {"select": {"k": 1}},
    })
    return pipeline_flow(params)


@pytest.fixture(scope="module")
def local_pipeline(tmp_path_factory, prefect_harness):
    tmp = tmp_path_factory.mktemp("viewer-local")
    root = str(tmp / "store")
    return root, _run_pipeline(tmp, root)


@pytest.fixture(scope="module")
def s3_pipeline(tmp_path_factory, prefect_harness, s3_server):
    """The same pipeline writing straight to a bucket on the loopback S3 server."""
    import uuid

    import boto3

    bucket = f"viewer-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket=bucket)
    root = f"s3://{bucket}/store"
    return root, _run_pipeline(tmp_path_factory.mktemp("viewer-s3"), root)


class Server:
    """``datagen datasets serve`` in a subprocess on a free loopback port."""

    def __init__(self, root: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "datagen", "datasets", "serve", "--root", root, "--port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ.copy(),
        )
        line = self.proc.stdout.readline()
        match = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
        if not match:
            self.stop()
            raise AssertionError(f"serve did not start: {line}{self.proc.stdout.read()}")
        self.url = match.group(1)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.mark.parametrize("where", ["local", "s3"])
def test_browse_a_pipeline_store(where, browser, request):
    root, out = request.getfixturevalue(f"{where}_pipeline")
    store = Store(root)
    filtered = store.resolve(out["filter"])
    drops = store.scan(filtered).group_by("drop").len().collect()
    reasons = {d: n for d, n in drops.iter_rows() if d}
    assert reasons, "the pipeline's filter dropped nothing: the drop-reason filter would test nothing"
    reason, n_dropped = max(reasons.items(), key=lambda kv: kv[1])

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    server = Server(root)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        # Index: every dataset the pipeline wrote, with its latest version.
        page.goto(server.url)
        for stage in ("ingest", "generate", "verify", "filter", "select", "mix"):
            name = out[stage].split("@")[0]
            assert page.locator("#datasets").get_by_role("link", name=name, exact=True).count() == 1, name
        page.screenshot(path=str(ARTIFACTS / f"{where}-1-index.png"), full_page=True)

        # Version page of the filtered version: plots load, lineage links parent and child.
        page.locator("#datasets").get_by_role("link", name=filtered.dataset, exact=True).click()
        page.get_by_role("link", name=filtered.id).click()
        page.wait_for_load_state("load")
        assert page.locator("main > h1").inner_text() == filtered.ref
        plots = page.locator(".plots img")
        assert plots.count() >= 2  # lengths and drops at least
        for i in range(plots.count()):
            assert plots.nth(i).evaluate("img => img.complete && img.naturalWidth > 100"), i
        graph = page.locator(".graph")
        verified = out["verify"]
        assert graph.get_by_role("link", name=verified.split("@")[0]).get_attribute("href") == \
            f"/v/{verified}/"
        children = {store.resolve(out["select"]).dataset, store.resolve(out["grpo_prompts"]).dataset}
        for child in children:
            assert graph.get_by_role("link", name=child).count() == 1, child
        page.screenshot(path=str(ARTIFACTS / f"{where}-2-version.png"), full_page=True)

        # Samples filtered by drop reason.
        page.get_by_role("link", name=re.compile(r"browse .* samples")).click()
        page.locator("select[name=drop]").select_option(reason)
        page.get_by_role("button", name="Filter").click()
        page.wait_for_load_state("load")
        assert f"of {n_dropped} matching" in page.locator("#count").inner_text()
        drop_cells = page.locator("#rows td.drop")
        assert drop_cells.count() == min(n_dropped, 25)
        assert set(drop_cells.all_inner_texts()) == {reason}
        page.screenshot(path=str(ARTIFACTS / f"{where}-3-rows-by-drop.png"), full_page=True)

        # One sample: reasoning (folded, then unfolded), verdicts, drop reason.
        link = page.locator("#rows td a").first
        sample_id = link.inner_text()
        link.click()
        page.wait_for_load_state("load")
        row = store.scan(filtered).filter(pl.col("sample_id") == sample_id).collect().row(0, named=True)
        assert row["reasoning"], "the sample should carry reasoning"
        reasoning = page.locator("#reasoning pre")
        assert not reasoning.is_visible()  # folded
        page.locator("#reasoning summary").click()
        assert reasoning.is_visible()
        assert reasoning.inner_text().strip() == row["reasoning"].strip()
        verdicts = page.locator("#verdicts tbody tr")
        assert verdicts.count() >= 1
        assert "math" in verdicts.first.inner_text()
        assert json.loads(row["verdicts"])["math"]["outcome"] in verdicts.first.inner_text()
        assert reason in page.locator("#drop").inner_text()
        page.screenshot(path=str(ARTIFACTS / f"{where}-4-sample.png"), full_page=True)
    finally:
        page.close()
        server.stop()
