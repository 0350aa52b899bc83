"""Scale-out of the generate stage across Prefect workers, shown on one CPU box.

    python scripts/scaleout_demo.py [--workers 2] [--problems 8] [--shard-size 4] [--json]

What it does, in the order a real deployment does it (each command is echoed):

1. starts a local Prefect server (its own PREFECT_HOME and SQLite database
   in a temporary folder, on a free port);
2. registers the shard-level deployment from this repository:
   ``python -m flows.deploy --apply --source <repo> --only generate-shard``
   (which also creates the ``gpu`` work pool and the ``gpu`` concurrency limit);
3. starts N process workers on the ``gpu`` pool — one per "GPU box":
   ``CUDA_VISIBLE_DEVICES=i prefect worker start --pool gpu --limit 1``;
4. imports a few arithmetic problems into a store every process shares, and
   makes a tiny random model (``datagen.tinymodel``: no downloads);
5. runs ``datagen run generate --set fan_out=true`` against the server: the
   generate flow launches one ``generate-shard`` run per shard, the workers
   pick them up, and the flow commits one version when all are done;
6. shows which worker ran which shard (from the workers' logs), then stops
   the workers and the server.

The last line printed is a JSON object with the figures (shards, workers
used, states, the version written, wall time). Every process it starts is
stopped on the way out, also on errors and Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # prefect and datagen live beside this interpreter
SHARD_DEPLOYMENT = "generate-shard/generate-shard-gpu"
SUBMITTED_RE = re.compile(r"Flow run '([^']+)' submitted to infrastructure")


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Processes:
    """Child processes, each in its own session, stopped with all their descendants.

    The Prefect server and workers spawn children in new sessions of their own
    (the server's uvicorn, a worker's flow runs), so killing a process group is
    not enough: the whole tree is collected first, then stopped.
    """

    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, cmd: list[str], *, env: dict[str, str], log: Path, cwd: Path | None = None):
        say(f"$ {shlex.join(cmd)}    # {name}, log: {log}")
        with open(log, "wb") as fh:
            proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self.procs.append((name, proc))
        return proc

    def stop_all(self, grace_s: float = 10.0) -> None:
        import psutil

        tree: list[psutil.Process] = []
        for _, proc in reversed(self.procs):  # workers before the server they talk to
            try:
                parent = psutil.Process(proc.pid)
                tree.extend([parent, *parent.children(recursive=True)])
            except psutil.NoSuchProcess:
                pass
        for p in tree:
            try:
                p.send_signal(signal.SIGTERM)
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(tree, timeout=grace_s)
        for p in alive:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=5)
        for _, proc in self.procs:
            proc.poll()
        self.procs.clear()


def wait_for(what: str, check, timeout_s: float, procs: Processes | None = None):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        for name, proc in procs.procs if procs else ():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode} while waiting for {what}")
        time.sleep(0.3)
    raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what}")


def api(url: str, method: str, path: str, body: dict | None = None):
    import httpx

    r = httpx.request(method, f"{url}{path}", json=body, timeout=10)
    r.raise_for_status()
    return r.json() if r.content else None


def online_workers(url: str, pool: str) -> list[str]:
    try:
        rows = api(url, "POST", f"/work_pools/{pool}/workers/filter", {})
    except Exception:  # noqa: BLE001 - the pool may not exist yet
        return []
    return [w["name"] for w in rows if w.get("status") == "ONLINE"]


def run(cmd: list[str], *, env: dict[str, str], cwd: Path | None = None, timeout: float | None = None) -> str:
    say(f"$ {shlex.join(cmd)}")
    out = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                         check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return out.stdout


def shard_report(url: str, version: str, worker_logs: dict[str, Path]) -> list[dict]:
    """One row per shard run that wrote into ``version``: shard, worker, state, seconds.

    Which worker ran a run is read from the workers' own logs: the line
    "Flow run '<name>' submitted to infrastructure" is written only by the
    worker that won the run (two workers may race for a run; the loser's
    submission is aborted by the server, and it logs that instead).
    """
    ran_by: dict[str, str] = {}
    for worker, log in worker_logs.items():
        for name in SUBMITTED_RE.findall(log.read_text(errors="replace")):
            ran_by[name] = worker
    dep = api(url, "GET", f"/deployments/name/{SHARD_DEPLOYMENT}")
    runs = api(url, "POST", "/flow_runs/filter", {"deployments": {"id": {"any_": [dep["id"]]}}})
    rows = [{
        "shard": r["parameters"]["params"]["shard_name"],
        "worker": ran_by.get(r["name"]),
        "state": r["state_type"],
        "seconds": round(r.get("total_run_time") or 0.0, 1),
        "flow_run": r["name"],
    } for r in runs if f"{r['parameters']['params']['output']}@{r['parameters']['params']['version']}" == version]
    return sorted(rows, key=lambda r: r["shard"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2, help="process workers on the gpu pool (default: 2)")
    parser.add_argument("--problems", type=int, default=8)
    parser.add_argument("--shard-size", type=int, default=4, help="problems per shard run (default: 4)")
    parser.add_argument("--n", type=int, default=2, help="samples per problem (default: 2)")
    parser.add_argument("--api-url", help="use this Prefect server (e.g. http://127.0.0.1:4200/api) "
                                          "instead of starting one")
    parser.add_argument("--workdir", help="keep everything here (default: a temporary folder, removed)")
    parser.add_argument("--timeout", type=float, default=300, help="give up after this many seconds")
    args = parser.parse_args(argv)
    t0 = time.monotonic()
    deadline = t0 + args.timeout

    def left() -> float:
        if time.monotonic() >= deadline:
            raise TimeoutError(f"the demo took longer than --timeout {args.timeout:.0f}s")
        return deadline - time.monotonic()

    with ExitStack() as stack:
        if args.workdir:
            work = Path(args.workdir).resolve()
            work.mkdir(parents=True, exist_ok=True)
        else:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="datagen-scaleout-")))
        procs = Processes()
        stack.callback(procs.stop_all)
        # SIGTERM (e.g. a test's timeout) unwinds like Ctrl-C, so the children are stopped.
        signal.signal(signal.SIGTERM, _interrupt)

        url = args.api_url or f"http://127.0.0.1:{free_port()}/api"
        env = {
            **os.environ,
            "PREFECT_HOME": str(work / "prefect-home"),  # its own settings and SQLite database
            "PREFECT_API_URL": url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_UI_ENABLED": "false",
            "PREFECT_WORKER_QUERY_SECONDS": "1",  # default 10: fine for hours-long shards, slow for a demo
            "PREFECT_LOGGING_LEVEL": "INFO",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            # N workers share this box's cores: one thread each, or they fight over them
            "OMP_NUM_THREADS": "1",
        }
        # -- 1. the server (unless one was given) ------------------------------------
        if not args.api_url:
            port = url.rsplit(":", 1)[1].split("/")[0]
            procs.start("server", [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", port],
                        env=env, log=work / "server.log")

        # -- 4a. while it starts: a tiny model and the problems (no Prefect needed) --
        store_root = work / "store"
        model_dir = work / "tiny-model"
        problems_ref = make_inputs(store_root, model_dir, args.problems)
        say(f"problems: {problems_ref}; model: {model_dir}")
        wait_for("the Prefect server", lambda: healthy(url), min(90, left()), procs)
        say(f"server up at {url} ({time.monotonic() - t0:.1f}s)")

        # -- 2. the shard deployment, from this repository ------------------------------
        run([sys.executable, "-m", "flows.deploy", "--apply", "--source", str(REPO), "--only", "generate-shard",
             "--gpu-slots", str(args.workers)], env=env, cwd=REPO, timeout=left())

        # -- 3. N workers on the gpu pool, one per (pretend) GPU box --------------------
        names = [f"gpu-box-{i}-{os.getpid()}" for i in range(args.workers)]
        for i, name in enumerate(names):
            procs.start(name, [str(BIN / "prefect"), "worker", "start", "--pool", "gpu", "--limit", "1",
                               "--name", name],
                        env={**env, "CUDA_VISIBLE_DEVICES": str(i)}, log=work / f"{name}.log", cwd=work)
        wait_for(f"{args.workers} workers online", lambda: set(names) <= set(online_workers(url, "gpu")),
                 min(90, left()), procs)
        say(f"workers online: {', '.join(names)} ({time.monotonic() - t0:.1f}s)")

        # -- 5. the generate flow, fanned out --------------------------------------------
        config = work / "generate.yaml"
        config.write_text(json.dumps({  # JSON is YAML
            "root": str(store_root),
            "input": problems_ref,
            "shard_size": args.shard_size,
            "fan_out": True,
            "shard_deployment": SHARD_DEPLOYMENT,
            "generation": {
                "backend": {"kind": "hf", "model": str(model_dir), "device": "cpu"},
                "n": args.n, "template": "r1_zero.v1", "exemplars": None, "k": 0,
                "sampling": {"max_tokens": 8, "seed": 0},
            },
        }, indent=2))
        t_gen = time.monotonic()
        out = run([str(BIN / "datagen"), "run", "generate", "--config", str(config), "--json"], env=env, cwd=work,
                  timeout=left())
        version = json.loads(out.strip().splitlines()[-1])  # --json: the result is the last line
        gen_s = time.monotonic() - t_gen

        # -- 6. who ran what ----------------------------------------------------------
        rows = shard_report(url, version, {n: work / f"{n}.log" for n in names})
        say(f"\n{'shard':<28} {'worker':<20} {'state':<10} {'run s':>6}")
        for r in rows:
            say(f"{r['shard']:<28} {r['worker']!s:<20} {r['state']:<10} {r['seconds']:>6}")
        workers_used = sorted({r["worker"] for r in rows if r["worker"]})
        say(f"\n{version}: {len(rows)} shard runs on {len(workers_used)} workers; generate took {gen_s:.1f}s")
        say("stopping the workers" + ("" if args.api_url else " and the server"))

    expected = -(-args.problems // args.shard_size)
    summary = {
        "version": version,
        "shards": len(rows),
        "expected_shards": expected,
        "completed": sum(r["state"] == "COMPLETED" for r in rows),
        "workers": args.workers,
        "workers_used": workers_used,
        "runs": rows,
        "generate_s": round(gen_s, 1),
        "wall_s": round(time.monotonic() - t0, 1),
    }
    print(json.dumps(summary))
    return 0 if summary["completed"] == summary["shards"] == expected else 1


def healthy(url: str) -> bool:
    try:
        api(url, "GET", "/health")
        return True
    except Exception:  # noqa: BLE001 - not up yet
        return False


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def make_inputs(store_root: Path, model_dir: Path, n: int) -> str:
    """A tiny random model and ``n`` arithmetic problems imported as a problems version."""
    from datagen import problems
    from datagen.files import write_records
    from datagen.store import open_store
    from datagen.ingest import import_file
    from datagen.tinymodel import save_tiny

    save_tiny(model_dir)
    path = store_root.parent / "problems.jsonl"
    write_records(path, problems.arithmetic_problems(n, seed=0, max_ops=2, max_operand=9))
    return import_file(open_store(str(store_root)), path, name="problems").manifest.ref


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
