"""Rejection sampling: one literal case per rule (datagen/select.py)."""

from __future__ import annotations

import json

import polars as pl
import pytest
from pydantic import ValidationError

from datagen.records import verdict
from datagen.select import SelectConfig, select
from datagen.verify.stage import accept


def sample(pid: str, k: int, accepted, tokens: int | None = 10, *, drop=None, completion=None, domain="math"):
    return {
        "problem_id": pid,
        "sample_id": f"{pid}:{k}",
        "source": "test",
        "domain": domain,
        "language": "en",
        "prompt": f"problem {pid}",
        "answer": "1",
        "completion": completion if completion is not None else "x" * (tokens or 1),
        "completion_tokens": tokens,
        "accepted": accepted,
        "drop": drop,
    }


def problem(pid: str, n_accepted: int, n_rejected: int, n_undecided: int = 0):
    rows = [sample(pid, i, True) for i in range(n_accepted)]
    rows += [sample(pid, n_accepted + i, False) for i in range(n_rejected)]
    rows += [sample(pid, n_accepted + n_rejected + i, None) for i in range(n_undecided)]
    return rows


# --------------------------------------------------------------------------- pass rate and band


def test_band_boundaries_are_inclusive():
    rows = problem("low", 1, 9) + problem("high", 9, 1) + problem("zero", 0, 10) + problem("all", 10, 0)
    rows += problem("below", 1, 10)  # 1/11 < 0.1
    result = select(rows, SelectConfig(k=1))
    assert result.grpo_prompts["problem_id"].to_list() == ["high", "low"]
    assert dict(zip(result.grpo_prompts["problem_id"], result.grpo_prompts["pass_rate"])) == {"high": 0.9, "low": 0.1}


def test_grpo_prompt_rows_carry_pass_rate_and_counts():
    result = select(problem("p", 2, 1, 1), SelectConfig())
    row = result.grpo_prompts.to_dicts()[0]
    assert row["problem_id"] == "p" and row["sample_id"] == "p"
    assert (row["n_samples"], row["n_judged"], row["n_accepted"]) == (4, 3, 2)
    assert row["pass_rate"] == pytest.approx(2 / 3)
    assert row["prompt"] == "problem p" and row["answer"] == "1"
    assert "completion" not in row


def test_undecided_samples_leave_the_denominator():
    # 1 accepted, 1 rejected, 8 undecided: 1/2, not 1/10 (undecided is not a failure).
    result = select(problem("p", 1, 1, 8), SelectConfig())
    assert result.grpo_prompts["pass_rate"].to_list() == [0.5]
    assert result.stats["undecided"] == 8 and result.stats["judged"] == 2


def test_problem_with_no_judged_sample_has_no_pass_rate():
    result = select(problem("p", 0, 0, 3), SelectConfig(band_low=0.0, band_high=1.0))
    assert result.grpo_prompts.height == 0
    assert result.stats["problems_unjudged"] == 1 and result.stats["problems_zero_accepted"] == 0


def test_dropped_samples_count_in_pass_rate_but_are_never_selected():
    rows = [sample("p", 0, True, drop="language:mixed"), sample("p", 1, False)]
    result = select(rows, SelectConfig(k=5))
    assert result.selected.height == 0
    assert result.grpo_prompts["pass_rate"].to_list() == [0.5]
    assert result.stats["dropped"] == 1


def test_min_judged_keeps_thin_problems_out_of_the_band():
    result = select(problem("p", 1, 1), SelectConfig(min_judged=3))
    assert result.grpo_prompts.height == 0


# --------------------------------------------------------------------------- k and tie-breaks


def test_keeps_at_most_k_accepted():
    result = select(problem("p", 5, 3), SelectConfig(k=2))
    assert result.selected.height == 2
    assert result.selected["accepted"].to_list() == [True, True]


def test_shortest_orders_by_tokens_then_chars_then_sample_id():
    rows = [
        sample("p", 0, True, tokens=30),
        sample("p", 1, True, tokens=20, completion="abcd"),
        sample("p", 2, True, tokens=20, completion="ab"),
        sample("p", 3, True, tokens=None),  # unknown length is never "shortest"
        sample("p", 4, True, tokens=20, completion="ab"),
    ]
    result = select(rows, SelectConfig(k=4, tie_break="shortest"))
    assert result.selected["sample_id"].to_list() == ["p:2", "p:4", "p:1", "p:0"]


def test_random_tie_break_is_seeded_and_ignores_row_order():
    rows = problem("p", 20, 0)
    config = SelectConfig(k=3, tie_break="random", seed=7)
    first = select(rows, config).selected["sample_id"].to_list()
    again = select(list(reversed(rows)), config).selected["sample_id"].to_list()
    other = select(rows, SelectConfig(k=3, tie_break="random", seed=8)).selected["sample_id"].to_list()
    assert first == again
    assert first != other


def test_selected_rows_keep_their_columns_and_gain_pass_rate():
    result = select(problem("p", 1, 1), SelectConfig())
    row = result.selected.to_dicts()[0]
    assert row["sample_id"] == "p:0" and row["completion"] == "x" * 10 and row["pass_rate"] == 0.5


# --------------------------------------------------------------------------- inputs and stats


def test_accepts_lazy_and_eager_frames():
    rows = problem("p", 1, 1)
    eager = select(pl.DataFrame(rows), SelectConfig())
    lazy = select(pl.DataFrame(rows).lazy(), SelectConfig())
    assert eager.selected.equals(lazy.selected)


def test_stats_histogram_zero_accepted_and_domains():
    rows = problem("a", 0, 2) + problem("b", 2, 0) + [sample("g", 0, True, domain="general")]
    stats = select(rows, SelectConfig()).stats
    assert stats["problems"] == 3 and stats["samples"] == 5 and stats["selected"] == 3
    assert stats["problems_zero_accepted"] == 1
    assert stats["pass_rate_histogram"]["0.0-0.1"] == 1 and stats["pass_rate_histogram"]["0.9-1.0"] == 2
    assert stats["by_domain"]["math"]["acceptance_rate"] == 0.5
    assert stats["by_domain"]["general"] == {
        "samples": 1,
        "judged": 1,
        "accepted": 1,
        "undecided": 0,
        "dropped": 0,
        "selected": 1,
        "acceptance_rate": 1.0,
    }


def test_all_null_columns_from_a_frame_are_typed():
    frame = pl.DataFrame(
        {
            "problem_id": ["p", "p"],
            "sample_id": ["p:0", "p:1"],
            "accepted": [True, True],
            "completion": [None, None],
            "drop": [None, None],
            "completion_tokens": [None, None],
        }
    )
    assert select(frame, SelectConfig(k=1)).selected["sample_id"].to_list() == ["p:0"]
    unjudged = select(frame.with_columns(accepted=pl.lit(None)), SelectConfig())
    assert unjudged.stats["problems_unjudged"] == 1


def test_missing_required_column_names_it():
    with pytest.raises(ValueError, match="'accepted'"):
        select(pl.DataFrame({"problem_id": ["p"], "sample_id": ["p:0"]}), SelectConfig())


# --------------------------------------------------------------------------- config


def test_config_rejects_inverted_band_with_a_fix():
    with pytest.raises(ValidationError, match="set band_low <= band_high"):
        SelectConfig(band_low=0.8, band_high=0.2)


@pytest.mark.parametrize("bad", [{"k": 0}, {"band_low": -0.1}, {"band_high": 1.5}, {"tie_break": "longest"}, {"kk": 1}])
def test_config_rejects_bad_values_and_unknown_keys(bad):
    with pytest.raises(ValidationError):
        SelectConfig(**bad)


# --------------------------------------------------------------------------- accept


def row_with(domain: str, verdicts):
    return {
        "problem_id": "p",
        "sample_id": "p:0",
        "source": "t",
        "domain": domain,
        "language": "en",
        "prompt": "q",
        "verdicts": verdicts,
    }


def decide(domain: str, verdicts, **kwargs):
    return accept([row_with(domain, verdicts)], **kwargs)


def test_accept_all_correct_is_true():
    result = decide("math", {"math": verdict("correct"), "format": verdict("correct")})
    assert result.rows["accepted"].to_list() == [True]


def test_accept_optional_format_failure_rejects():
    result = decide("math", {"math": verdict("correct"), "format": verdict("incorrect")})
    assert result.rows["accepted"].to_list() == [False]


def test_accept_verifier_error_is_undecided_not_rejected():
    result = decide("math", {"math": verdict("error", detail="sympy crashed")})
    assert result.rows["accepted"].to_list() == [None]
    assert result.stats["undecided_reasons"] == {"math:error": 1}
    assert result.stats["by_domain"]["math"] == {"rows": 1, "accepted": 0, "rejected": 0, "undecided": 1}


def test_accept_math_verifier_timeout_is_undecided_but_code_timeout_rejects():
    assert decide("math", {"math": verdict("timeout")}).rows["accepted"].to_list() == [None]
    assert decide("code", {"code": verdict("timeout")}).rows["accepted"].to_list() == [False]


def test_accept_judged_failure_wins_over_an_error_elsewhere():
    # The sample cannot pass whatever the errored verifier would have said.
    result = decide("math", {"math": verdict("incorrect"), "format": verdict("error")})
    assert result.rows["accepted"].to_list() == [False]


def test_accept_missing_required_verdict_is_undecided():
    result = decide("code", {"format": verdict("correct")})
    assert result.rows["accepted"].to_list() == [None]
    assert result.stats["undecided_reasons"] == {"code:missing": 1}


def test_accept_general_uses_judge_if_present_else_undecided():
    assert decide("general", {"judge": verdict("correct")}).rows["accepted"].to_list() == [True]
    result = decide("general", None)
    assert result.rows["accepted"].to_list() == [None]
    assert result.stats["undecided_reasons"] == {"no_verdicts": 1}


def test_accept_reads_json_string_verdicts_and_custom_mapping():
    text = json.dumps({"math": verdict("correct"), "judge": verdict("incorrect")})
    assert decide("math", text).rows["accepted"].to_list() == [False]
    only_math = decide("math", text, verifiers_by_domain={"math": ["math"]}, optional_verifiers=())
    assert only_math.rows["accepted"].to_list() == [True]


def test_accept_unknown_domain_uses_every_verdict_present():
    assert decide("proof", {"lean": verdict("correct")}).rows["accepted"].to_list() == [True]


def test_accept_stats_by_domain_and_outcomes():
    rows = [
        row_with("math", {"math": verdict("correct")}),
        row_with("math", {"math": verdict("unparseable")}),
        row_with("math", {"math": verdict("error")}),
    ]
    stats = accept(rows).stats
    assert stats["by_domain"]["math"] == {
        "rows": 3,
        "accepted": 1,
        "rejected": 1,
        "undecided": 1,
    }
    assert stats["outcomes"] == {"math": {"correct": 1, "error": 1, "unparseable": 1}}


def test_accept_then_select_end_to_end():
    rows = [
        dict(row_with("math", {"math": verdict(o)}), sample_id=f"p:{i}", completion_tokens=i)
        for i, o in enumerate(["correct", "incorrect", "error", "correct"])
    ]
    result = select(accept(rows).rows, SelectConfig(k=1))
    assert result.selected["sample_id"].to_list() == ["p:0"]
    assert result.grpo_prompts["pass_rate"].to_list() == [pytest.approx(2 / 3)]


# --------------------------------------------------------------------------- bounded memory: decide, then stream


def _shuffled_rows(n_problems: int = 30):
    import random

    rows = []
    for p in range(n_problems):
        for k in range(6):
            accepted = [True, False, None][(p * 7 + k) % 3] if p % 5 else True
            rows.append(sample(f"p{p:02d}", k, accepted, tokens=(p * 13 + k * 7) % 40 + 1,
                               drop="repetition:loop" if (p + k) % 11 == 0 else None))
    random.Random(0).shuffle(rows)  # a problem's samples spread over shards, as after a sharded generate
    return rows


def test_decide_reads_decision_columns_and_keeps_the_rows_select_keeps():
    from datagen.select import decide

    rows = _shuffled_rows()
    frame = pl.DataFrame(rows)
    full = select(frame, SelectConfig(k=2))
    decision = decide(frame.lazy(), SelectConfig(k=2))
    kept = frame.with_row_index("_row").join(decision.keep, on="_row").sort("_order")
    assert kept["sample_id"].to_list() == full.selected["sample_id"].to_list()
    assert decision.stats == full.stats and decision.grpo_prompts.equals(full.grpo_prompts)
    assert 0 < full.selected.height < frame.height and full.grpo_prompts.height > 0
    # The completion is read only as its length: the decision frames hold no text column.
    assert "completion" not in decision.keep.columns and "prompt" not in decision.keep.columns


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize("tie_break", ["shortest", "random"])
def test_select_flow_streams_shards_and_writes_the_same_rows_as_in_memory_select(tmp_path, tie_break):
    from datagen.store import Store
    from flows.select import SelectParams, select_flow

    rows = _shuffled_rows()
    store = Store(str(tmp_path))
    writer = store.writer("filtered", stage="filter")
    for i in range(0, len(rows), 40):  # 5 shards, the last one short
        writer.write_shard(f"part-{i // 40:05d}", rows[i:i + 40])
    source = writer.commit().ref
    config = SelectConfig(k=2, tie_break=tie_break, seed=3)
    out = select_flow(SelectParams(root=str(tmp_path), input=source, select=config))
    written = store.scan(out["selected"]).collect()
    expected = select(pl.DataFrame(rows), config).selected
    key = ["sample_id"]
    assert written.sort(key).select(expected.columns).equals(expected.sort(key).select(expected.columns))
    assert store.resolve(out["selected"]).stats["select"]["selected"] == expected.height
    prompts = store.scan(out["grpo_prompts"]).collect()
    assert prompts["problem_id"].to_list() == select(pl.DataFrame(rows), config).grpo_prompts["problem_id"].to_list()
    assert prompts["prompt"].to_list() == [f"problem {p}" for p in prompts["problem_id"].to_list()]


@pytest.mark.usefixtures("prefect_harness")
def test_select_flow_with_nothing_selected_writes_an_empty_version(tmp_path):
    from datagen.store import Store
    from flows.select import SelectParams, select_flow

    store = Store(str(tmp_path))
    writer = store.writer("filtered", stage="filter")
    writer.write_shard("part-00000", problem("a", 0, 3))
    writer.write_shard("part-00001", problem("b", 0, 2))
    out = select_flow(SelectParams(root=str(tmp_path), input=writer.commit().ref))
    assert store.resolve(out["selected"]).rows == 0
