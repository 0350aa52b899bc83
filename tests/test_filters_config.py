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


def test_one_loader_yaml_plus_dotted_set_and_errors_name_their_source(tmp_path):
    from datagen.config import ConfigError

    path = tmp_path / "f.yaml"
    path.write_text("filters:\n  lenght: {max_reasoning_tokens: 10}\n")
    with pytest.raises(ConfigError) as err:
        FiltersConfig.from_yaml(path)
    assert str(err.value).splitlines()[1] == (
        f"  {path}: lenght: unknown key (did you mean 'length'?; every key: see filters/config.py)")
    path.write_text("length: {max_reasoning_tokens: 10}\n")
    cfg = FiltersConfig.from_yaml(path, ["length.max_answer_tokens=7", "dedup.enabled=false"])
    assert (cfg.length.max_reasoning_tokens, cfg.length.max_answer_tokens, cfg.dedup.enabled) == (10, 7, False)
    with pytest.raises(ConfigError) as err:
        FiltersConfig.from_yaml(None, ["paragraph.max_word=3"])
    assert str(err.value).splitlines()[1] == (
        "  --set paragraph.max_word: unknown key (did you mean 'paragraph.max_words'?; "
        "every key: see filters/config.py)")


def test_each_filter_default_is_stated_once_in_its_config_section():
    from filters.runner import build_filter

    for name in ("dedup", "length", "code_block", "paragraph", "repetition"):
        built = build_filter(name, FiltersConfig())
        section = getattr(FiltersConfig(), name).model_dump(exclude={"enabled"})
        for key, value in section.items():
            if key == "tokenizer":
                assert built.counter == "approx"
                continue
            got = getattr(built, key)
            assert (sorted(got) if isinstance(got, frozenset) else got) == value, (name, key)
