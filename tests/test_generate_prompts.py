"""Prompt templates and few-shot exemplar rendering (prompts/ files)."""

from __future__ import annotations

import pytest

from datagen.generate.prompts import (
    TemplateError,
    load_exemplars,
    load_template,
    pick_exemplars,
    prompt_hash,
    render_prompt,
)

EXEMPLARS = load_exemplars("long_cot_math.v1")


def _problem(pid: str, prompt: str = "What is 2 + 3?") -> dict:
    return {"problem_id": pid, "prompt": prompt, "language": "en", "answer": "5"}


def test_every_shipped_template_loads():
    for name in ("r1_zero.v1", "cold_start_fewshot.v1", "general_writing.v1", "arith_fewshot.v1", "judge.v1"):
        assert load_template(name).sha256


def test_exemplar_file_has_long_cot_with_reasoning_and_boxed_summary():
    assert len(EXEMPLARS) >= 6
    for ex in EXEMPLARS:
        assert len(ex["reasoning"]) > 400
        assert "\\boxed{" in ex["summary"]


def test_r1_zero_is_a_raw_prompt_with_the_problem():
    text = render_prompt("r1_zero.v1", _problem("p1"))
    assert isinstance(text, str)
    assert text.startswith("A conversation between User and Assistant.")
    assert text.endswith("User: What is 2 + 3?. Assistant:")


def test_chat_template_renders_messages_with_language_name():
    messages = render_prompt("general_writing.v1", {"problem_id": "t", "prompt": "Bonjour", "language": "zh"})
    assert messages[0]["role"] == "user"
    assert messages[0]["content"].startswith("Bonjour")
    assert "Write your response in Chinese." in messages[0]["content"]


def test_latex_braces_in_problem_need_no_escaping():
    text = render_prompt("r1_zero.v1", _problem("p1", r"Compute \frac{1}{2} + {{x}}"))
    assert r"\frac{1}{2} + {{x}}" in text


def test_fewshot_is_deterministic_per_seed():
    row = _problem("p-42")
    a = render_prompt("cold_start_fewshot.v1", row, exemplars=EXEMPLARS, k=2, seed=7)
    b = render_prompt("cold_start_fewshot.v1", row, exemplars=EXEMPLARS, k=2, seed=7)
    assert a == b
    draws = {tuple(e["prompt"] for e in pick_exemplars(row, EXEMPLARS, k=2, seed=s)) for s in range(10)}
    assert len(draws) > 1  # the seed does change the draw


def test_fewshot_draw_depends_on_problem_id():
    draws = {tuple(e["prompt"] for e in pick_exemplars(_problem(f"p{i}"), EXEMPLARS, k=2, seed=0)) for i in range(10)}
    assert len(draws) > 1


def test_fewshot_never_includes_the_target_problem():
    for target in EXEMPLARS:
        # Same problem, different case and spacing: still recognised as itself.
        row = _problem("x", "  " + target["prompt"].upper() + " ")
        for seed in range(20):
            chosen = pick_exemplars(row, EXEMPLARS, k=len(EXEMPLARS), seed=seed)
            assert len(chosen) == len(EXEMPLARS) - 1
            assert target["prompt"] not in [c["prompt"] for c in chosen]
        content = render_prompt("cold_start_fewshot.v1", {**row, "prompt": target["prompt"]},
                                exemplars=EXEMPLARS, k=3, seed=1)[0]["content"]
        assert content.count(target["prompt"]) == 1  # only as the problem to solve


def test_fewshot_renders_k_exemplars_with_think_blocks():
    content = render_prompt("cold_start_fewshot.v1", _problem("p1"), exemplars=EXEMPLARS, k=3, seed=0)[0]["content"]
    assert content.count("<think>\n") == 3
    assert content.count("\n</think>") == 3
    assert content.endswith("Problem:\nWhat is 2 + 3?")


def test_fewshot_without_exemplars_fails():
    with pytest.raises(TemplateError, match="needs exemplars"):
        render_prompt("cold_start_fewshot.v1", _problem("p1"), exemplars=[], k=2, seed=0)


def test_unknown_slot_fails_at_load(tmp_path):
    (tmp_path / "bad.v1.txt").write_text("Hello {{nmae}}\n")
    with pytest.raises(TemplateError, match="unknown slot"):
        load_template("bad.v1", tmp_path)


def test_missing_value_fails_at_render():
    with pytest.raises(TemplateError, match="reference"):
        render_prompt("judge.v1", {"prompt": "q", "response": "r"})


def test_prompt_hash_covers_exemplars_only_when_used():
    fewshot = load_template("cold_start_fewshot.v1")
    assert prompt_hash(fewshot, EXEMPLARS) != prompt_hash(fewshot, EXEMPLARS[:-1])
    r1 = load_template("r1_zero.v1")
    assert prompt_hash(r1, EXEMPLARS) == prompt_hash(r1, [])


def test_assistant_section_is_a_prefill_after_the_user_turn(tmp_path):
    messages = render_prompt("gsm_fewshot_chat.v1", _problem("p1"), exemplars=load_exemplars("gsm_short.v1"), k=2)
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[-1]["content"] == "<think>\n"
    assert messages[0]["content"].count("Answer: <think>") == 2 and messages[0]["content"].endswith("What is 2 + 3?")
    (tmp_path / "mixed.v1.txt").write_text("=== prompt ===\nhi\n=== assistant ===\n<think>\n")
    with pytest.raises(TemplateError, match="not both"):
        load_template("mixed.v1", tmp_path)
