"""The vLLM backend: on a GPU with real vLLM, and everywhere with vLLM faked at its import boundary."""

from __future__ import annotations

import sys
import threading
import time
import types

import pytest

from datagen.generate import GenRequest, SamplingConfig, VLLMBackendConfig, make_backend
from datagen.generate.backends import vllm as vllm_backend
from datagen.tinymodel import build_tokenizer, save_tiny


@pytest.mark.gpu
def test_vllm_backend_samples_n_per_prompt(tmp_path):
    pytest.importorskip("vllm")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    model = save_tiny(tmp_path / "tiny", prefill_think=True, hidden_size=64, num_heads=2)
    backend = make_backend(VLLMBackendConfig(model=str(model), dtype="bfloat16", max_model_len=512,
                                             gpu_memory_utilization=0.2, seed=0))
    sampling = SamplingConfig(max_tokens=16, seed=0)
    results = backend.generate([GenRequest(prompt="1+1=", n=3, sampling=sampling),
                                GenRequest(messages=[{"role": "user", "content": "hi"}], n=2, sampling=sampling)])
    assert [len(r.outputs) for r in results] == [3, 2]
    assert results[1].think_prefilled is True
    for out in results[0].outputs + results[1].outputs:
        assert out.finish_reason in ("stop", "length") and 1 <= out.completion_tokens <= 16


# --------------------------------------------------------------------------- vLLM faked at its import boundary
#
# vLLM is CUDA-only and not installed on CPU machines. ``FakeVLLM`` stands in
# for the ``vllm`` module (``LLM``, ``SamplingParams``) and is named as a fake:
# it does what vLLM does at the boundary that matters here — it tokenizes a
# *text* prompt with special tokens (so a rendered chat template that already
# wrote a BOS gets a second one) and takes ``{"prompt_token_ids": …}`` as is —
# and it records what reached the engine and how many callers were inside it
# at once. The tokenizer is a real transformers tokenizer built locally whose
# chat template emits ``bos_token`` (as Llama's and R1-Distill's do).


BOS_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|><think>' }}{% endif %}"
)


def _bos_tokenizer():
    from tokenizers import processors

    tok = build_tokenizer()
    # Like Llama's tokenizer: encoding text with special tokens prepends the BOS.
    tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tok.bos_token_id)])
    tok.chat_template = BOS_TEMPLATE
    return tok


class FakeVLLM:
    """A fake of the ``vllm`` module's offline API, installed in ``sys.modules``."""

    def __init__(self):
        self.tokenizer = _bos_tokenizer()
        self.engine_prompts: list[list[int]] = []
        self.engines_built = 0
        self.inside = 0
        self.max_inside = 0
        fake = self

        class SamplingParams:
            def __init__(self, **kwargs):
                self.__dict__.update(kwargs)

        class LLM:
            def __init__(self, **kwargs):
                fake.engines_built += 1
                self.kwargs = kwargs

            def get_tokenizer(self):
                return fake.tokenizer

            def generate(self, prompts, params, use_tqdm=True):
                fake.inside += 1
                fake.max_inside = max(fake.max_inside, fake.inside)
                try:
                    time.sleep(0.02)  # long enough for a second thread to walk in, were it not locked out
                    outs = []
                    for prompt, p in zip(prompts, params):
                        # vLLM tokenizes a text prompt *with* special tokens.
                        ids = prompt["prompt_token_ids"] if isinstance(prompt, dict) else fake.tokenizer.encode(prompt)
                        fake.engine_prompts.append(list(ids))
                        text = f"reasoning {p.seed}</think> The answer is \\boxed{{{p.seed % 7}}}."
                        completion = types.SimpleNamespace(text=text, token_ids=[5] * 9, finish_reason="stop")
                        outs.append(types.SimpleNamespace(prompt_token_ids=ids, outputs=[completion]))
                    return outs
                finally:
                    fake.inside -= 1

        self.module = types.ModuleType("vllm")
        self.module.LLM = LLM
        self.module.SamplingParams = SamplingParams


@pytest.fixture
def fake_vllm(monkeypatch):
    fake = FakeVLLM()
    monkeypatch.setitem(sys.modules, "vllm", fake.module)
    monkeypatch.setattr(vllm_backend, "_ENGINE", None)
    return fake


CHAT = [{"role": "user", "content": "What is 2+3?"}]


def test_fake_vllm_shows_the_double_bos_of_a_rendered_text_prompt(fake_vllm):
    # The trap itself, through the fake: the template's text, tokenized again by the engine.
    text = fake_vllm.tokenizer.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True)
    fake_vllm.module.LLM().generate([text], [fake_vllm.module.SamplingParams(seed=0)])
    bos = fake_vllm.tokenizer.bos_token_id
    assert fake_vllm.engine_prompts[0][:2] == [bos, bos]


def test_chat_template_with_bos_reaches_the_engine_with_one_bos(fake_vllm):
    backend = make_backend(VLLMBackendConfig(model="fake-model"))
    results = backend.generate([GenRequest(messages=CHAT, n=2, sampling=SamplingConfig(max_tokens=8),
                                           seeds=(11, 12))])
    bos = fake_vllm.tokenizer.bos_token_id
    assert len(fake_vllm.engine_prompts) == 2  # one engine prompt per sample, each with its own seed
    for ids in fake_vllm.engine_prompts:
        assert ids.count(bos) == 1 and ids[0] == bos
        assert fake_vllm.tokenizer.decode(ids[1:4]) == "<|user|>Wh"
    assert results[0].think_prefilled is True
    assert [o.text for o in results[0].outputs] == [
        "reasoning 11</think> The answer is \\boxed{4}.", "reasoning 12</think> The answer is \\boxed{5}."]


def test_raw_prompt_gets_the_tokenizers_bos_once(fake_vllm):
    backend = make_backend(VLLMBackendConfig(model="fake-model"))
    backend.generate([GenRequest(prompt="1+1=", n=1, sampling=SamplingConfig(max_tokens=8), seeds=(3,))])
    ids = fake_vllm.engine_prompts[0]
    assert ids.count(fake_vllm.tokenizer.bos_token_id) == 1 and fake_vllm.tokenizer.decode(ids[1:]) == "1+1="


def test_one_engine_per_process_never_entered_by_two_threads(fake_vllm):
    config = VLLMBackendConfig(model="fake-model")
    backends = [make_backend(config) for _ in range(4)]  # as backend_for would per thread: one engine underneath
    assert fake_vllm.engines_built == 1
    sampling = SamplingConfig(max_tokens=8)
    errors = []

    def work(backend, i):
        try:
            backend.generate([GenRequest(messages=CHAT, n=2, sampling=sampling, seeds=(i, i + 100))])
        except Exception as exc:  # noqa: BLE001 - reported by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(b, i)) for i, b in enumerate(backends * 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(fake_vllm.engine_prompts) == 16 and fake_vllm.max_inside == 1
    with pytest.raises(RuntimeError, match="one engine per process"):
        make_backend(VLLMBackendConfig(model="another-model"))
