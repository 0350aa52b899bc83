"""The reasoning / non-reasoning mix: one literal case per rule (datagen/mix.py)."""

from __future__ import annotations

import polars as pl
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from datagen.files import read_records, write_records
from datagen.mix import MESSAGES_DTYPE, MixConfig, mix


def reasoning_row(i: int, *, prompt: str | None = None, completion: str | None = None, source="arith", domain="math"):
    return {
        "problem_id": f"r{i}",
        "sample_id": f"r{i}:0",
        "source": source,
        "domain": domain,
        "language": "en",
        "prompt": prompt or f"Compute {i} + 1.",
        "completion": completion if completion is not None else f"<think>{i} plus one</think>{i + 1}",
    }


def plain_row(i: int, *, answer: str | None = None, completion: str | None = None):
    return {
        "problem_id": f"g{i}",
        "sample_id": f"g{i}",
        "source": "general",
        "domain": "general",
        "language": "en",
        "prompt": f"Say {i}.",
        "answer": answer if answer is not None else str(i),
        "completion": completion,
    }


def assistant(result, sample_id: str) -> str:
    row = result.rows.filter(pl.col("sample_id") == sample_id).to_dicts()[0]
    return row["messages"][-1]["content"]


# --------------------------------------------------------------------------- formats


def test_think_tag_format():
    result = mix([reasoning_row(1)], [], MixConfig(reasoning_count=1, non_reasoning_count=0))
    assert result.rows["messages"].to_list()[0] == [
        {"role": "user", "content": "Compute 1 + 1."},
        {"role": "assistant", "content": "<think>\n1 plus one\n</think>\n\n2"},
    ]


def test_cold_start_summary_format():
    config = MixConfig(reasoning_count=1, non_reasoning_count=0, format="cold_start")
    assert assistant(mix([reasoning_row(1)], [], config), "r1:0") == "|special_token|1 plus one|special_token|2"


def test_system_prompt_goes_first():
    config = MixConfig(reasoning_count=1, non_reasoning_count=0, system_prompt="Be brief.")
    messages = mix([reasoning_row(1)], [], config).rows["messages"].to_list()[0]
    assert [m["role"] for m in messages] == ["system", "user", "assistant"]
    assert messages[0]["content"] == "Be brief."


def test_reasoning_and_summary_columns_win_over_completion():
    row = dict(reasoning_row(1), reasoning="R", summary="S")
    assert (
        assistant(mix([row], [], MixConfig(reasoning_count=1, non_reasoning_count=0)), "r1:0")
        == "<think>\nR\n</think>\n\nS"
    )


def test_non_reasoning_shows_cot_only_if_present():
    rows = [plain_row(1, completion="just one"), plain_row(2, completion="<think>why</think>two"), plain_row(3)]
    result = mix([], rows, MixConfig(reasoning_count=0, non_reasoning_count=3))
    assert assistant(result, "g1") == "just one"
    assert assistant(result, "g2") == "<think>\nwhy\n</think>\n\ntwo"
    assert assistant(result, "g3") == "3"  # no completion: the reference answer is the response


def test_unusable_rows_are_skipped_and_counted():
    rows = [
        reasoning_row(1, completion="no tags here"),
        reasoning_row(2, completion="<think>cut off"),
        reasoning_row(3),
    ]
    result = mix(rows, [plain_row(4, answer="")], MixConfig(reasoning_count=3, non_reasoning_count=1))
    assert result.rows["sample_id"].to_list() == ["r3:0"]
    assert result.stats["skipped"] == {
        "reasoning": {"no_reasoning": 1, "no_summary": 1},
        "non_reasoning": {"no_response": 1},
    }


# --------------------------------------------------------------------------- dedup


def test_duplicates_by_normalized_prompt_and_answer_are_removed():
    a = reasoning_row(1, prompt="Compute 1 + 1.")
    b = dict(reasoning_row(1, prompt="  compute 1   +  1. "), problem_id="x", sample_id="x:0")  # same after normalizing
    c = reasoning_row(1, prompt="Compute 1 + 1.", completion="<think>other way</think>2")  # same prompt, new answer
    c["sample_id"] = "r1:1"
    result = mix([b, a, c], [], MixConfig(reasoning_count=10, non_reasoning_count=0))
    assert result.stats["duplicates_removed"] == 1
    assert sorted(result.rows["sample_id"].to_list()) == ["r1:0", "r1:1"]  # keeps the smallest sample_id


def test_duplicate_across_parts_keeps_the_reasoning_copy():
    r = reasoning_row(1, prompt="Say 1.", completion="<think>a</think>b")
    g = plain_row(1, completion="<think>a</think>b")
    result = mix([r], [g], MixConfig(reasoning_count=5, non_reasoning_count=5))
    assert result.rows["kind"].to_list() == ["reasoning"]
    assert result.stats["duplicates_removed"] == 1


# --------------------------------------------------------------------------- targets


def test_target_counts_are_met_exactly_when_enough_rows():
    result = mix(
        [reasoning_row(i) for i in range(10)],
        [plain_row(i) for i in range(10)],
        MixConfig(reasoning_count=6, non_reasoning_count=2),
    )
    assert result.stats["taken"] == {"reasoning": 6, "non_reasoning": 2}
    assert result.stats["shortfall"] == {"reasoning": 0, "non_reasoning": 0}
    assert result.stats["by_kind"] == {"non_reasoning": 2, "reasoning": 6}


def test_ratio_of_total():
    config = MixConfig(reasoning_fraction=0.75, total=8)
    assert config.targets() == {"reasoning": 6, "non_reasoning": 2}
    result = mix([reasoning_row(i) for i in range(10)], [plain_row(i) for i in range(10)], config)
    assert result.rows.height == 8 and result.stats["taken"] == {"reasoning": 6, "non_reasoning": 2}


def test_shortfall_takes_everything_and_is_recorded(caplog):
    with caplog.at_level("WARNING", logger="datagen.mix"):
        result = mix(
            [reasoning_row(i) for i in range(3)], [plain_row(0)], MixConfig(reasoning_count=5, non_reasoning_count=1)
        )
    assert result.stats["taken"] == {"reasoning": 3, "non_reasoning": 1}
    assert result.stats["shortfall"] == {"reasoning": 2, "non_reasoning": 0}
    assert "shortfall 2" in caplog.text


def test_empty_inputs_give_an_empty_mix_with_the_full_shortfall():
    result = mix([], [], MixConfig(reasoning_count=2, non_reasoning_count=1))
    assert result.rows.height == 0 and result.rows.columns[-1] == "messages"
    assert result.stats["shortfall"] == {"reasoning": 2, "non_reasoning": 1}


def test_default_targets_are_r1s_600k_200k():
    assert MixConfig().targets() == {"reasoning": 600_000, "non_reasoning": 200_000}


def test_counts_per_source_and_domain():
    rows = [
        reasoning_row(0, source="a"),
        reasoning_row(1, source="b", domain="code"),
        reasoning_row(2, source="b", domain="code"),
    ]
    stats = mix(rows, [plain_row(0)], MixConfig(reasoning_count=3, non_reasoning_count=1)).stats
    assert stats["by_source"] == {"a": 1, "b": 2, "general": 1}
    assert stats["by_domain"] == {"code": 2, "general": 1, "math": 1}


# --------------------------------------------------------------------------- determinism


def test_same_seed_same_output_whatever_the_input_order():
    rows = [reasoning_row(i) for i in range(30)]
    config = MixConfig(reasoning_count=10, non_reasoning_count=0, seed=3)
    first = mix(rows, [], config).rows["sample_id"].to_list()
    assert mix(list(reversed(rows)), [], config).rows["sample_id"].to_list() == first
    assert (
        mix(rows, [], MixConfig(reasoning_count=10, non_reasoning_count=0, seed=4)).rows["sample_id"].to_list() != first
    )


def test_output_is_shuffled_across_parts():
    result = mix(
        [reasoning_row(i) for i in range(20)],
        [plain_row(i) for i in range(20)],
        MixConfig(reasoning_count=20, non_reasoning_count=20),
    )
    kinds = result.rows["kind"].to_list()
    assert kinds != sorted(kinds) and kinds != sorted(kinds, reverse=True)


# --------------------------------------------------------------------------- config


def test_counts_and_ratio_together_are_rejected_with_a_fix():
    with pytest.raises(ValidationError, match="not both"):
        MixConfig(reasoning_count=10, reasoning_fraction=0.5, total=20)


def test_ratio_needs_a_total():
    with pytest.raises(ValidationError, match="needs both reasoning_fraction and total"):
        MixConfig(reasoning_fraction=0.5)


@pytest.mark.parametrize(
    "bad",
    [
        {"reasoning_fraction": 1.5, "total": 3},
        {"reasoning_count": -1},
        {"format": "xml"},
        {"special_token": ""},
        {"ratio": 0.5},
    ],
)
def test_config_rejects_bad_values_and_unknown_keys(bad):
    with pytest.raises(ValidationError):
        MixConfig(**bad)


# --------------------------------------------------------------------------- storage


def test_messages_round_trip_through_parquet(tmp_path):
    rows = mix(
        [reasoning_row(1)], [plain_row(2)], MixConfig(reasoning_count=1, non_reasoning_count=1, system_prompt="s")
    ).rows
    assert rows.schema["messages"] == MESSAGES_DTYPE
    path = tmp_path / "mix.parquet"
    rows.write_parquet(path)
    assert pl.read_parquet(path)["messages"].to_list() == rows["messages"].to_list()
    assert pq.read_table(path).column("messages").to_pylist() == rows["messages"].to_list()
    # And through the shared record writer (pyarrow infers the same list<struct>).
    write_records(tmp_path / "mix2.parquet", rows.to_dicts())
    assert [r["messages"] for r in read_records(tmp_path / "mix2.parquet")] == rows["messages"].to_list()
    assert pl.read_parquet(tmp_path / "mix2.parquet").schema["messages"] == MESSAGES_DTYPE
