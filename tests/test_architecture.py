"""The layering holds: Prefect only in flows/, no import cycles, retries only for the transient,
and config errors that say what to fix (literal messages)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("datagen", "filters", "flows", "trainers")


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in (REPO / pkg).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def _imports(path: Path, name: str) -> set[str]:
    """Every module this file imports, at top level or inside functions (lazy imports count)."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base]).strip(".")
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return found


def _runtime_nodes(tree: ast.AST):
    """Every node but those under ``if TYPE_CHECKING:`` (annotations only, never imported at run time)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and getattr(child.test, "id", getattr(child.test, "attr", "")) == "TYPE_CHECKING":
                todo.extend(child.orelse)
                continue
            todo.append(child)


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        deps = set()
        for imp in _imports(path, name):
            # the deepest project module the import names (``from a.b import c`` -> a.b.c or a.b)
            while imp and imp not in modules:
                imp = imp.rpartition(".")[0]
            if imp and imp != name and not name.startswith(imp + "."):
                deps.add(imp)
        graph[name] = deps
    return graph


def test_no_module_outside_flows_imports_prefect():
    offenders = sorted(
        name for name, path in _modules().items()
        if not name.startswith("flows") and any(i == "prefect" or i.startswith("prefect.")
                                                 for i in _imports(path, name))
    )
    assert offenders == []


def test_the_checker_sees_a_planted_prefect_import(tmp_path):
    planted = tmp_path / "m.py"
    planted.write_text("def f():\n    from prefect.artifacts import create_table_artifact\n")
    assert "prefect.artifacts" in _imports(planted, "datagen.m")


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_two_modules_import_each_other_directly_or_in_a_cycle():
    assert _cycles(_graph()) == []


def test_the_cycle_finder_finds_a_planted_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


# ------------------------------------------------------------------------- retries


def _fails_with(exc: BaseException) -> int:
    """Run a real Prefect task with the project's retry policy that raises ``exc``; how many attempts it took."""
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE

    from flows.common import RETRY

    attempts = []
    policy = {**RETRY, "retry_delay_seconds": 0}

    @task(cache_policy=NO_CACHE, **policy)
    def shard() -> None:
        attempts.append(1)
        raise exc

    @flow
    def run() -> None:
        shard()

    with pytest.raises(type(exc)):
        run()
    return len(attempts)


@pytest.mark.usefixtures("prefect_harness")
def test_a_missing_file_is_not_retried_but_a_connection_reset_is():
    assert _fails_with(FileNotFoundError(2, "No such file or directory", "/data/part-00000.parquet")) == 1
    assert _fails_with(PermissionError(13, "Permission denied", "/data")) == 1
    assert _fails_with(ValueError("bad row")) == 1
    assert _fails_with(ConnectionResetError(104, "Connection reset by peer")) == 3
    assert _fails_with(TimeoutError("read timed out")) == 3


def test_transient_classification():
    from flows.common import is_transient

    class Throttled(Exception):
        status_code = 429

    class NotFound(Exception):
        status_code = 404

    assert is_transient(Throttled())
    assert not is_transient(NotFound())
    try:
        try:
            raise ConnectionResetError("reset")
        except ConnectionResetError as inner:
            raise RuntimeError("shard upload failed") from inner
    except RuntimeError as outer:
        assert is_transient(outer)
    assert not is_transient(OSError("disk full"))
    try:  # an error raised while handling a reset, not from it, is the handler's own
        try:
            raise ConnectionResetError("reset")
        except ConnectionResetError:
            raise KeyError("problem_id") from None
    except KeyError as logic:
        assert not is_transient(logic)
    from datagen.store import StoreError

    gave_up = StoreError("s3://b/p: PutObject failed after 5 attempts")
    gave_up.__cause__ = ConnectionResetError("reset")
    assert not is_transient(gave_up)  # S3 is retried in one place: the store


# ------------------------------------------------------------------------- config errors


def _datagen(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "datagen", *args], capture_output=True, text=True, check=False,
                          cwd=REPO, timeout=120)


def test_config_errors_name_the_source_suggest_the_key_and_point_to_a_help_that_exists(tmp_path):
    from datagen.config import ConfigError, load
    from flows.verify import VerifyParams

    hint = "every key: datagen run verify --help-config"
    with pytest.raises(ConfigError) as err:
        load(VerifyParams, None, ["verifiers_by_domian.math=[math]"], help_hint=hint)
    assert str(err.value) == (
        "invalid config for VerifyParams:\n"
        "  --set verifiers_by_domian: unknown key (did you mean 'verifiers_by_domain'?; "
        "every key: datagen run verify --help-config)"
    )
    f = tmp_path / "v.yaml"
    f.write_text("worker: 2\n")
    with pytest.raises(ConfigError) as err:
        load(VerifyParams, f, ["math_timeout_s=soon"], help_hint=hint)
    assert str(err.value).splitlines()[1:] == [
        "  --set math_timeout_s: Input should be a valid number, unable to parse string as a number (got 'soon')",
        f"  {f}: worker: unknown key (did you mean 'workers'?; every key: datagen run verify --help-config)",
    ]
    # the help option the message points to exists and lists the key
    out = _datagen("run", "verify", "--help-config")
    assert out.returncode == 0 and "workers: int | None (default None)" in out.stdout


def test_run_help_examples_are_valid():
    import re

    help_text = _datagen("run", "--help").stdout
    examples = re.findall(r"'run (\w+) --set ([\w.]+=\w+)'", " ".join(help_text.split()))
    assert {flow for flow, _ in examples} == {"verify", "pipeline"}
    for flow, assignment in examples:
        args = ["run", flow, "--set", assignment, "--print-config"]
        if flow == "pipeline":
            args += ["--config", str(REPO / "configs" / "pipeline-cpu.yaml")]
        out = _datagen(*args)
        assert out.returncode == 0, (args, out.stderr)
