"""The vLLM backend (GPU workers only: vllm is CUDA-only and not installed on CPU machines)."""

from __future__ import annotations

import pytest

from datagen.generate import GenRequest, SamplingConfig, VLLMBackendConfig, make_backend
from datagen.tinymodel import save_tiny


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
