"""Sharded, resumable generation: shard names, rows, markers, reruns, SIGKILL."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from datagen.files import read_records
from datagen.generate import (
    GenerateConfig,
    GenerationFailed,
    GenOutput,
    GenResult,
    HFBackendConfig,
    SamplingConfig,
    finish_stats,
    generate,
    generate_checked,
    generate_shard,
    make_backend,
    plan_shards,
    sample_seed,
)
from datagen.tinymodel import save_tiny


def _problems(count: int) -> list[dict]:
    return [
        {"problem_id": f"p{i:03d}", "sample_id": f"p{i:03d}", "source": "test", "domain": "math",
         "language": "en", "prompt": f"What is {i} + {i}?", "answer": str(2 * i)}
        for i in range(count)
    ]


def _config(model: str, **overrides) -> GenerateConfig:
    base = {"backend": HFBackendConfig(model=model), "n": 2, "template": "r1_zero.v1", "exemplars": None, "k": 0,
                "sampling": SamplingConfig(max_tokens=12, seed=0)}
    return GenerateConfig(**{**base, **overrides})


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return str(save_tiny(tmp_path_factory.mktemp("tiny")))


@pytest.fixture(scope="module")
def backend(tiny):
    return make_backend(HFBackendConfig(model=tiny))


class CountingBackend:
    """Test double: wraps a real backend and counts the requests it serves."""

    def __init__(self, inner):
        self.inner, self.name, self.requests = inner, inner.name, 0

    def generate(self, requests):
        self.requests += len(requests)
        return self.inner.generate(requests)


class FailingPromptBackend:
    """Test double: a backend that cannot serve prompts containing 'poison'."""

    def __init__(self, inner):
        self.inner, self.name = inner, inner.name

    def generate(self, requests):
        ok = [r for r in requests if "poison" not in r.prompt]
        served = iter(self.inner.generate(ok))
        return [GenResult([GenOutput(None, "error", error="HTTP 400: bad prompt")] * r.n) if "poison" in r.prompt
                else next(served) for r in requests]


def test_shard_names_are_deterministic_from_sorted_ids(tiny):
    config = _config(tiny)
    problems = _problems(5)
    a = plan_shards(problems, config, 2)
    b = plan_shards(list(reversed(problems)), config, 2)
    assert [s.name for s in a] == [s.name for s in b]
    assert [[p["problem_id"] for p in s.problems] for s in a] == [["p000", "p001"], ["p002", "p003"], ["p004"]]
    assert a[0].name.startswith("shard-00000-")
    other = plan_shards(problems, _config(tiny, n=3), 2)
    assert a[0].name != other[0].name  # a changed config never reuses shards


def test_duplicate_problem_ids_are_refused(tiny):
    with pytest.raises(ValueError, match="duplicate problem_id 'p000'"):
        plan_shards(_problems(2) + _problems(1), _config(tiny), 2)


def test_output_rows_carry_problem_and_generation_columns(tmp_path, backend, tiny):
    config = _config(tiny)
    path = generate_shard(_problems(2), backend, config, shard_dir=tmp_path, shard_name="s")
    rows = read_records(path)
    assert [r["sample_id"] for r in rows] == ["p000:0", "p000:1", "p001:0", "p001:1"]
    row = rows[0]
    assert row["problem_id"] == "p000" and row["answer"] == "0" and row["prompt"] == "What is 0 + 0?"
    assert row["model"] == tiny
    assert row["finish_reason"] in ("stop", "length")
    assert 1 <= row["completion_tokens"] <= 12
    assert json.loads(row["sampling"]) == {"temperature": 0.6, "top_p": 0.95, "max_tokens": 12, "stop": [],
                                           "seed": 0, "n": 2}
    assert row["prompt_template"] == "r1_zero.v1" and len(row["prompt_hash"]) == 16
    assert row["generation_error"] is None
    marker = json.loads((tmp_path / "s.done.json").read_text())
    assert marker["rows"] == 4 and marker["config_fingerprint"] == config.fingerprint()


def test_completion_without_tags_from_prefilled_template_is_unfinished_reasoning(tmp_path):
    model = str(save_tiny(tmp_path / "m", prefill_think=True))
    config = _config(model, template="general_writing.v1", n=1, sampling=SamplingConfig(max_tokens=8, seed=3))
    rows = read_records(generate_shard(_problems(3), make_backend(config.backend), config,
                                       shard_dir=tmp_path / "out", shard_name="s"))
    for row in rows:
        if "</think>" not in row["completion"]:
            # The template pre-filled <think>: untagged text is reasoning, not an answer.
            assert row["summary"] is None and row["reasoning"] == row["completion"].strip()
        else:
            assert row["reasoning"] == row["completion"].split("</think>")[0].strip()


def test_rerun_skips_finished_shards(tmp_path, backend, tiny):
    config = _config(tiny)
    counting = CountingBackend(backend)
    first = generate(_problems(5), counting, config, work_dir=tmp_path, shard_size=2)
    assert counting.requests == 5 and len(first) == 3
    mtimes = [p.stat().st_mtime_ns for p in first]
    again = generate(_problems(5), counting, config, work_dir=tmp_path, shard_size=2)
    assert again == first and counting.requests == 5
    assert [p.stat().st_mtime_ns for p in again] == mtimes


def test_data_without_marker_is_regenerated(tmp_path, backend, tiny):
    """A kill between the data rename and the marker write leaves data without a marker."""
    config = _config(tiny)
    counting = CountingBackend(backend)
    path = generate_shard(_problems(2), counting, config, shard_dir=tmp_path, shard_name="s")
    (tmp_path / "s.done.json").unlink()
    (tmp_path / ".s.parquet.tmp-999999").write_bytes(b"half a file")
    generate_shard(_problems(2), counting, config, shard_dir=tmp_path, shard_name="s")
    assert counting.requests == 4
    assert len(read_records(path)) == 4
    assert not list(tmp_path.glob(".*tmp-*"))


def test_corrupted_shard_is_regenerated(tmp_path, backend, tiny):
    config = _config(tiny)
    counting = CountingBackend(backend)
    path = generate_shard(_problems(1), counting, config, shard_dir=tmp_path, shard_name="s")
    path.write_bytes(b"not parquet")
    generate_shard(_problems(1), counting, config, shard_dir=tmp_path, shard_name="s")
    assert counting.requests == 2 and len(read_records(path)) == 2


def test_failed_request_is_recorded_not_fatal(tmp_path, backend, tiny):
    config = _config(tiny, max_error_share=0.5)
    problems = _problems(2)
    problems[1]["prompt"] = "poison"
    rows = read_records(generate_shard(problems, FailingPromptBackend(backend), config,
                                       shard_dir=tmp_path, shard_name="s"))
    assert [r["finish_reason"] for r in rows][2:] == ["error", "error"]
    assert rows[2]["generation_error"] == "HTTP 400: bad prompt" and rows[2]["completion"] is None
    assert all(r["finish_reason"] != "error" for r in rows[:2])
    marker = json.loads((tmp_path / "s.done.json").read_text())
    assert marker["finish_reasons"]["error"] == 2


def test_fewshot_config_renders_chat_requests(tmp_path, tiny):
    # The long-CoT exemplars are ~3,000 characters: a context that fits them (a
    # prompt past the context is an error, and a shard of errors now fails).
    long_tiny = str(save_tiny(tmp_path / "long", max_position_embeddings=8192))
    backend = make_backend(HFBackendConfig(model=long_tiny))
    config = _config(long_tiny, template="cold_start_fewshot.v1", exemplars="long_cot_math.v1", k=2, n=1,
                     sampling=SamplingConfig(max_tokens=4, seed=0))
    rows = read_records(generate_shard(_problems(2), backend, config, shard_dir=tmp_path, shard_name="s"))
    assert rows[0]["prompt_template"] == "cold_start_fewshot.v1"
    assert all(r["finish_reason"] != "error" for r in rows)
    assert rows[0]["prompt_hash"] != read_records(generate_shard(
        _problems(1), backend, _config(long_tiny, n=1), shard_dir=tmp_path, shard_name="t"))[0]["prompt_hash"]


def test_config_rejects_unknown_keys_and_bad_combinations(tiny):
    with pytest.raises(ValueError, match="extra"):
        GenerateConfig(backend={"kind": "hf", "model": tiny}, temprature=0.7)
    with pytest.raises(ValueError, match="k > 0 needs an exemplar file"):
        GenerateConfig(backend={"kind": "hf", "model": tiny}, exemplars=None, k=2)
    config = GenerateConfig(backend={"kind": "openai", "model": "m"})
    assert config.sampling.temperature == 0.6 and config.sampling.top_p == 0.95
    assert config.sampling.max_tokens == 32768


_WORKER = textwrap.dedent(
    """
    import sys
    from datagen.generate import GenerateConfig, HFBackendConfig, SamplingConfig, generate, make_backend
    model, work_dir = sys.argv[1], sys.argv[2]
    problems = [{"problem_id": f"p{i:03d}", "sample_id": f"p{i:03d}", "source": "t", "domain": "math",
                 "language": "en", "prompt": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(24)]
    config = GenerateConfig(backend=HFBackendConfig(model=model), n=3, template="r1_zero.v1", exemplars=None,
                            k=0, sampling=SamplingConfig(max_tokens=16, seed=0))
    generate(problems, make_backend(config.backend), config, work_dir=work_dir, shard_size=2)
    """
)


def test_sigkill_then_rerun_gives_exactly_n_samples_per_problem(tmp_path, tiny):
    work = tmp_path / "work"
    proc = subprocess.Popen([sys.executable, "-c", _WORKER, tiny, str(work)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    try:
        # Kill once some shards are finished but (almost surely) not all: mid-run.
        while time.monotonic() < deadline and len(list(work.glob("*.done.json"))) < 2:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            time.sleep(0.01)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finished_before = {p.name: p.stat().st_mtime_ns for p in work.glob("*.done.json")}
    assert 2 <= len(finished_before) < 12, "the kill should land mid-run"

    rerun = subprocess.run([sys.executable, "-c", _WORKER, tiny, str(work)], check=False, capture_output=True,
                           timeout=300)
    assert rerun.returncode == 0, rerun.stderr.decode()[-2000:]

    markers = list(work.glob("*.done.json"))
    assert len(markers) == 12
    for name, mtime in finished_before.items():  # finished shards were skipped, not redone
        assert (work / name).stat().st_mtime_ns == mtime
    rows = [r for p in sorted(work.glob("*.parquet")) for r in read_records(p)]
    per_problem = collections.Counter(r["problem_id"] for r in rows)
    assert len(per_problem) == 24 and set(per_problem.values()) == {3}
    assert len({r["sample_id"] for r in rows}) == len(rows) == 72
    assert not list(work.glob(".*tmp-*"))


# --------------------------------------------------------------------------- failure threshold, seeds, shares


class RepeatingBackend:
    """Test double: a real backend whose server 'ignores sampling' — every sample is the first one."""

    def __init__(self, inner):
        self.inner, self.name = inner, inner.name

    def generate(self, requests):
        return [GenResult([r.outputs[0]] * len(r.outputs), r.think_prefilled) for r in self.inner.generate(requests)]


def test_error_share_above_threshold_fails_the_shard_naming_endpoint_and_error(tmp_path, backend, tiny):
    problems = _problems(4)
    problems[3]["prompt"] = "poison"  # 2 of 8 samples fail: 25 %
    with pytest.raises(GenerationFailed, match=r"2 of 8 samples failed at .*tiny.*HTTP 400: bad prompt") as info:
        generate_shard(problems, FailingPromptBackend(backend), _config(tiny, max_error_share=0.2),
                       shard_dir=tmp_path, shard_name="s")
    assert not isinstance(info.value.__cause__, ConnectionError)  # a 400 is not retried as transient
    assert not list(tmp_path.iterdir())  # a failed shard writes nothing
    rows, stats = generate_checked(problems, FailingPromptBackend(backend), _config(tiny, max_error_share=0.25))
    assert stats["errors"] == 2 and stats["samples"] == 8 and len(rows) == 8


def test_all_errors_fail_even_with_a_permissive_threshold(tiny):
    from datagen.generate.backends.openai import OpenAIBackend
    from datagen.generate.config import OpenAIBackendConfig
    from datagen.real import free_port

    url = f"http://127.0.0.1:{free_port()}/v1"
    dead = OpenAIBackend(OpenAIBackendConfig(model="m", base_url=url, max_retries=1, backoff_s=0.01))
    config = _config(tiny, max_error_share=1.0)
    with pytest.raises(GenerationFailed, match=f"2 of 2 samples failed at {url}") as info:
        generate_checked(_problems(1), dead, config)
    assert isinstance(info.value.__cause__, ConnectionError)  # transient: the shard task retries it
    with pytest.raises(GenerationFailed, match="every one of the 4 samples failed"):
        finish_stats({"samples": 4, "errors": 4}, config)


def test_stats_count_requests_and_identical_samples_and_warn(backend, tiny, caplog):
    config = _config(tiny, n=4, sampling=SamplingConfig(max_tokens=12, temperature=1.0))
    _, honest = generate_checked(_problems(3), backend, config)
    assert honest["requests"] == 12 and honest["retries"] == 0 and honest["identical_samples"] <= 1
    _, repeated = generate_checked(_problems(3), RepeatingBackend(backend), config)
    assert repeated["identical_samples"] == 9  # 3 of the 4 samples of each problem repeat the first
    with caplog.at_level("WARNING"):
        shown = finish_stats(repeated, config)
    assert shown["identical_samples_share"] == 0.75
    assert "is the server sampling at all" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert finish_stats(honest, config)["identical_samples_share"] <= 0.0834
    assert "sampling at all" not in caplog.text


def test_a_sample_depends_on_seed_problem_and_k_only(tmp_path, tiny):
    import torch

    from datagen.generate import generate_rows

    backend = make_backend(HFBackendConfig(model=tiny, batch_size=1))
    config = _config(tiny, n=3, sampling=SamplingConfig(max_tokens=16, temperature=1.0))
    twins = _problems(3)
    twins[2]["prompt"] = twins[1]["prompt"]  # same prompt, another problem_id
    torch.manual_seed(1)
    together = {r["sample_id"]: r["completion"] for r in generate_rows(twins, backend, config)}
    torch.manual_seed(2)  # the global RNG is not used
    alone = {r["sample_id"]: r["completion"] for r in generate_rows(twins[1:2], backend, config)}
    assert all(together[k] == v for k, v in alone.items())
    # Same prompt, other problem: other seeds, so not the same three draws.
    assert [together[f"p002:{k}"] for k in range(3)] != [together[f"p001:{k}"] for k in range(3)]
    assert sample_seed(0, "p001", 0) != sample_seed(0, "p002", 0) != sample_seed(0, "p001", 1)


def test_prompts_asking_for_think_with_no_reasoning_in_any_sample_warn(tiny, caplog):
    config = _config(tiny)
    stats = {"samples": 4, "errors": 0, "with_reasoning": 0, "think_expected": 4}
    with caplog.at_level("WARNING"):
        assert finish_stats(stats, config)["reasoning_share"] == 0.0
    assert "skips special tokens" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        finish_stats({**stats, "with_reasoning": 1}, config)
        finish_stats({**stats, "think_expected": 0}, config)  # the prompt never asked for think tags
    assert "skips special tokens" not in caplog.text
