"""Packed attention in memory linear in the packed length.

A packed micro-batch is one flat row ``[1, N]`` (padding-free: no pad tokens)
holding many samples back to back; ``position_ids`` restart at 0 for each
sample and ``cu_seq_lens`` (cumulative sequence lengths ``[0, n1, n1+n2, …]``)
mark the boundaries. No ``[B, 1, L, L]`` mask is ever built: attention never
crosses a boundary because each sample is attended on its own.

- GPU with ``flash-attn`` installed: transformers' ``flash_attention_2`` reads
  ``cu_seq_lens_q/k`` and ``max_length_q/k`` and runs the varlen kernel.
- Anywhere else (CPU, or a GPU without flash-attn): ``packed_sdpa``, registered
  here, runs ``scaled_dot_product_attention(is_causal=True)`` once per sample.
  Without a mask torch picks its flash/memory-efficient SDPA kernels (CPU
  included), so memory is O(N) per layer, not O(N^2); per-sample SDPA is exact.

Calls without ``cu_seq_lens_q`` (generation, eval with padding) fall through to
ordinary SDPA, so a model switched to ``packed_sdpa`` still generates.
"""

from __future__ import annotations

import itertools
from typing import Any

PACKED_SDPA = "packed_sdpa"


def packed_sdpa_forward(module, query, key, value, attention_mask, dropout: float = 0.0,
                        scaling: float | None = None, is_causal: bool | None = None, **kwargs):
    """Attention for ``[1, H, N, D]`` packed query/key/value, one causal SDPA per
    sample given by ``kwargs['cu_seq_lens_q']``; returns ``([1, N, H, D], None)``
    as transformers' attention functions do."""
    import torch.nn.functional as F
    from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward

    cu = kwargs.get("cu_seq_lens_q")
    if cu is None or query.shape[2] != key.shape[2]:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    if query.shape[0] != 1:
        raise ValueError("packed attention takes one flat row [1, N]; collate packed rows with collate()")
    groups = getattr(module, "num_key_value_groups", 1)
    if groups > 1:
        key, value = repeat_kv(key, groups), repeat_kv(value, groups)
    bounds = cu.tolist() if hasattr(cu, "tolist") else list(cu)
    drop = dropout if module.training else 0.0
    outs = [F.scaled_dot_product_attention(query[:, :, s:e], key[:, :, s:e], value[:, :, s:e], dropout_p=drop,
                                           is_causal=True, scale=scaling)
            for s, e in itertools.pairwise(bounds) if e > s]
    import torch

    out = torch.cat(outs, dim=2) if len(outs) > 1 else outs[0]
    return out.transpose(1, 2).contiguous(), None


_registered = False


def register() -> None:
    """Register ``packed_sdpa`` with transformers' attention interface (idempotent).
    Not registered as a mask function on purpose: transformers then builds no mask."""
    global _registered
    if _registered:
        return
    from transformers import AttentionInterface

    AttentionInterface.register(PACKED_SDPA, packed_sdpa_forward)
    _registered = True


def packed_attention_impl(device: Any = None) -> str:
    """``flash_attention_2`` on a CUDA device with flash-attn installed, else ``packed_sdpa``."""
    import importlib.util

    is_cuda = getattr(device, "type", str(device or "")) == "cuda"
    if is_cuda and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    register()
    return PACKED_SDPA


def use_packed_attention(model, device: Any = None) -> str:
    """Switch ``model`` to the packed attention path for ``device``; returns its name."""
    impl = packed_attention_impl(device)
    if hasattr(model, "set_attn_implementation"):
        try:
            model.set_attn_implementation(impl)
            return impl
        except (ValueError, ImportError, AttributeError):
            pass
    model.config._attn_implementation = impl
    return impl


def packed_kwargs(seq_lens: list[int], device: Any = None) -> dict[str, Any]:
    """The forward kwargs that mark boundaries: ``cu_seq_lens_q/k`` and ``max_length_q/k``."""
    import torch

    cu = torch.zeros(len(seq_lens) + 1, dtype=torch.int32)
    cu[1:] = torch.cumsum(torch.tensor(seq_lens, dtype=torch.int32), 0)
    if device is not None:
        cu = cu.to(device)
    m = max(seq_lens) if seq_lens else 0
    return {"cu_seq_lens_q": cu, "cu_seq_lens_k": cu, "max_length_q": m, "max_length_k": m}
