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


# --------------------------------------------------------------------------- bounded memory


def _mixed_inputs():
    """Reasoning rows with duplicates and unusable ones; two non-reasoning sources with different columns."""
    reasoning = [reasoning_row(i) for i in range(40)]
    reasoning += [reasoning_row(i, prompt=f"Compute {i} + 1.") | {"sample_id": f"r{i}:1"} for i in range(5)]  # dups
    reasoning += [reasoning_row(100 + i, completion="no think here") for i in range(3)]  # no reasoning
    generated = [plain_row(i, completion=f"<think>short</think>Answer {i}") | {"accepted": i % 4 != 0, "cot": "none"}
                 for i in range(20)]
    chats = [{"problem_id": f"c{i}", "sample_id": f"c{i}", "source": "chat", "domain": "general", "language": "de",
              "prompt": f"Und {i}?", "summary": f"Antwort {i}",
              "messages": [{"role": "user", "content": "Hallo"}, {"role": "assistant", "content": "Hi"},
                           {"role": "user", "content": f"Und {i}?"}, {"role": "assistant", "content": f"Antwort {i}"}]
              if i % 2 else None} for i in range(10)]
    return reasoning, generated, chats


def _batched(rows, size):
    def batches():
        for i in range(0, len(rows), size):
            yield pl.DataFrame(rows[i:i + size], infer_schema_length=None)
    return batches


@pytest.mark.parametrize("config", [
    MixConfig(reasoning_count=30, non_reasoning_count=12, seed=5),
    MixConfig(reasoning_count=500, non_reasoning_count=500, system_prompt="Be brief.", format="cold_start"),
])
def test_streaming_mix_writes_the_rows_of_the_in_memory_mix_in_the_same_order(tmp_path, config):
    from datagen.mix import mix_streaming

    reasoning, generated, chats = _mixed_inputs()
    expected = mix(reasoning, pl.concat([pl.DataFrame(generated), pl.DataFrame(chats, infer_schema_length=None)],
                                        how="diagonal_relaxed"), config)
    written = []
    stats = mix_streaming([("reasoning", _batched(reasoning, 7)), ("non_reasoning", _batched(generated, 6)),
                           ("non_reasoning", _batched(chats, 4))], written.append, config,
                          spill_dir=tmp_path / "spill", bucket_rows=5)
    got = pl.concat(written)
    assert len(written) > 1  # several buckets, each sorted on its own
    assert got.equals(expected.rows)
    assert stats == expected.stats
    assert stats["duplicates_removed"] == 5 and stats["skipped"]["reasoning"] == {"no_reasoning": 3}
    assert list((tmp_path / "spill").iterdir()) == []  # the spill is cleaned up


def test_streaming_mix_rejects_an_unknown_kind(tmp_path):
    from datagen.mix import mix_streaming

    with pytest.raises(ValueError, match="kind 'chat'"):
        mix_streaming([("chat", _batched([reasoning_row(0)], 1))], print, spill_dir=tmp_path)


@pytest.mark.usefixtures("prefect_harness")
def test_mix_flow_streams_sharded_versions_to_the_rows_of_the_in_memory_mix(tmp_path):
    from datagen.store import Store
    from flows.mix import MixParams, mix_flow

    reasoning, generated, chats = _mixed_inputs()
    store = Store(str(tmp_path / "store"))
    refs = []
    for name, rows in (("selected", reasoning), ("general", generated), ("chats", chats)):
        writer = store.writer(name, stage="test")
        for i in range(0, len(rows), 9):
            writer.write_shard(f"part-{i // 9:05d}", rows[i:i + 9])
        refs.append(writer.commit().ref)
    config = MixConfig(reasoning_count=25, non_reasoning_count=10, seed=2)
    out = mix_flow(MixParams(root=str(tmp_path / "store"), reasoning=refs[0], non_reasoning=refs[1:], mix=config,
                             batch_rows=4, spill_dir=str(tmp_path)))
    expected = mix(reasoning, pl.concat([pl.DataFrame(generated), pl.DataFrame(chats, infer_schema_length=None)],
                                        how="diagonal_relaxed"), config)
    got = store.scan(out).collect()
    assert got.select(expected.rows.columns).equals(expected.rows)
    assert store.resolve(out).stats["mix"]["taken"] == {"reasoning": 25, "non_reasoning": 10}
    empty = mix_flow(MixParams(root=str(tmp_path / "store"), reasoning=refs[0], mix={"reasoning_count": 0,
                                                                                     "non_reasoning_count": 0}))
    assert store.resolve(empty).rows == 0
