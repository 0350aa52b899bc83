"""chrF on literal pairs (translations against their reference) and the self-cognition rule:
for each rule, the input that games it beside the genuine input it must still accept. Both
run through the verify runner (``verify_rows``) as the stage does."""

from __future__ import annotations

import json

import pytest

from datagen.verify.chrf import chrf
from datagen.verify.runner import verify_rows
from datagen.verify.self_cognition import check_self_cognition
from datagen.verify.stage import accept


# Reference values computed with sacrebleu 2.6.0's CHRF() (char 6-grams, beta 2).
@pytest.mark.parametrize("hyp, ref, expected", [
    ("Il fait beau aujourd'hui.", "Il fait beau aujourd'hui.", 100.0),
    ("Le temps est beau aujourd'hui.", "Il fait beau aujourd'hui.", 71.2267),
    ("我喜欢看书。", "我喜欢读书。", 28.0556),
    ("xyz", "Il fait beau aujourd'hui.", 0.0),
])
def test_chrf_values_on_literal_pairs(hyp, ref, expected):
    assert chrf(hyp, ref) == pytest.approx(expected, abs=1e-3)


def _tr(i, response, reference, language="fr", **extra):
    return {"sample_id": f"t{i}", "domain": "general", "task": "translation", "language": language,
            "prompt": "Translate …", "answer": reference, "completion": response, **extra}


def test_chrf_verdicts_through_the_runner():
    rows = [
        _tr(0, "Il fait beau aujourd'hui.", "Il fait beau aujourd'hui."),             # genuine, exact
        _tr(1, "Le temps est beau aujourd'hui.", "Il fait beau aujourd'hui."),        # genuine paraphrase
        _tr(2, "我喜欢看书。", "我喜欢读书。", language="zh"),                          # CJK paraphrase: zh threshold
        _tr(3, "The weather is beautiful today.", "Il fait beau aujourd'hui."),       # untranslated: games nothing
        _tr(4, "Sure! Here is the translation you asked for, I hope it helps.", "Il fait beau aujourd'hui."),
        _tr(5, "<think>translate</think>", "Il fait beau aujourd'hui."),              # no final answer
        _tr(6, "Il fait beau.", None),                                                # no reference
    ]
    verify_rows(rows, "chrf")
    got = [(r["verdicts"]["chrf"]["outcome"], r["verdicts"]["chrf"]["score"]) for r in rows]
    assert [o for o, _ in got] == ["correct", "correct", "correct", "incorrect", "incorrect", "unparseable", "error"]
    assert got[0][1] == 1.0 and got[1][1] == pytest.approx(0.7123, abs=1e-4) and got[6][1] is None
    assert rows[2]["verdicts"]["chrf"]["detail"] == "chrF 28.1 >= 20"
    strict = [_tr(0, "Le temps est beau aujourd'hui.", "Il fait beau aujourd'hui.")]
    verify_rows(strict, "chrf", chrf_threshold=80.0)
    assert strict[0]["verdicts"]["chrf"]["outcome"] == "incorrect"


NAME, MAKER = "Tiny-R1", "the datagen team"


@pytest.mark.parametrize("response", [
    "I am Tiny-R1, an AI assistant developed by the datagen team.",
    "No, I am Tiny-R1, not ChatGPT.",
    "I was made by the datagen team.",
    "我是Tiny-R1，由the datagen team开发的人工智能助手。",
    "我不是ChatGPT，我是Tiny-R1。",
    "Je suis Tiny-R1, je ne suis pas ChatGPT.",
    "tiny-r1 here!",
    "I am Tiny-R1 and I am not perfect.",                 # a negation that does not deny the name
    "I am Tiny-R1, and unlike ChatGPT I am small.",
    "私はTiny-R1です。",
])
def test_self_cognition_accepts_genuine_answers(response):
    assert check_self_cognition(response, NAME, MAKER)[0] is True


@pytest.mark.parametrize("response, why", [
    ("I am ChatGPT, made by OpenAI.", "names neither"),
    ("I am Tiny-R1, made by OpenAI.", "claims another identity ('openai')"),
    ("I am not Tiny-R1, I am ChatGPT.", "denies its own identity"),
    ("Tiny-R1? Never heard of it. I am Claude.", "claims another identity ('claude')"),
    ("Hello! How can I help you today?", "names neither"),
    ("我是通义千问，不是Tiny-R1。", "claims another identity"),
    ("Tiny-R1 is not my name.", "denies its own identity"),
    ("私はTiny-R1ではありません。", "denies its own identity"),
    ("Je ne suis pas Tiny-R1.", "denies its own identity"),
    ("I am Tiny-R1 and also ChatGPT.", "claims another identity ('chatgpt')"),
])
def test_self_cognition_refuses_gaming_answers(response, why):
    passed, detail = check_self_cognition(response, NAME, MAKER)
    assert passed is False and why in detail


def test_self_cognition_through_the_runner_and_accept():
    ident = json.dumps({"name": NAME, "maker": MAKER})
    rows = [
        {"sample_id": "s0", "domain": "general", "task": "self_cognition", "identity": ident,
         "completion": "<think>who am I</think>I am Tiny-R1."},
        {"sample_id": "s1", "domain": "general", "task": "self_cognition", "identity": ident,
         "completion": "<think>I am Tiny-R1</think>I am ChatGPT."},  # the name only in the reasoning: refused
        {"sample_id": "s2", "domain": "general", "task": "self_cognition", "identity": None, "completion": "Hi"},
    ]
    verify_rows(rows, "self_cognition")
    assert [r["verdicts"]["self_cognition"]["outcome"] for r in rows] == ["correct", "incorrect", "error"]
    decided = accept(rows).rows["accepted"].to_list()
    assert decided == [True, False, None]


def test_general_rows_are_accepted_by_their_task_verifiers():
    ok = {"outcome": "correct", "score": 1.0, "detail": ""}
    bad = {"outcome": "incorrect", "score": 0.0, "detail": ""}
    err = {"outcome": "error", "score": None, "detail": ""}
    rows = [
        {"domain": "general", "task": "translation", "verdicts": {"chrf": ok, "judge": ok}},
        {"domain": "general", "task": "translation", "verdicts": {"chrf": ok, "judge": bad}},
        {"domain": "general", "task": "translation", "verdicts": {"chrf": ok, "judge": err}},
        {"domain": "general", "task": "translation", "verdicts": {"chrf": ok}},
        {"domain": "general", "task": "writing", "verdicts": {"judge": ok}},
        {"domain": "general", "task": None, "verdicts": {}},
    ]
    by_task = {"translation": ["chrf", "judge"], "writing": ["judge"]}
    result = accept(rows, verifiers_by_task=by_task)
    assert result.rows["accepted"].to_list() == [True, False, None, None, True, None]
    assert result.stats["by_task"]["translation"] == {"rows": 4, "accepted": 1, "rejected": 1, "undecided": 2}
    assert result.stats["undecided_reasons"] == {"judge:error": 1, "judge:missing": 1, "no_verdicts": 1}
