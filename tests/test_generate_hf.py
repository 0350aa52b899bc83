"""The transformers backend on a tiny random Llama model built locally."""

from __future__ import annotations

import pytest

from datagen.generate import GenRequest, HFBackendConfig, SamplingConfig, make_backend
from datagen.tinymodel import save_tiny

FAST = SamplingConfig(max_tokens=16, seed=0)


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    path = save_tiny(tmp_path_factory.mktemp("tiny"), max_position_embeddings=256)
    return make_backend(HFBackendConfig(model=str(path), batch_size=4))


@pytest.fixture(scope="module")
def prefill_backend(tmp_path_factory):
    path = save_tiny(tmp_path_factory.mktemp("tiny_prefill"), prefill_think=True)
    return make_backend(HFBackendConfig(model=str(path)))


def test_n_samples_per_request_with_token_counts(backend):
    results = backend.generate([GenRequest(prompt="1+1=", n=3, sampling=FAST),
                                GenRequest(prompt="a much longer prompt", n=2, sampling=FAST)])
    assert [len(r.outputs) for r in results] == [3, 2]
    first = results[0].outputs[0]
    assert first.prompt_tokens == 4  # one token per character
    assert results[1].outputs[0].prompt_tokens == len("a much longer prompt")  # left padding not counted
    for out in results[0].outputs + results[1].outputs:
        assert out.finish_reason in ("stop", "length")
        assert 1 <= out.completion_tokens <= 16
        assert isinstance(out.text, str)


def test_max_tokens_cut_is_length(backend):
    out = backend.generate([GenRequest(prompt="x", n=4, sampling=SamplingConfig(max_tokens=3, seed=1))])[0].outputs
    assert any(o.finish_reason == "length" and o.completion_tokens == 3 for o in out)


def test_sampling_is_seeded(backend):
    req = [GenRequest(prompt="2+2=", n=2, sampling=SamplingConfig(max_tokens=12, seed=5))]
    assert [o.text for o in backend.generate(req)[0].outputs] == [o.text for o in backend.generate(req)[0].outputs]


def test_greedy_repeats_one_decode_n_times(backend):
    out = backend.generate([GenRequest(prompt="9*9=", n=3, sampling=SamplingConfig(temperature=0, max_tokens=8))])
    texts = [o.text for o in out[0].outputs]
    assert len(texts) == 3 and len(set(texts)) == 1


def test_mixed_sampling_in_one_call_keeps_request_order(backend):
    reqs = [GenRequest(prompt="a", n=1, sampling=SamplingConfig(max_tokens=4)),
            GenRequest(prompt="b", n=2, sampling=SamplingConfig(max_tokens=6)),
            GenRequest(prompt="c", n=1, sampling=SamplingConfig(max_tokens=4))]
    results = backend.generate(reqs)
    assert [len(r.outputs) for r in results] == [1, 2, 1]
    assert [r.outputs[0].prompt_tokens for r in results] == [1, 1, 1]


def test_one_bad_request_fails_alone(backend):
    too_long = "x" * 300  # past the model's 256-position context
    results = backend.generate([GenRequest(prompt="ok", n=2, sampling=FAST),
                                GenRequest(prompt=too_long, n=2, sampling=FAST)])
    assert all(o.finish_reason != "error" for o in results[0].outputs)
    assert [o.finish_reason for o in results[1].outputs] == ["error", "error"]
    assert "longer than the model's context 256" in results[1].outputs[0].error


def test_chat_messages_go_through_chat_template(backend):
    request = GenRequest(messages=[{"role": "user", "content": "hi"}], n=1, sampling=FAST)
    assert backend.render(request) == "<|user|>hi<|end|><|assistant|>"
    result = backend.generate([request])[0]
    assert result.outputs[0].prompt_tokens == 5  # <|user|> h i <|end|> <|assistant|>
    assert result.think_prefilled is False


def test_prefilled_think_template_is_detected(prefill_backend):
    request = GenRequest(messages=[{"role": "user", "content": "hi"}], n=1, sampling=FAST)
    assert prefill_backend.render(request).endswith("<|assistant|><think>")
    assert prefill_backend.generate([request])[0].think_prefilled is True


def test_stop_string_is_cut_from_text(backend):
    # Greedy output of this prompt is fixed; stop at its second character.
    greedy = SamplingConfig(temperature=0, max_tokens=8)
    text = backend.generate([GenRequest(prompt="stop", n=1, sampling=greedy)])[0].outputs[0].text
    stop = text[1]
    out = backend.generate([GenRequest(prompt="stop", n=1, sampling=greedy.model_copy(update={"stop": (stop,)}))])
    assert out[0].outputs[0].finish_reason == "stop"
    assert stop not in out[0].outputs[0].text
    assert text.startswith(out[0].outputs[0].text)
