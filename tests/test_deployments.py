"""Deployments declared in the repo (flows/deploy.py) and scale-out across workers.

The plan tests need no server. The others run a real Prefect server (its own
PREFECT_HOME and SQLite database in a temp folder), register deployments
from this repository with ``python -m flows.deploy``, and let real process
workers (subprocesses) run them. Every process is stopped in a finally.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from datagen.config import ConfigError
from flows.deploy import DeploymentSpec, plan

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _demo_module():
    """scripts/scaleout_demo.py: its process handling is what the tests use too."""
    spec = importlib.util.spec_from_file_location("scaleout_demo", REPO / "scripts" / "scaleout_demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


demo = _demo_module()


def by_name(specs: list[DeploymentSpec]) -> dict[str, DeploymentSpec]:
    return {s.full_name: s for s in specs}


# -- the plan (no server) -------------------------------------------------------------------------


def test_plan_pipeline_runs_nightly_on_cpu_with_the_validated_config():
    spec = by_name(plan())["pipeline/pipeline-nightly"]
    assert (spec.pool, spec.cron, spec.timezone) == ("cpu", "0 2 * * *", "UTC")
    params = spec.parameters["params"]
    assert params["root"] == "s3://datagen-prod/store"
    assert params["generate"]["fan_out"] is True
    assert params["generate"]["generation"]["backend"]["kind"] == "vllm"
    assert params["verify"]["workers"] is None  # defaults are filled in: the run gets the whole config


def test_plan_gpu_stages_go_to_the_gpu_pool_cpu_stages_to_cpu():
    pools = {s.full_name: s.pool for s in plan()}
    assert pools == {
        "pipeline/pipeline-nightly": "cpu",
        "ingest/ingest-cpu": "cpu",
        "verify/verify-cpu": "cpu",
        "filter/filter-cpu": "cpu",
        "select/select-cpu": "cpu",
        "mix/mix-cpu": "cpu",
        "generate/generate-gpu": "gpu",
        "sft/sft-gpu": "gpu",
        "grpo/grpo-gpu": "gpu",
        "generate/generate-fanout": "cpu",
        "generate-shard/generate-shard-gpu": "gpu",
    }
    assert [s.full_name for s in plan() if s.cron] == ["pipeline/pipeline-nightly"]


def test_plan_shard_deployment_is_the_one_generate_fans_out_to():
    from flows.generate import GenerateParams

    default = GenerateParams.model_fields["shard_deployment"].default
    spec = by_name(plan())[default]
    assert spec.entrypoint == "flows/generate.py:generate_shard_flow"
    assert spec.module_path == "flows.generate.generate_shard_flow"


def test_plan_entrypoints_name_the_flows_they_claim():
    import importlib

    for spec in plan():
        module, fn = spec.module_path.rsplit(".", 1)
        assert getattr(importlib.import_module(module), fn).name == spec.flow_name, spec.full_name


def test_plan_rejects_a_bad_pipeline_config_before_registering(tmp_path):
    bad = tmp_path / "pipeline.yaml"
    text = (REPO / "configs" / "pipeline.yaml").read_text().replace("shard_size:", "shard_sise:")
    bad.write_text(text)
    with pytest.raises(ConfigError, match=r"generate\.shard_sise: unknown key"):
        plan(pipeline_config=bad)


def test_plan_only_skips_the_pipeline_config_and_rejects_unknown_names():
    specs = plan(pipeline_config=None, only=["generate-shard"])
    assert [s.full_name for s in specs] == ["generate-shard/generate-shard-gpu"]
    with pytest.raises(ValueError, match="unknown deployment"):
        plan(only=["generat"])


def test_cpu_example_config_is_valid():
    from datagen.config import load
    from flows.pipeline import PipelineParams

    params = load(PipelineParams, REPO / "configs" / "pipeline-cpu.yaml")
    assert params.generate.generation.backend.kind == "hf"


def test_dry_run_registers_nothing_and_needs_no_server():
    out = subprocess.run([sys.executable, "-m", "flows.deploy"], cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, "PREFECT_API_URL": "http://127.0.0.1:9/api"}, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert "dry run: nothing registered" in out.stdout
    assert "generate-shard/generate-shard-gpu" in out.stdout


# -- a real server and real process workers ----------------------------------------------------------


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    """``prefect server start`` on a free port, with its own home and database; its API URL."""
    home = tmp_path_factory.mktemp("prefect-server")
    url = f"http://127.0.0.1:{demo.free_port()}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_SERVER_UI_ENABLED": "false"}
    procs = demo.Processes()
    try:
        port = url.rsplit(":", 1)[1].split("/")[0]
        procs.start("server", [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", port],
                    env=env, log=home / "server.log")
        demo.wait_for("the Prefect server", lambda: demo.healthy(url), 90, procs)
        yield url
    finally:
        procs.stop_all()


def client_env(url: str, home: Path) -> dict[str, str]:
    return {**os.environ, "PREFECT_API_URL": url, "PREFECT_HOME": str(home), "PREFECT_LOGGING_LEVEL": "INFO"}


@pytest.mark.xdist_group("prefect-server")
def test_registered_deployment_from_the_repo_is_run_by_a_process_worker(prefect_server, tmp_path):
    url = prefect_server
    env = client_env(url, tmp_path / "home")
    out = subprocess.run([sys.executable, "-m", "flows.deploy", "--apply", "--source", str(REPO), "--gpu-slots", "2",
                          "--json"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    ids = json.loads(out.stdout)
    assert len(ids) == 11

    # what `apply` set up around the deployments
    for pool in ("cpu", "gpu"):
        assert demo.api(url, "GET", f"/work_pools/{pool}")["type"] == "process"
    assert demo.api(url, "GET", "/v2/concurrency_limits/gpu")["limit"] == 2
    nightly = demo.api(url, "GET", "/deployments/name/pipeline/pipeline-nightly")
    assert [s["schedule"]["cron"] for s in nightly["schedules"]] == ["0 2 * * *"]
    assert nightly["work_pool_name"] == "cpu"
    assert nightly["parameters"]["params"]["generate"]["fan_out"] is True

    # trigger an on-demand stage with parameters, exactly as the README does, and let a worker run it
    root = tmp_path / "store"
    params = {"root": str(root), "synthetic": {"kind": "arithmetic", "n": 5, "seed": 3}}
    out = subprocess.run([str(BIN / "prefect"), "deployment", "run", "ingest/ingest-cpu",
                          "--param", f"params={json.dumps(params)}"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    run_id = re.search(r"UUID:\s*([0-9a-f-]{36})", out.stdout).group(1)

    procs = demo.Processes()
    try:
        worker = procs.start("worker", [str(BIN / "prefect"), "worker", "start", "--pool", "cpu", "--run-once"],
                             env=env, log=tmp_path / "worker.log", cwd=tmp_path)
        worker.wait(timeout=120)
    finally:
        procs.stop_all()
    state = demo.api(url, "GET", f"/flow_runs/{run_id}")["state_type"]
    assert state == "COMPLETED", (tmp_path / "worker.log").read_text()[-3000:]

    from datagen.store import open_store

    manifest = open_store(str(root)).resolve("problems")
    assert manifest.rows == 5
    assert manifest.flow_run_id == run_id  # the version says which deployment run wrote it


@pytest.mark.slow  # ~60-80 s on 2 cores: every shard run is a fresh process importing torch
@pytest.mark.xdist_group("prefect-server")
def test_generate_fans_shards_out_across_two_workers(prefect_server, tmp_path):
    work = tmp_path / "demo"
    cmd = [sys.executable, str(REPO / "scripts" / "scaleout_demo.py"), "--api-url", prefect_server,
           "--workdir", str(work), "--workers", "2", "--problems", "4", "--shard-size", "2", "--n", "2",
           "--timeout", "240"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        proc.terminate()  # SIGTERM: the script stops its workers and their flow runs on the way out
        stdout, stderr = proc.communicate(timeout=60)
        pytest.fail(f"scaleout_demo.py did not finish in 300 s:\n{stderr[-4000:]}")
    assert proc.returncode == 0, stderr[-4000:]
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["shards"] == summary["completed"] == 2
    assert len(summary["workers_used"]) == 2, summary  # each worker ran one of the two shards

    from datagen.store import open_store

    manifest = open_store(str(work / "store")).resolve(summary["version"])
    assert manifest.rows == 4 * 2  # problems x n, committed once by the parent
    assert manifest.stats["generate"]["shards_generated"] == 2
