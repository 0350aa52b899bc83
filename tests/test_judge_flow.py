"""The judge inside the verify stage: ``datagen run verify --config`` with a judge backend, chrF and the
self-cognition rule, each row judged by the verifiers configured for its task; outcomes in the stats."""

from __future__ import annotations

import json

import pytest
import yaml

from datagen.cli.main import main
from datagen.records import decode_verdicts
from datagen.store import Store
from datagen.tinymodel import save_tiny

IDENT = json.dumps({"name": "Tiny-R1", "maker": "the datagen team"})


def _row(i, task, prompt, completion, answer=None, language="en", **extra):
    return {"problem_id": f"p{i}", "sample_id": f"p{i}:0", "source": "t", "domain": "general",
            "language": language, "prompt": prompt, "answer": answer, "completion": completion,
            "summary": completion, "task": task, **extra}


ROWS = [
    _row(0, "factual_qa", "What is the capital of France?", "The capital of France is Paris.", "Paris"),
    _row(1, "writing", "Write a haiku about rain.", "Soft rain on the roof\nthe garden drinks in silence\n"
                                                   "puddles hold the sky"),
    _row(2, "translation", "Translate the following English text into French:\n\nThe weather is beautiful today.",
         "Il fait beau aujourd'hui.", "Il fait beau aujourd'hui.", language="fr"),
    _row(3, "translation", "Translate the following English text into French:\n\nWhere is the train station?",
         "Where is the train station?", "Où est la gare ?", language="fr"),
    _row(4, "self_cognition", "Are you ChatGPT?", "No, I am Tiny-R1, not ChatGPT.", "I am Tiny-R1.",
         identity=IDENT),
    _row(5, "self_cognition", "Who are you?", "I am ChatGPT, made by OpenAI.", "I am Tiny-R1.", identity=IDENT),
    {"problem_id": "m0", "sample_id": "m0:0", "source": "t", "domain": "math", "language": "en",
     "prompt": "Compute 2 + 2.", "answer": "4", "completion": "<think>2+2=4</think>\\boxed{4}"},
]


@pytest.fixture(scope="module")
def judge_model(tmp_path_factory):
    return str(save_tiny(tmp_path_factory.mktemp("judge") / "model"))


@pytest.mark.usefixtures("prefect_harness")
def test_datagen_run_verify_with_a_judge_config(tmp_path, judge_model):
    root = tmp_path / "store"
    w = Store(str(root)).writer("generations", stage="test")
    w.write(ROWS)
    w.commit()
    config = {
        "root": str(root),
        "verifiers_by_domain": {"math": ["math"]},
        "verifiers_by_task": {"writing": ["judge"], "factual_qa": ["judge"], "translation": ["chrf", "judge"],
                              "self_cognition": ["self_cognition"]},
        "judge": {"backend": {"kind": "hf", "model": judge_model, "device": "cpu"}, "max_tokens": 8},
        "workers": 1,
    }
    cfg = tmp_path / "verify.yaml"
    cfg.write_text(yaml.safe_dump(config))
    assert main(["run", "verify", "--config", str(cfg)]) == 0
    store = Store(str(root))
    manifest = store.resolve("verified@latest")
    stats = manifest.stats.get("verify", manifest.stats)
    outcomes = stats["outcomes"]
    # A random tiny judge never writes a verdict line: its four rows are `error` (counted, never a score).
    assert outcomes["judge"] == {"error": 4}
    assert outcomes["chrf"] == {"correct": 1, "incorrect": 1}
    assert outcomes["self_cognition"] == {"correct": 1, "incorrect": 1}
    assert outcomes["math"] == {"correct": 1}
    by_task = stats["acceptance"]["by_task"]
    assert by_task["translation"] == {"rows": 2, "accepted": 0, "rejected": 1, "undecided": 1}
    assert by_task["self_cognition"] == {"rows": 2, "accepted": 1, "rejected": 1, "undecided": 0}
    assert by_task["writing"]["undecided"] == 1 and by_task["factual_qa"]["undecided"] == 1
    rows = {r["sample_id"]: r for r in store.scan(manifest).collect().to_dicts()}
    v = decode_verdicts(rows["p1:0"]["verdicts"])
    assert set(v) == {"judge"} and v["judge"]["outcome"] == "error"
    assert "unparseable judge output" in v["judge"]["detail"]
    assert rows["p4:0"]["accepted"] is True and rows["p5:0"]["accepted"] is False
    assert rows["m0:0"]["accepted"] is True


def test_judge_listed_without_a_backend_fails_before_running(tmp_path):
    from datagen.config import ConfigError, build
    from flows.verify import VerifyParams

    with pytest.raises(ConfigError, match="names 'judge' but no judge is configured"):
        build(VerifyParams, {"verifiers_by_task": {"writing": ["judge"]}})
    with pytest.raises(ConfigError, match="unknown verifier"):
        build(VerifyParams, {"verifiers_by_task": {"writing": ["jugde"]}})
