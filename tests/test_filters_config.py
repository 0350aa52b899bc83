"""Typed config: YAML loads, unknown keys fail, bad combinations fail with a fix."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from filters.config import FiltersConfig
from filters.runner import build_filters


def test_yaml_loads_and_nests_under_filters(tmp_path):
    path = tmp_path / "f.yaml"
    path.write_text("filters:\n  language:\n    max_foreign_share: 0.05\n  dedup:\n    near_threshold: null\n")
    cfg = FiltersConfig.from_yaml(path)
    assert cfg.language.max_foreign_share == 0.05 and cfg.dedup.near_threshold is None


def test_unknown_key_fails():
    with pytest.raises(ValidationError, match="max_foriegn_share"):
        FiltersConfig.model_validate({"language": {"max_foriegn_share": 0.1}})
    with pytest.raises(ValidationError, match="lenght"):
        FiltersConfig.model_validate({"lenght": {}})


def test_min_above_max_says_what_to_change():
    with pytest.raises(ValidationError, match="min_reasoning_tokens .* > max_reasoning_tokens"):
        FiltersConfig.model_validate({"length": {"min_reasoning_tokens": 10, "max_reasoning_tokens": 5}})


def test_disabled_filters_and_missing_benchmarks_are_skipped_with_a_reason():
    filters, skipped = build_filters(FiltersConfig(paragraph={"enabled": False}))
    assert [f.name for f in filters] == ["dedup", "length", "answer", "code_block", "repetition", "language"]
    assert skipped == {"decontam": "no benchmark files configured", "paragraph": "disabled in config"}


def test_decontam_named_without_benchmarks_fails():
    with pytest.raises(ValueError, match="decontam.benchmarks"):
        build_filters(FiltersConfig(), ["decontam"])
