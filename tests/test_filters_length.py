"""``length``: a real transformers tokenizer from a local path, or the labelled approximation."""

from __future__ import annotations

from datagen.tinymodel import build_tokenizer
from filters.config import FiltersConfig, LengthConfig
from filters.length import LengthFilter, approx_tokens
from filters.runner import run_filters

ROW = {"problem_id": "p", "sample_id": "p:0", "source": "t", "domain": "math", "language": "en", "prompt": "2+3?",
       "reasoning": "two plus three is five", "summary": "5", "finish_reason": "stop"}


def test_local_tokenizer_counts_real_tokens(tmp_path):
    build_tokenizer().save_pretrained(tmp_path / "tok")
    flt = LengthFilter(LengthConfig(tokenizer=str(tmp_path / "tok"), max_reasoning_tokens=21))
    # The tiny tokenizer is character-level: 22 characters = 22 tokens (the approximation says 6).
    assert flt.count([ROW["reasoning"]]) == [22]
    decision = flt.check(ROW)
    assert decision.reason == "reasoning_too_long" and "22 tokens > 21" in decision.detail
    assert flt.counter == f"tokenizer:{tmp_path / 'tok'}"


def test_tokenizer_from_config_is_reported_in_stats(tmp_path):
    build_tokenizer().save_pretrained(tmp_path / "tok")
    out, stats = run_filters([ROW], FiltersConfig(length={"tokenizer": str(tmp_path / "tok")}), names=["length"])
    assert out[0]["drop"] is None and stats["length_counter"].startswith("tokenizer:")


def test_approximation_is_labelled():
    flt = LengthFilter(LengthConfig(max_reasoning_tokens=3))
    decision = flt.check(ROW)
    assert flt.counter == "approx" and "(approx)" in decision.detail
    _, stats = run_filters([ROW], names=["length"])
    assert stats["length_counter"] == "approx"


def test_approximation_counts_cjk_per_character():
    assert approx_tokens("abcdefgh") == 2
    assert approx_tokens("我们计算") == 4
