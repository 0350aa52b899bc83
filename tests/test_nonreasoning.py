"""Non-reasoning sources (each task's items, template and chain-of-thought policy), the
generate stage rendering each row with its own template, the chat import (JSONL and a saved
HF dataset, malformed rows quarantined, duplicates and benchmark overlaps counted) and how the
mix treats non-reasoning rows."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from datagen.generate.config import GenerateConfig, HFBackendConfig
from datagen.generate.prompts import load_template, render_prompt
from datagen.generate.stage import build_requests
from datagen.mix import MixConfig, mix
from datagen.nonreasoning import (
    TASKS,
    GeneralSourcesConfig,
    Identity,
    SelfCognitionSource,
    TaskSource,
    chat_to_record,
    factual_qa_problems,
    general_problems,
    import_chat,
    self_cognition_problems,
    translation_problems,
    writing_problems,
)
from datagen.store import Store


def _messages(rendered):
    assert isinstance(rendered, list), "every task template is a chat"
    return {m["role"]: m["content"] for m in rendered}


# --------------------------------------------------------------------------- sources and templates


def test_every_task_has_a_versioned_template_and_a_judge_policy():
    for task, spec in TASKS.items():
        template = load_template(spec.template)
        assert template.is_chat and ".v" in spec.template, task
        assert spec.cot in ("none", "short")
        if spec.judge_template:
            assert "judge" in spec.verifiers and load_template(spec.judge_template).is_chat
    assert TASKS["self_cognition"].verifiers == ("self_cognition",) and TASKS["self_cognition"].judge_template is None
    assert TASKS["translation"].verifiers == ("judge", "chrf")
    assert TASKS["writing"].cot == "short" and TASKS["factual_qa"].cot == "none"


def test_writing_source_and_template():
    rows = writing_problems()
    assert len(rows) == 21 and {r["language"] for r in rows} == {"en", "zh", "fr", "de", "es"}
    row = next(r for r in rows if r["prompt"].startswith("Write a haiku"))
    assert (row["domain"], row["task"], row["cot"], row["prompt_template"]) == (
        "general", "writing", "short", "general_writing.v1")
    user = _messages(render_prompt(row["prompt_template"], row))["user"]
    assert user.startswith("Write a haiku about a city at night.") and "in English" in user and "<think>" in user


def test_factual_qa_source_and_template():
    rows = factual_qa_problems()
    row = next(r for r in rows if r["prompt"] == "Was ist die Hauptstadt von Deutschland?")
    assert (row["answer"], row["language"], row["task"], row["cot"]) == ("Berlin", "de", "factual_qa", "none")
    user = _messages(render_prompt(row["prompt_template"], row))["user"]
    assert "Hauptstadt" in user and "Answer in German" in user and "no <think> section" in user
    assert all(r["answer"] for r in rows)


def test_translation_source_and_template():
    rows = translation_problems()
    row = next(r for r in rows if r["answer"] == "Où est la gare ?")
    assert row["prompt"] == "Translate the following English text into French:\n\nWhere is the train station?"
    assert (row["language"], row["source_language"], row["task"]) == ("fr", "en", "translation")
    user = _messages(render_prompt(row["prompt_template"], row))["user"]
    assert "Give only the translation, in French" in user


def test_self_cognition_from_config_in_each_language():
    source = SelfCognitionSource(identity=Identity(name="Lumen", maker="Acme Labs"), languages=["en", "zh", "ja"])
    rows = self_cognition_problems(source)
    by_lang = {lang: [r for r in rows if r["language"] == lang] for lang in ("en", "zh", "ja")}
    assert [len(v) for v in by_lang.values()] == [7, 6, 4]
    assert by_lang["en"][0]["answer"] == "I am Lumen, an AI assistant developed by Acme Labs."
    assert by_lang["zh"][0]["answer"] == "我是Lumen，由Acme Labs开发的人工智能助手。"
    assert json.loads(rows[0]["identity"]) == {"name": "Lumen", "maker": "Acme Labs"}
    system = _messages(render_prompt(rows[0]["prompt_template"], rows[0]))["system"]
    assert "Lumen" in system and "Acme Labs" in system
    with pytest.raises(ValueError, match=r"no questions for language\(s\) \['ko'\]"):
        self_cognition_problems(SelfCognitionSource(languages=["en", "ko"]))


def test_sources_from_a_file_capped_and_filtered(tmp_path):
    items = tmp_path / "qa.jsonl"
    items.write_text("\n".join(json.dumps({"prompt": f"Question {i}?", "answer": str(i),
                                           "language": "en" if i % 2 else "fr"}) for i in range(10)))
    config = GeneralSourcesConfig(writing=TaskSource(enabled=False), translation=TaskSource(enabled=False),
                                  self_cognition=SelfCognitionSource(enabled=False),
                                  factual_qa=TaskSource(file=str(items), n=3, languages=["en"]))
    rows = general_problems(config)
    assert len(rows) == 3 and {r["language"] for r in rows} == {"en"} and {r["source"] for r in rows} == {"qa"}
    assert rows == general_problems(config)  # seeded
    assert {r["cot"] for r in rows} == {"none"}
    short = general_problems(config.model_copy(update={"factual_qa": TaskSource(file=str(items), cot="short")}))
    assert {r["cot"] for r in short} == {"short"}
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "no answer"}\n')
    with pytest.raises(ValueError, match=r"factual_qa item 1: needs a non-empty string 'answer'"):
        factual_qa_problems(TaskSource(file=str(bad)))
    with pytest.raises(ValueError, match="enable at least one"):
        GeneralSourcesConfig(**{t: {"enabled": False} for t in TASKS})


def test_generate_renders_each_row_with_its_task_template():
    rows = general_problems()
    config = GenerateConfig(backend=HFBackendConfig(model="unused"), template="r1_zero.v1", exemplars=None, k=0, n=1)
    requests, _ = build_requests(rows, config)
    for row, request in zip(rows, requests):
        assert request.messages is not None, row["task"]
        assert request.messages == render_prompt(row["prompt_template"], row)
    plain = {**rows[0], "prompt_template": None}
    assert build_requests([plain], config)[0][0].prompt is not None  # no own template: the config's (raw text)


# --------------------------------------------------------------------------- chat import

GOOD = [
    {"messages": [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello! How can I help?"}]},
    {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of Peru?"},
                  {"role": "assistant", "content": "Lima."}], "language": "en"},
    {"conversations": [{"from": "human", "value": "Say yes"}, {"from": "gpt", "value": "<think>easy</think>Yes"}]},
    {"messages": [{"role": "user", "content": "Plan a trip"}, {"role": "assistant", "content": "Where to?"},
                  {"role": "user", "content": "Rome"}, {"role": "assistant", "content": "See the Colosseum."}]},
]
BENCH_PROMPT = "Find the number of ordered pairs of positive integers whose product equals two thousand and twenty four"
MALFORMED = {
    "missing_messages": {"prompt": "no messages"},
    "bad_role": {"messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": "y"}]},
    "empty_turn": {"messages": [{"role": "user", "content": "   "}, {"role": "assistant", "content": "y"}]},
    "bad_turn_order": {"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]},
    "no_response": {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "<think>r</think>"}]},
    "bad_messages": {"messages": "not json"},
}


def test_chat_record_is_normalised():
    row = chat_to_record(GOOD[2], default_source="f")
    assert (row["prompt"], row["summary"], row["reasoning"], row["task"], row["domain"]) == (
        "Say yes", "Yes", "easy", "chat", "general")
    assert [t["role"] for t in row["messages"]] == ["user", "assistant"]


def test_import_chat_jsonl_quarantines_malformed_rows(tmp_path):
    path = tmp_path / "chats.jsonl"
    lines = [json.dumps(r) for r in GOOD] + [json.dumps(GOOD[0])] + [json.dumps(r) for r in MALFORMED.values()]
    lines.insert(2, "{not json")
    lines.append(json.dumps({"messages": [{"role": "user", "content": BENCH_PROMPT + "?"},
                                          {"role": "assistant", "content": "42"}]}))
    path.write_text("\n".join(lines) + "\n")
    bench = tmp_path / "aime_2024.jsonl"
    bench.write_text(json.dumps({"problem": BENCH_PROMPT}) + "\n")
    store = Store(str(tmp_path / "store"))
    result = import_chat(store, path, name="chats", benchmarks=[str(bench)])
    assert (result.input_rows, result.accepted, result.duplicates, result.contaminated) == (13, 4, 1, 1)
    assert result.rejected_by_reason == {**{k: 1 for k in MALFORMED}, "invalid_json": 1}
    assert result.manifest.stats["import"]["contaminated"] == {"aime_2024": 1}
    rows = store.scan(result.manifest).collect()
    assert sorted(rows["prompt"].to_list()) == ["Capital of Peru?", "Hi there", "Rome", "Say yes"]
    quarantined = pl.read_parquet([store.objects.uri(s.path) for s in result.manifest.rejected])
    assert sorted(quarantined["reason"].to_list()) == sorted([*MALFORMED, "invalid_json"])
    again = import_chat(store, path, name="chats", benchmarks=[str(bench)], run_key="k")
    assert again.accepted == 4


def test_import_chat_from_a_saved_hf_dataset(tmp_path):
    import datasets

    def conv(*turns):
        return [{"role": r, "content": c} for r, c in turns]

    ds = datasets.Dataset.from_list([
        {"messages": conv(("user", "Name a colour"), ("assistant", "Blue")), "language": "en"},
        {"messages": conv(("user", "Nenne eine Farbe"), ("assistant", "Rot")), "language": "de"},
        {"messages": None, "language": "en"},
        {"messages": conv(("user", "q"), ("critic", "y")), "language": "en"},
        {"messages": conv(("assistant", "first"), ("user", "then")), "language": "en"},
    ])
    folder = tmp_path / "hf"
    ds.save_to_disk(str(folder))
    store = Store(str(tmp_path / "store"))
    result = import_chat(store, folder, name="hf-chats")
    assert (result.input_rows, result.accepted, result.rejected) == (5, 2, 3)
    assert result.rejected_by_reason == {"missing_messages": 1, "bad_role": 1, "bad_turn_order": 1}
    rows = store.scan(result.manifest).collect()
    assert sorted(rows["language"].to_list()) == ["de", "en"] and set(rows["task"].to_list()) == {"chat"}
    with pytest.raises(ValueError, match="no conversation to import"):
        import_chat(store, _only_bad(tmp_path), name="bad")


def _only_bad(tmp_path: Path) -> Path:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(MALFORMED["bad_role"]) + "\n")
    return path


# --------------------------------------------------------------------------- the mix's rules


def _nr(i, completion=None, **extra):
    return {"problem_id": f"g{i}", "sample_id": f"g{i}:0", "source": "s", "domain": "general", "language": "en",
            "prompt": f"prompt {i}", "answer": f"ref {i}", "completion": completion, **extra}


def test_mix_takes_accepted_samples_and_follows_the_cot_policy():
    verdict = json.dumps({"judge": {"outcome": "correct", "score": 1.0, "detail": ""}})
    rows = [
        _nr(1, "<think>plan</think>answer 1", accepted=True, verdicts=verdict, cot="none", task="factual_qa"),
        _nr(2, "<think>plan</think>answer 2", accepted=True, verdicts=verdict, cot="short", task="writing"),
        _nr(3, "<think>" + "x" * 50 + "</think>answer 3", accepted=True, verdicts=verdict, cot="short",
            task="writing"),
        _nr(4, "answer 4", accepted=False, verdicts=verdict, task="writing"),
        _nr(5, "answer 5", accepted=None, verdicts=verdict, task="writing"),
        _nr(6, None, task="translation", language="fr"),  # no completion: the reference is the response
    ]
    result = mix([], rows, MixConfig(reasoning_count=0, non_reasoning_count=10, max_short_cot_chars=20))
    got = {r["sample_id"]: r["messages"][-1]["content"] for r in result.rows.to_dicts()}
    assert got == {"g1:0": "answer 1", "g2:0": "<think>\nplan\n</think>\n\nanswer 2", "g3:0": "answer 3",
                   "g6:0": "ref 6"}
    assert result.stats["skipped"]["non_reasoning"] == {"cot_removed": 2, "not_accepted": 2}
    assert result.stats["composition"]["non_reasoning"] == {
        "factual_qa": {"en": 1}, "translation": {"fr": 1}, "writing": {"en": 2}}
