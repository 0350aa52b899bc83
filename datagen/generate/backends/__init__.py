"""Generation backends behind one interface (``Backend``), made by ``make_backend``.

Backend modules import their engines (torch/transformers, httpx, vllm)
lazily, so importing this package is cheap on any machine.
"""

from __future__ import annotations

from datagen.generate.backends.base import (
    Backend,
    GenOutput,
    GenRequest,
    GenResult,
    error_result,
)
from datagen.generate.config import HFBackendConfig, OpenAIBackendConfig, VLLMBackendConfig


def make_backend(config: HFBackendConfig | OpenAIBackendConfig | VLLMBackendConfig) -> Backend:
    """Build the backend ``config.kind`` names ("hf", "openai" or "vllm")."""
    match config.kind:
        case "hf":
            from datagen.generate.backends.hf import HFBackend

            return HFBackend(config)
        case "openai":
            from datagen.generate.backends.openai import OpenAIBackend

            return OpenAIBackend(config)
        case "vllm":
            from datagen.generate.backends.vllm import VLLMBackend

            return VLLMBackend(config)
    raise ValueError(f"unknown backend kind {config.kind!r}; expected hf, openai or vllm")


__all__ = ["Backend", "GenOutput", "GenRequest", "GenResult", "error_result", "make_backend"]
