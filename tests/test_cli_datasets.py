"""``datagen datasets …`` end to end, on a local root and on S3."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from datagen.cli.main import main
from datagen.store import Store


def _problem_file(path):
    lines = [json.dumps({"prompt": f"Compute {i} + {i}.", "answer": str(2 * i), "source": "arith"}) for i in range(10)]
    lines.insert(3, json.dumps({"prompt": "compute 1 +  1.", "answer": "2", "source": "arith"}))  # dup of row 1
    lines.insert(7, json.dumps({"prompt": "Compute 5 + 5.", "answer": "10", "source": "arith"}))  # dup of row 5
    lines.insert(5, '{"prompt": "broken json"')  # bad JSON
    lines.append(json.dumps({"answer": "3"}))  # missing prompt
    lines.append(json.dumps({"prompt": ["not", "a", "string"]}))  # wrong type
    path.write_text("\n".join(lines) + "\n")
    return path


def _run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr().out
    return code, out


def test_import_quarantines_dedups_and_exports(any_root, tmp_path, capsys):
    src = _problem_file(tmp_path / "problems.jsonl")
    code, out = _run(capsys, "datasets", "import", str(src), "--name", "problems", "--root", any_root, "--json")
    assert code == 0
    summary = json.loads(out)
    assert summary["rows"] == 10
    assert summary["duplicates"] == 2
    assert summary["rejected"] == 3
    assert summary["rejected_by_reason"] == {"invalid_json": 1, "missing_prompt": 1, "bad_prompt": 1}

    store = Store(any_root)
    m = store.resolve("problems")
    assert m.rows == 10 and m.stats["import"]["duplicates"] == 2
    [rej] = m.rejected
    rejected = store.read_shard(rej.path).to_pylist()
    assert len(rejected) == 3 and {r["reason"] for r in rejected} == {"invalid_json", "missing_prompt", "bad_prompt"}
    assert all(r["detail"] for r in rejected)

    code, _ = _run(capsys, "datasets", "import", str(src), "--name", "problems", "--root", any_root, "--json")
    assert code == 0
    code, out = _run(capsys, "datasets", "ls", "--root", any_root, "--json")
    listing = json.loads(out)
    assert len(listing) == 2 and {r["dataset"] for r in listing} == {"problems"}
    assert all({"dataset", "version", "rows", "created", "stage"} <= set(r) for r in listing)

    for target in ("out.jsonl", "out.parquet"):
        code, _ = _run(capsys, "datasets", "export", "problems", "--to", str(tmp_path / target), "--root", any_root)
        assert code == 0
    exported = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(exported) == 10 and exported[0]["problem_id"] and exported[0]["domain"] == "math"
    assert pq.read_table(tmp_path / "out.parquet").num_rows == 10


def test_show_head_diff_tag(tmp_path, capsys):
    root = str(tmp_path / "store")
    src = _problem_file(tmp_path / "problems.jsonl")
    _run(capsys, "datasets", "import", str(src), "--name", "problems", "--root", root)
    first = Store(root).resolve("problems").id
    code, out = _run(capsys, "datasets", "tag", f"problems@{first}", "gold", "--root", root)
    assert code == 0 and f"problems@gold -> {first}" in out
    _run(capsys, "datasets", "import", str(src), "--name", "problems", "--root", root)
    code, out = _run(capsys, "datasets", "show", "problems@gold", "--root", root)
    assert code == 0 and first in out and "import/duplicates" in out
    code, out = _run(capsys, "datasets", "head", "problems", "-n", "2", "--columns", "prompt", "answer",
                     "--json", "--root", root)
    rows = [json.loads(line) for line in out.splitlines()]
    assert rows == [{"prompt": "Compute 0 + 0.", "answer": "0"}, {"prompt": "Compute 1 + 1.", "answer": "2"}]
    code, out = _run(capsys, "datasets", "diff", "problems@gold", "problems", "--json", "--root", root)
    diff = json.loads(out)
    assert diff["rows"] == {"a": 10, "b": 10, "delta": 0} and diff["schema"]["added"] == {}


def test_user_errors_exit_2_with_a_message(tmp_path, capsys):
    code = main(["datasets", "show", "nope", "--root", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "has no versions" in err
    code = main(["datasets", "import", str(tmp_path / "missing.jsonl"), "--name", "x", "--root", str(tmp_path)])
    assert code == 2 and "no such file" in capsys.readouterr().err
    (tmp_path / "a.csv").write_text("prompt\nx\n")
    code = main(["datasets", "import", str(tmp_path / "a.csv"), "--name", "x", "--root", str(tmp_path)])
    assert code == 2 and "use .jsonl or .parquet" in capsys.readouterr().err


def test_console_script_is_installed(tmp_path):
    out = subprocess.run([sys.executable, "-m", "datagen", "datasets", "ls", "--root", str(tmp_path), "--json"],
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []


@pytest.mark.parametrize("fmt", ["parquet", "hf"])
def test_import_parquet_and_saved_hf_dataset(tmp_path, capsys, fmt):
    import datasets

    rows = [{"prompt": f"p{i}", "answer": str(i)} for i in range(4)]
    ds = datasets.Dataset.from_list(rows)
    if fmt == "parquet":
        path = tmp_path / "in.parquet"
        ds.to_parquet(str(path))
    else:
        path = tmp_path / "saved"
        ds.save_to_disk(str(path))
    code, out = _run(capsys, "datasets", "import", str(path), "--name", "p", "--root", str(tmp_path / "s"), "--json")
    assert code == 0 and json.loads(out)["rows"] == 4


def test_head_rejected_and_show_display_the_quarantine(any_root, tmp_path, capsys):
    src = _problem_file(tmp_path / "problems.jsonl")
    code, out = _run(capsys, "datasets", "import", str(src), "--name", "problems", "--root", any_root, "--json")
    version = json.loads(out)["version"]
    code, out = _run(capsys, "datasets", "head", f"problems@{version}", "--rejected", "--json", "--root", any_root)
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["row"], r["reason"]) for r in rows] == [(6, "invalid_json"), (14, "missing_prompt"),
                                                       (15, "bad_prompt")]
    assert {r["file"] for r in rows} == {str(src)}
    code, out = _run(capsys, "datasets", "show", "problems", "--root", any_root)
    assert code == 0 and "rejected/invalid_json" in out and "rejected/missing_prompt" in out
    clean = tmp_path / "clean.jsonl"
    clean.write_text(json.dumps({"prompt": "1+1?", "answer": "2"}) + "\n")
    _run(capsys, "datasets", "import", str(clean), "--name", "clean", "--root", any_root)
    code, out = _run(capsys, "datasets", "head", "clean", "--rejected", "--root", any_root)
    assert code == 0 and out.startswith("clean@") and out.rstrip().endswith("has no quarantined rows")
