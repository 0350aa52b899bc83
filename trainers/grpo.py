"""GRPO (DeepSeekMath, arXiv:2402.03300) on torch + transformers.

Read top to bottom: load prompts, model and reward functions -> loop
(sample G completions per prompt from the current policy, score them, group
advantages, mu optimizer passes of the clipped objective) -> save.

How this deviates from the paper, and why:
- Rewards are a weighted sum of named batch functions
  ``f(completions, **columns) -> list[float | None]``. ``None`` means "could
  not judge": the completion is left out of its group's statistics and gets
  advantage 0. A part that returns ``None`` adds nothing to the total; the
  total is ``None`` only when no weighted part judged the completion
  (``trainers.rewards.combine`` says why).
- ``mu == 1`` (the default) uses the detached current log-probs as the "old"
  policy (ratio 1, the clip never binds): the same gradient as the paper's
  with one fewer forward pass. With ``mu > 1`` the old log-probs are computed
  once per generation batch before the first pass.
- The std in the advantage is the sample std plus 1e-4 (TRL's choice), so a
  group with identical rewards gives advantage 0 rather than NaN.
- Loss aggregation ``grpo`` (per-sequence mean, the paper), ``dapo``
  (token-level) or ``dr_grpo`` (constant normaliser); see losses.py.
- Sampling: ``hf`` generate from the policy itself (CPU or GPU). There is no
  vLLM sampler: pushing the trainer's weights into an in-process vLLM engine
  each step needs an engine internal (``llm_engine.model_executor…``) that
  vLLM V1 has only with multiprocessing off, and no supported API here was
  tested on a GPU; it was removed rather than kept broken (README, "GRPO").
- Each step's sampling is seeded from (seed, step), so a resumed run draws the
  same completions it would have drawn without the interruption.
"""

from __future__ import annotations

import contextvars
import copy
import functools
import logging
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainers.config import GRPOConfig
from trainers.data import chat_prompt
from trainers.distributed import all_gather_cat, all_ranks, all_reduce_mean, all_reduce_sum, rank, world_size
from trainers.rewards import RewardFn, combine, resolve_rewards
from trainers.runtime import (
    MetricsLog,
    build_optimizer,
    build_scheduler,
    keep_cpu_memory,
    latest_checkpoint,
    load_checkpoint,
    load_model_and_tokenizer,
    make_accelerator,
    prepare_training,
    push_final_model,
    run_cli,
    save_checkpoint,
    save_final_model,
)

log = logging.getLogger(__name__)

@dataclass
class GRPOResult:
    output_dir: Path
    final_model_dir: Path | None
    steps: int
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    model_ref: str | None = None  # NAME@VERSION of the committed final model (push_to_store)


# ----------------------------------------------------------------- rewards


def score(
    completions: list[str], columns: dict[str, list], fns: dict[str, RewardFn], weights: dict[str, float]
) -> tuple[list[float | None], dict[str, list[float | None]]]:
    """Total reward per completion (``trainers.rewards.combine``: a part that cannot judge adds
    nothing; None only when no part judged) and each part."""
    parts: dict[str, list[float | None]] = {}
    for name, fn in fns.items():
        values = list(fn(completions, **columns))
        if len(values) != len(completions):
            raise ValueError(f"reward {name!r} returned {len(values)} values for {len(completions)} completions")
        parts[name] = [None if v is None else float(v) for v in values]
    totals: list[float | None] = []
    for i in range(len(completions)):
        totals.append(combine({n: parts[n][i] for n in fns}, weights))  # the rule: trainers.rewards.combine
    return totals, parts


# -------------------------------------------------------------------- data


def load_prompts(cfg: GRPOConfig, prompts) -> list[dict[str, Any]]:
    """Rows with at least ``prompt``: a list/iterable of dicts, a polars
    (Lazy)DataFrame, or ``cfg.prompts`` (a JSONL/Parquet file)."""
    if prompts is None:
        if cfg.prompts is None:
            raise ValueError("no prompts: set `prompts:` in the config or pass prompts=[{'prompt': ...}, ...]")
        from datagen.files import read_records

        prompts = read_records(cfg.prompts)
    if hasattr(prompts, "collect"):
        prompts = prompts.collect()
    if hasattr(prompts, "to_dicts"):
        prompts = prompts.to_dicts()
    rows = [dict(r) for r in prompts]
    if not rows:
        raise ValueError("the prompt set is empty")
    if "prompt" not in rows[0]:
        raise ValueError(f"prompt rows need a 'prompt' column; got columns {sorted(rows[0])}")
    return rows


class PromptSampler:
    """Cycles through the prompts in a fresh seeded order each epoch; its
    position (``consumed``) is all that a checkpoint needs to resume it."""

    def __init__(self, n: int, seed: int, consumed: int = 0):
        self.n, self.seed, self.consumed = n, seed, consumed

    def take(self, k: int) -> list[int]:
        out = []
        for _ in range(k):
            epoch, pos = divmod(self.consumed, self.n)
            order = list(range(self.n))
            random.Random(self.seed * 1_000_003 + epoch).shuffle(order)
            out.append(order[pos])
            self.consumed += 1
        return out


# -------------------------------------------------------------- generation


class HFSampler:
    """G samples per prompt from the current policy, with transformers on CPU or GPU.

    The G samples of a prompt share its prefill, as vLLM's ``n`` does: each
    prompt is run through the model once, its KV cache is repeated G times,
    and only decoding runs on all P×G rows. ``model.generate`` would prefill
    every prompt G times (``repeat_interleave`` of the inputs), which is most
    of a step's cost when completions are short.

    Decoding then costs what the KV cache costs: for a step of 256 completions
    of 128 tokens it is memory traffic and per-token Python, not arithmetic. Four things
    keep it down:

    - a split cache (``_SplitKV``, for the model families in ``_SPLIT_KV_MODELS``):
      transformers' ``DynamicLayer`` grows by ``torch.cat`` at every token, copying the
      whole cache each time; here each layer keeps a contiguous *main* part that grows
      every ``chunk`` tokens and a small preallocated *tail*, and attention (one query
      token: two batched matmuls per part) reads both in place; other models decode
      through their own attention and cache, as before;
    - finished rows leave the batch (once a quarter of the rows still decoding have
      finished), so short completions stop paying for long ones;
    - no attention mask is built per token: the only masked keys are the prompts'
      left padding, a fixed bias on the first columns;
    - for the dense families in ``_LEAN_DECODE_CLASSES`` each token's step is
      ``_lean_decode_step``, the forward's arithmetic without its Python layers
      (the same logits; a tiny model's decode ~25% faster, its GRPO step ~7%).

    Every rank decodes until all ranks are done (under FSDP each forward is a
    collective); on a GPU that check, a host sync, runs every ``sync_every`` tokens,
    and columns past every row's EOS are dropped.
    """

    chunk = 32  # tail size of the split cache: main grows (one copy) every `chunk` tokens

    def __init__(self, cfg: GRPOConfig, tokenizer):
        self.cfg, self.tokenizer = cfg, tokenizer
        self.sync_every = None  # tokens between "all ranks done?" checks; None: 1 on CPU, 8 on GPU
        self.split_kv = True  # False: decode through the model's own attention and cache
        # what the last sample() did: decoded through the split cache (and its lean step), times
        # finished rows left the batch
        self.last = {"split_kv": False, "lean": False, "compactions": 0}

    def sample(self, model, prompt_texts: list[str]):
        """-> (prompt ids, prompt mask, completion ids), each with P×G rows (G
        consecutive rows per prompt); completions are padded after their EOS and
        end at the longest one (at most ``max_new_tokens``)."""
        import torch

        tok, G = self.tokenizer, self.cfg.num_generations
        tok.padding_side = "left"
        enc = tok(prompt_texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                comp = self._decode(model, enc["input_ids"], enc["attention_mask"], G)
        finally:
            model.train(was_training)
        ids = enc["input_ids"].repeat_interleave(G, dim=0)
        prompt_attn = enc["attention_mask"].repeat_interleave(G, dim=0)
        return ids, prompt_attn, comp

    def _decode(self, model, input_ids, attn, G: int):
        import torch

        cfg, tok = self.cfg, self.tokenizer
        pad, eos = tok.pad_token_id, tok.eos_token_id
        # Left padding: positions count real tokens only.
        pos = (attn.cumsum(-1) - 1).clamp(min=0)
        out = model(input_ids=input_ids, attention_mask=attn, position_ids=pos, use_cache=True, logits_to_keep=1)
        cache = out.past_key_values
        cache.batch_repeat_interleave(G)
        logits = out.logits[:, -1, :].float().repeat_interleave(G, dim=0)
        attn = attn.repeat_interleave(G, dim=0)
        B, N, device = attn.shape[0], cfg.max_new_tokens, attn.device
        tokens = torch.full((B, N), pad, dtype=torch.long, device=device)
        rows = torch.arange(B, device=device)  # the full-batch index of each row still in the batch
        finished = torch.zeros(B, dtype=torch.bool, device=device)
        next_pos = attn.sum(-1, keepdim=True)  # position of each row's next token
        sync_every = self.sync_every or (8 if device.type == "cuda" else 1)
        split = _SplitKV.install(model, cache, attn, self.chunk) if self.split_kv else None
        self.last = {"split_kv": split is not None, "lean": split is not None and split.lean, "compactions": 0}
        try:
            for t in range(N):
                nxt = _sample_token(logits, cfg.temperature, cfg.top_p)
                nxt = nxt.masked_fill(finished, pad)
                tokens[rows, t] = nxt
                finished |= nxt == eos
                if t + 1 == N:
                    break
                # every rank decodes until all ranks are done: under FSDP each forward
                # is a collective, so one rank stopping early would hang the others
                if (t + 1) % sync_every == 0:
                    n_done = int(finished.sum())
                    if all_ranks(n_done == len(rows)):
                        break
                    if 4 * n_done >= len(rows) and n_done < len(rows):
                        keep = (~finished).nonzero().squeeze(1)  # drop the finished rows
                        rows, finished, nxt, next_pos = rows[keep], finished[keep], nxt[keep], next_pos[keep]
                        self.last["compactions"] += 1
                        if split is not None:
                            split.select(keep)
                        else:
                            cache.batch_select_indices(keep)
                            attn = attn[keep]
                if split is None:
                    attn = torch.cat([attn, torch.ones_like(attn[:, :1])], dim=1)
                if split is not None and split.lean:
                    logits = _lean_decode_step(model, split, nxt, next_pos).float()
                else:
                    out = model(input_ids=nxt[:, None], attention_mask=None if split is not None else attn,
                                position_ids=next_pos, past_key_values=cache, use_cache=True, logits_to_keep=1)
                    logits = out.logits[:, -1, :].float()
                next_pos = next_pos + 1
        finally:
            if split is not None:
                split.uninstall()
        # columns past every row's EOS are padding only
        width = int(completion_mask(tokens, eos).sum(dim=1).max()) if B else 0
        return tokens[:, : max(width, 1)]

    def sync(self, model) -> None:
        """Samples come from the live policy: nothing to sync."""


# Model families whose attention is plain scaled dot-product over a full-attention cache,
# called through transformers' AttentionInterface: the split cache serves them.
_SPLIT_KV_MODELS = {"llama", "qwen2", "qwen3", "mistral", "qwen2_moe", "qwen3_moe"}
_SPLIT_KV_ATTENTION = "datagen_split_kv_decode"
_ACTIVE_SPLIT = contextvars.ContextVar("datagen_active_split_kv", default=None)


class _SplitKV:
    """A decoding KV cache per layer (``_SplitLayer``): a contiguous *main* part plus a
    ``chunk``-sized *tail*, installed into a prefilled transformers cache for one decode.

    ``torch.cat`` per token (transformers' DynamicLayer) copies every cached key and value
    at every step; attention over a slice of one big preallocated buffer is no better (the
    CPU kernels run ~2x slower on a strided view than on a contiguous tensor). Here the new
    token is written into the tail, attention (``_split_kv_attention``) reads main and tail
    in place, and the tail moves into main every ``chunk`` tokens. The prompts' left
    padding is masked by a fixed bias on main's first columns.
    """

    def __init__(self, model, cache, attn, chunk: int):
        import torch

        self.model, self.cache = model, cache
        self.previous = model.config._attn_implementation
        cache.layers = [_split_layer_class()(layer.keys, layer.values, chunk) for layer in cache.layers]
        pad = attn == 0
        self.bias = None  # [B, 1, 1, L_prompt]: -inf on prompt padding
        if bool(pad.any()):
            dtype = cache.layers[0].main_k.dtype
            self.bias = torch.zeros(pad.shape, dtype=dtype, device=attn.device).masked_fill(pad, float("-inf"))
            self.bias = self.bias[:, None, None, :]
        self.token = None
        self.lean = _lean_decodable(model)  # decode steps through _lean_decode_step

    @classmethod
    def install(cls, model, cache, attn, chunk: int):
        """The split cache in place of ``cache``'s layers, with the model's attention routed
        to it; None (nothing changed) when the model is not one it serves."""
        from transformers import AttentionInterface
        from transformers.cache_utils import DynamicLayer

        if getattr(model.config, "model_type", None) not in _SPLIT_KV_MODELS or not getattr(cache, "layers", None):
            return None
        if any(type(layer) is not DynamicLayer for layer in cache.layers):
            return None  # sliding-window or other special layers: their own cache logic applies
        if _SPLIT_KV_ATTENTION not in AttentionInterface._global_mapping:
            AttentionInterface.register(_SPLIT_KV_ATTENTION, _split_kv_attention)
        split = cls(model, cache, attn, chunk)
        split.token = _ACTIVE_SPLIT.set(split)
        model.set_attn_implementation(_SPLIT_KV_ATTENTION)
        if model.config._attn_implementation != _SPLIT_KV_ATTENTION:
            split.uninstall()
            raise RuntimeError(f"{type(model).__name__} did not take the split-cache attention")
        return split

    def uninstall(self) -> None:
        """Give the model back its attention implementation."""
        if self.token is not None:
            _ACTIVE_SPLIT.reset(self.token)
            self.token = None
        if self.model.config._attn_implementation != self.previous:
            self.model.set_attn_implementation(self.previous)

    def select(self, keep) -> None:
        """Keep only the rows ``keep`` (finished rows leave the batch)."""
        self.cache.batch_select_indices(keep)
        if self.bias is not None:
            self.bias = self.bias[keep]


@functools.cache
def _split_layer_class():
    """``_SplitLayer``, defined on first use: it subclasses transformers' DynamicLayer, and
    importing this module must not import transformers."""
    from transformers.cache_utils import DynamicLayer

    class _SplitLayer(DynamicLayer):
        """One layer of ``_SplitKV``: ``main_k/main_v`` ``[B, Hkv, L, D]`` contiguous, and the
        first ``n`` of ``chunk`` positions of ``tail_k/tail_v``."""

        def __init__(self, keys, values, chunk: int):
            super().__init__()
            self.dtype, self.device, self.is_initialized = keys.dtype, keys.device, True
            self.main_k, self.main_v = keys.contiguous(), values.contiguous()
            B, H, _, D = keys.shape
            self.tail_k, self.tail_v = keys.new_empty(B, H, chunk, D), values.new_empty(B, H, chunk, D)
            self.chunk, self.n = chunk, 0
            self.keys = self.values = None  # DynamicLayer's own storage: unused

        def update(self, key_states, value_states, *args, **kwargs):
            import torch

            if key_states.shape[-2] != 1:
                raise RuntimeError("the split cache decodes one token per step")
            if self.n == self.chunk:
                self.main_k = torch.cat([self.main_k, self.tail_k], dim=-2)
                self.main_v = torch.cat([self.main_v, self.tail_v], dim=-2)
                self.n = 0
            self.tail_k[:, :, self.n].copy_(key_states[:, :, 0])
            self.tail_v[:, :, self.n].copy_(value_states[:, :, 0])
            self.n += 1
            return key_states, value_states

        def get_seq_length(self) -> int:
            return self.main_k.shape[-2] + self.n

        def batch_select_indices(self, indices) -> None:
            self.main_k, self.main_v = self.main_k[indices], self.main_v[indices]
            self.tail_k, self.tail_v = self.tail_k[indices], self.tail_v[indices]

        def batch_repeat_interleave(self, repeats: int) -> None:
            raise NotImplementedError("repeat the prefilled cache before installing the split cache")

    return _SplitLayer


def _split_kv_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Attention of one query token over the active split cache's layer ``module.layer_idx``
    (``key``/``value`` are the new token's, already written into it); GQA without copying
    K/V (the ``g`` query heads of a K/V head form the rows of one matmul). Returns
    ``[B, 1, H, D]`` as transformers' attention functions do."""
    import torch

    split = _ACTIVE_SPLIT.get()
    if split is None:
        raise RuntimeError("split-cache attention called outside HFSampler decoding")
    if kwargs.get("softcap") is not None or kwargs.get("s_aux") is not None:
        raise RuntimeError("split-cache attention has no logit soft-capping or attention sinks")
    layer = split.cache.layers[module.layer_idx]
    B, H, q, D = query.shape
    Hkv, Lm, n = layer.main_k.shape[1], layer.main_k.shape[2], layer.n
    g = H // Hkv  # query heads per key/value head
    qq = query.reshape(B * Hkv, g * q, D)
    km, vm = layer.main_k.view(B * Hkv, Lm, D), layer.main_v.view(B * Hkv, Lm, D)
    kt, vt = layer.tail_k[:, :, :n].reshape(B * Hkv, n, D), layer.tail_v[:, :, :n].reshape(B * Hkv, n, D)
    scale = scaling if scaling is not None else D ** -0.5
    scores = torch.cat([torch.bmm(qq, km.transpose(1, 2)), torch.bmm(qq, kt.transpose(1, 2))], dim=-1) * scale
    if split.bias is not None:
        scores.view(B, Hkv, g * q, Lm + n)[..., : split.bias.shape[-1]] += split.bias
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    out = torch.bmm(probs[..., :Lm], vm) + torch.bmm(probs[..., Lm:], vt)
    return out.view(B, H, q, D).transpose(1, 2), None


#: Dense decoder families whose one-token step ``_lean_decode_step`` computes exactly as their
#: own forward does (same ops, same order): RMSNorm, q/k/v projections (Qwen2's biases,
#: Qwen3's per-head q/k norms), RoPE from the model's own rotary module, gated MLP.
_LEAN_DECODE_CLASSES = {"LlamaForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM", "MistralForCausalLM"}


def _lean_decodable(model) -> bool:
    """Whether ``_lean_decode_step`` may stand in for ``model``'s forward while decoding:
    a dense family it knows, plain (unsharded, unhooked) weights, the expected modules."""
    import torch

    if type(model).__name__ not in _LEAN_DECODE_CLASSES:
        return False
    inner = getattr(model, "model", None)
    needed = ("embed_tokens", "layers", "norm", "rotary_emb")
    if inner is None or not all(hasattr(inner, n) for n in needed):
        return False
    if getattr(model.config, "final_logit_softcapping", None):
        return False
    # sharded (FSDP/DTensor) or hooked modules compute something else than their weights say
    for module in model.modules():
        if module._forward_pre_hooks or module._forward_hooks or hasattr(module, "_hf_hook"):
            return False
    for p in model.parameters():
        if type(p) is not torch.nn.Parameter or p.numel() == 0:
            return False
    for layer in inner.layers[: model.config.num_hidden_layers]:
        attn, mlp = getattr(layer, "self_attn", None), getattr(layer, "mlp", None)
        if attn is None or mlp is None:
            return False
        if not all(isinstance(getattr(attn, n, None), torch.nn.Linear) for n in ("q_proj", "k_proj", "v_proj", "o_proj")):
            return False
        if not all(isinstance(getattr(mlp, n, None), torch.nn.Linear) for n in ("gate_proj", "up_proj", "down_proj")):
            return False
        norms = [layer.input_layernorm, layer.post_attention_layernorm] + [
            getattr(attn, n) for n in ("q_norm", "k_norm") if hasattr(attn, n)]
        if not all(hasattr(n, "variance_epsilon") and hasattr(n, "weight") for n in norms):
            return False
    return hasattr(inner.norm, "variance_epsilon")


def _rms(x, norm):
    """The families' RMSNorm, op for op (float32 statistics, weight times the input dtype)."""
    import torch

    h = x.to(torch.float32)
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + norm.variance_epsilon)
    return norm.weight * h.to(x.dtype)


def _lean_decode_step(model, split: _SplitKV, ids, position_ids):
    """One decoding step of a ``_lean_decodable`` model over the split cache: the logits of
    the next token, ``[B, vocab]``.

    The model's forward computes the same thing through several layers of Python
    (output records, mask builders, config lookups, a module call per projection): ~2.5 ms
    per token on a CPU whatever the batch, ~40% of a tiny model's decode. This calls the
    tensors' functions directly, in the forward's order, so the logits are the same
    (``tests/test_trainers_sampler.py`` holds the two to each other on Llama, Qwen2 with
    grouped-query attention and Qwen3)."""
    import torch.nn.functional as F
    from transformers.models.llama.modeling_llama import rotate_half  # Qwen2/3 and Mistral copy it

    inner, cfg = model.model, model.config
    h = inner.embed_tokens(ids[:, None])  # [B, 1, hidden]
    cos, sin = inner.rotary_emb(h, position_ids)
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    B = h.shape[0]
    for layer in inner.layers[: cfg.num_hidden_layers]:
        attn, mlp = layer.self_attn, layer.mlp
        x = _rms(h, layer.input_layernorm)
        D = attn.head_dim
        q = F.linear(x, attn.q_proj.weight, attn.q_proj.bias).view(B, 1, -1, D)
        k = F.linear(x, attn.k_proj.weight, attn.k_proj.bias).view(B, 1, -1, D)
        v = F.linear(x, attn.v_proj.weight, attn.v_proj.bias).view(B, 1, -1, D).transpose(1, 2)
        if hasattr(attn, "q_norm"):
            q, k = _rms(q, attn.q_norm), _rms(k, attn.k_norm)
        q, k = q.transpose(1, 2), k.transpose(1, 2)
        q = (q * cos) + (rotate_half(q) * sin)
        k = (k * cos) + (rotate_half(k) * sin)
        split.cache.layers[attn.layer_idx].update(k, v)
        o, _ = _split_kv_attention(attn, q, k, v, None, scaling=attn.scaling)
        h = h + F.linear(o.reshape(B, 1, -1), attn.o_proj.weight, attn.o_proj.bias)
        x = _rms(h, layer.post_attention_layernorm)
        g = F.linear(x, mlp.gate_proj.weight, mlp.gate_proj.bias)
        u = F.linear(x, mlp.up_proj.weight, mlp.up_proj.bias)
        h = h + F.linear(mlp.act_fn(g) * u, mlp.down_proj.weight, mlp.down_proj.bias)
    h = _rms(h, inner.norm)
    return F.linear(h[:, -1], model.lm_head.weight, model.lm_head.bias)


def _sample_token(logits, temperature: float, top_p: float):
    """One token per row from softmax(logits / temperature), nucleus-filtered at ``top_p``.

    Gumbel-max: ``argmax(logits / T + G)`` with ``G = -log(-log(U))`` is an exact draw
    from ``softmax(logits / T)``; on a CPU it costs a quarter of ``torch.multinomial``
    (whose exponential draws dominated the per-token sampling time, ~4% of a decode)."""
    import torch

    scaled = logits / temperature
    if top_p < 1.0:
        probs = torch.softmax(scaled, dim=-1)
        sorted_p, order = probs.sort(dim=-1, descending=True)
        # Keep the smallest prefix whose mass reaches top_p (always the top token).
        drop = sorted_p.cumsum(dim=-1) - sorted_p > top_p
        scaled = scaled.masked_fill(torch.zeros_like(drop).scatter(-1, order, drop), float("-inf"))
    gumbel = torch.rand_like(scaled).log_().neg_().log_().neg_()
    return (scaled + gumbel).argmax(dim=-1)


def completion_mask(completion_ids, eos_id: int):
    """1 for every completion token up to and including the first EOS, 0 after."""
    import torch

    is_eos = completion_ids == eos_id
    seen_before = torch.cumsum(is_eos.int(), dim=1) - is_eos.int()
    return (seen_before == 0).int()


# ------------------------------------------------------------------- model


def policy_logprobs(model, input_ids, attention_mask, n_completion: int, temperature: float, with_entropy=False,
                    group: int | None = None, prompt_model=None):
    """Log-probs of the last ``n_completion`` tokens (and their entropy) under ``model``.

    ``group``: rows come in runs of ``group`` with the same prompt (the G completions of a
    GRPO group), and the prompt is computed once per run (``_shared_prefix_logits``);
    ``prompt_model`` is the module that computes it (``model`` unwrapped from DDP)."""
    import torch

    from trainers.losses import token_entropy, token_logprobs

    if group:
        logits = _shared_prefix_logits(model, prompt_model or model, input_ids, attention_mask, n_completion, group)
    else:
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        out = model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            logits_to_keep=n_completion + 1,
            use_cache=False,
        )
        logits = out.logits[:, :-1, :]
    logits = logits / temperature
    targets = input_ids[:, -n_completion:]
    logp = token_logprobs(logits, targets)
    entropy = None
    if with_entropy:
        with torch.no_grad():
            entropy = token_entropy(logits.detach())
    return logp, entropy


def _shared_prefix_logits(model, prompt_model, input_ids, attention_mask, n_completion: int, group: int):
    """The logits that predict the last ``n_completion`` tokens of each row, ``[rows, n, vocab]``,
    with each run of ``group`` rows' shared prompt computed once.

    The prompts (``input_ids[::group]``, left-padded) go through ``prompt_model`` once, filling
    a KV cache; the cache is repeated ``group`` times (autograd sums the copies' gradients
    back into the one prompt computation) and the completions attend to it. Mathematically
    the same log-probs and gradients as one pass over every full row; the prompt's share of
    the work is paid once per group instead of ``group`` times. Only for models that
    ``_prefix_shareable`` accepts."""
    import torch
    from transformers.cache_utils import DynamicCache

    Lp = input_ids.shape[1] - n_completion
    p_ids, p_attn = input_ids[::group, :Lp], attention_mask[::group, :Lp]
    cache = DynamicCache()
    out_p = prompt_model(input_ids=p_ids, attention_mask=p_attn, position_ids=(p_attn.cumsum(-1) - 1).clamp(min=0),
                         past_key_values=cache, use_cache=True, logits_to_keep=1)
    cache.batch_repeat_interleave(group)
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)[:, Lp:]
    out_c = model(input_ids=input_ids[:, Lp:], attention_mask=attention_mask, position_ids=position_ids,
                  past_key_values=cache, use_cache=True, logits_to_keep=n_completion,
                  cache_position=torch.arange(Lp, Lp + n_completion, device=input_ids.device))
    first = out_p.logits[:, -1:, :].repeat_interleave(group, dim=0)
    return torch.cat([first, out_c.logits[:, :-1, :]], dim=1)


def _prefix_shareable(model, cfg: GRPOConfig, micro: int) -> bool:
    """Whether the update may compute each group's prompt once (``_shared_prefix_logits``):
    a micro-batch holds whole groups, the model is a plain full-attention decoder family
    whose forward takes a prefilled cache (``_SPLIT_KV_MODELS``, every layer a plain
    ``DynamicLayer``), and its parameters are not FSDP shards (a sharded module run twice
    before one backward would reduce its gradients early)."""
    from transformers.cache_utils import DynamicCache, DynamicLayer

    from trainers.fsdp import is_sharded

    if not cfg.share_prompt_prefix or cfg.gradient_checkpointing or micro % cfg.num_generations:
        return False
    if getattr(model.config, "model_type", None) not in _SPLIT_KV_MODELS or is_sharded(model):
        return False
    try:
        layers = DynamicCache(config=model.config).layers
    except Exception:  # noqa: BLE001 - a config the cache cannot read: not shareable
        return False
    return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)


# -------------------------------------------------------------------- train


def train_grpo(
    config: GRPOConfig,
    prompts: Iterable[dict] | Any | None = None,
    *,
    model=None,
    tokenizer=None,
    reward_fns: dict[str, RewardFn] | None = None,
    on_log: Callable[[dict[str, Any]], None] | None = None,
) -> GRPOResult:
    """Run GRPO for ``config.max_steps`` steps; return the output dir and metrics.

    ``prompts``: rows with ``prompt`` and any columns the rewards read
    (``answer``, ``tests``, ``language``, ...), as a list of dicts or a polars
    frame; else ``config.prompts``. ``model``/``tokenizer``: objects, else
    loaded from ``config.model``. ``reward_fns``: name -> function, overriding
    the project's ``REWARDS``. Resumes from the newest checkpoint in
    ``config.output_dir`` when ``config.resume``. ``on_log``: called with each logged
    step's metrics (on the main process), e.g. the flow's Prefect logging.
    """
    import torch

    cfg = config
    torch.manual_seed(cfg.seed)
    rows = load_prompts(cfg, prompts)
    run = _build(cfg, *load_model_and_tokenizer(cfg, model, tokenizer), resolve_rewards(cfg.rewards, reward_fns, config=cfg))
    accelerator, out_dir = run.accelerator, Path(cfg.output_dir)
    step, consumed = 0, 0
    ckpt = latest_checkpoint(out_dir) if cfg.resume else None
    if ckpt is not None:
        state = load_checkpoint(accelerator, ckpt, (run.model, run.optimizer, run.scheduler))
        step, consumed = state["step"], state["prompts_consumed"]
        log.info("resumed from %s at step %d", ckpt, step)
    sampler_data = PromptSampler(len(rows), cfg.seed, consumed)
    metrics_log = MetricsLog(out_dir, enabled=accelerator.is_main_process, name="grpo", on_log=on_log)
    history: list[dict[str, Any]] = []

    while step < cfg.max_steps:
        t0 = time.perf_counter()
        # Every rank draws the same global batch (same seed and position) and
        # keeps its own slice of whole prompts, so each rank's G-groups are
        # complete and advantages need no communication; DDP/FSDP average the
        # gradients.
        idx = sampler_data.take(cfg.prompts_per_step)[accelerator.process_index::accelerator.num_processes]
        ro = rollout(run, [rows[i] for i in idx], step)  # 1-2. sample G completions per prompt, score them
        stats = update(run, ro)  # 3. mu optimizer passes over this generation batch
        step += 1
        m = step_metrics(run, ro, stats, step, t0)  # 4. metrics
        history.append({**m, "rewards": ro.totals})
        if step % cfg.log_every == 0 or step == cfg.max_steps:
            metrics_log.log(m)
        if cfg.save_every and step % cfg.save_every == 0 and step < cfg.max_steps:
            save_checkpoint(accelerator, out_dir, step, {"prompts_consumed": sampler_data.consumed}, cfg.keep_checkpoints,
                            (run.model, run.optimizer, run.scheduler))

    save_checkpoint(accelerator, out_dir, step, {"prompts_consumed": sampler_data.consumed}, cfg.keep_checkpoints,
                            (run.model, run.optimizer, run.scheduler))
    final = save_final_model(accelerator, run.model, run.tokenizer, out_dir)
    model_ref = push_final_model(accelerator, cfg, final, stage="grpo")  # NAME@VERSION when push_to_store is set
    for m in (accelerator.unwrap_model(run.model), run.ref_model):  # the caller's model gets its attention back
        if m is not None and m.config._attn_implementation == _CPU_FP32_ATTENTION:
            m.set_attn_implementation("sdpa")
    return GRPOResult(out_dir, final, step, dict(metrics_log.last), history, model_ref)


def _build(cfg: GRPOConfig, model, tokenizer, fns: dict[str, RewardFn]) -> _Run:
    """Policy (prepared by accelerate), frozen reference (only when beta > 0), optimizer, schedule, sampler."""
    accelerator = make_accelerator(cfg.precision)
    keep_cpu_memory(accelerator.device)
    if cfg.prompts_per_step % accelerator.num_processes:
        raise ValueError(
            f"prompts_per_step={cfg.prompts_per_step} does not split over {accelerator.num_processes} processes: "
            f"make it a multiple of {accelerator.num_processes}"
        )
    n_total = cfg.completions_per_step // accelerator.num_processes  # this rank's completions per step
    micro = cfg.micro_batch_size or _default_micro_batch(n_total, cfg.max_new_tokens, accelerator.device,
                                                         bf16=accelerator.mixed_precision == "bf16")
    if n_total % micro:
        raise ValueError(f"micro_batch_size={micro} does not divide the {n_total} completions per process per step")
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.config.use_cache = False
    ref_model = None
    if cfg.beta > 0:  # the reference is the starting policy, frozen; never loaded when beta == 0
        ref_model = copy.deepcopy(model).eval().requires_grad_(False)
    model.train()
    model, optimizer, scheduler = prepare_training(accelerator, cfg, model, lambda m: (
        opt := build_optimizer(m, cfg), build_scheduler(opt, cfg, cfg.max_steps * cfg.mu)))
    if ref_model is not None:
        ref_model = ref_model.to(accelerator.device)
    if accelerator.mixed_precision == "bf16" and accelerator.device.type == "cpu":
        for m in (accelerator.unwrap_model(model), ref_model):
            if m is not None:
                _cpu_fp32_attention(m)
    sampler = HFSampler(cfg, tokenizer)
    share = _prefix_shareable(accelerator.unwrap_model(model), cfg, micro)
    return _Run(cfg, fns, tokenizer, accelerator, model, ref_model, optimizer, scheduler, sampler, n_total, micro, share)


_CPU_FP32_ATTENTION = "datagen_cpu_fp32_sdpa"


def _cpu_fp32_attention(model) -> bool:
    """Under bf16 autocast on a CPU, run ``model``'s attention in fp32 (its matmuls stay bf16).

    On a CPU with native bf16 the linear layers' bf16 matmuls are ~4x faster than fp32, but
    PyTorch's CPU flash attention is ~5x *slower* in bf16 (its backward most of all): a
    GRPO update under plain bf16 autocast took 0.87 s against 0.68 s in fp32, and with
    attention kept in fp32 0.49 s (tiny model, 256 completions of 128 tokens). This routes
    the model's attention through transformers' own SDPA function with q/k/v upcast and
    autocast off, and the output cast back; the masks are SDPA's. Only for models on
    ``sdpa`` attention (True when switched)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

    if model.config._attn_implementation == _CPU_FP32_ATTENTION:
        return True
    if model.config._attn_implementation != "sdpa":
        return False
    if _CPU_FP32_ATTENTION not in AttentionInterface._global_mapping:
        AttentionInterface.register(_CPU_FP32_ATTENTION, _fp32_sdpa)
        AttentionMaskInterface.register(_CPU_FP32_ATTENTION, ALL_MASK_ATTENTION_FUNCTIONS["sdpa"])
    model.set_attn_implementation(_CPU_FP32_ATTENTION)
    return model.config._attn_implementation == _CPU_FP32_ATTENTION


def _fp32_sdpa(module, query, key, value, attention_mask, **kwargs):
    """transformers' SDPA attention with q/k/v in fp32 and autocast off; output in ``query``'s dtype."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    with torch.autocast(query.device.type, enabled=False):
        out, weights = sdpa_attention_forward(module, query.float(), key.float(), value.float(), attention_mask,
                                              **kwargs)
    return out.to(query.dtype), weights


CPU_MICRO_BATCH_TOKENS = 4096
CPU_BF16_MICRO_BATCH_TOKENS = 8192


def _default_micro_batch(n_total: int, max_new_tokens: int, device, bf16: bool = False) -> int:
    """Completions per forward/backward when ``micro_batch_size`` is unset: all of them on
    a GPU; on a CPU the largest divisor of ``n_total`` whose completions hold at most
    ``CPU_MICRO_BATCH_TOKENS`` tokens (``CPU_BF16_MICRO_BATCH_TOKENS`` under bf16 autocast).
    The gradient is the same (the loss normalisers are the whole batch's); the activations
    of a few thousand tokens stay in the CPU's cache, which made a step's forward/backward
    ~25% faster than one 35k-token pass (tiny model, 256 completions of 128 tokens, fp32).
    With bf16 matmuls, 8192 tokens was ~9% faster than 4096 (0.512 vs 0.565 s per update;
    fp32: 0.768 vs 0.777, so fp32 keeps 4096)."""
    if getattr(device, "type", str(device)) != "cpu":
        return n_total
    budget = CPU_BF16_MICRO_BATCH_TOKENS if bf16 else CPU_MICRO_BATCH_TOKENS
    target = max(1, budget // max(1, max_new_tokens))
    return max(d for d in range(1, min(target, n_total) + 1) if n_total % d == 0)


@dataclass
class _Run:
    """What one GRPO run's steps share (built once by ``train_grpo``)."""

    cfg: GRPOConfig
    fns: dict[str, RewardFn]
    tokenizer: Any
    accelerator: Any
    model: Any
    ref_model: Any
    optimizer: Any
    scheduler: Any
    sampler: Any
    n_total: int  # this rank's completions per step
    micro: int  # completions per forward/backward
    share_prefix: bool = False  # each group's prompt computed once in the update (_shared_prefix_logits)


@dataclass
class Rollout:
    """One step's generation batch: prompts + G completions each, their rewards and advantages."""

    prompt_ids: Any
    prompt_attn: Any
    comp_ids: Any
    comp_mask: Any
    lengths: list[int]
    totals: list[float | None]
    parts: dict[str, list[float | None]]
    rewards: Any  # float tensor, NaN where a reward could not judge
    advantages: Any
    seconds: float
    global_rewards: Any = None  # every rank's rewards (rank order): what metrics and scale_rewards=batch read


def rollout(run: _Run, batch: list[dict[str, Any]], step: int) -> Rollout:
    """Sample G completions per prompt of ``batch`` from the current policy and score them."""
    import torch

    cfg, tokenizer, t0 = run.cfg, run.tokenizer, time.perf_counter()
    texts = [chat_prompt(tokenizer, r["prompt"], cfg.system_prompt) for r in batch]
    torch.manual_seed(cfg.seed * 1_000_003 + step)
    unwrapped = run.accelerator.unwrap_model(run.model)
    run.sampler.sync(unwrapped)
    prompt_ids, prompt_attn, comp_ids = run.sampler.sample(unwrapped, texts)
    comp_mask = completion_mask(comp_ids, tokenizer.eos_token_id)
    seconds = time.perf_counter() - t0
    # Decode up to (not including) EOS, keeping special tokens such as <think>.
    lengths = comp_mask.sum(dim=1).tolist()
    completions = [
        tokenizer.decode(c[: n - int(n > 0 and c[n - 1] == tokenizer.eos_token_id)], skip_special_tokens=False)
        .replace(tokenizer.pad_token, "")
        for c, n in zip(comp_ids.tolist(), lengths)
    ]
    G = cfg.num_generations
    columns = {k: [r.get(k) for r in batch for _ in range(G)] for k in batch[0]}
    totals, parts = score(completions, columns, run.fns, cfg.rewards)
    rewards = torch.tensor([float("nan") if t is None else t for t in totals])
    if cfg.shuffle_rewards:
        rewards = rewards[torch.randperm(len(rewards), generator=torch.Generator().manual_seed(cfg.seed + step))]
    # advantages from the global batch (every rank's rewards, in rank order), so that
    # scale_rewards=batch divides by the same std on any number of ranks; keep our slice
    global_rewards, adv = global_advantages(rewards, G, cfg.scale_rewards)
    return Rollout(prompt_ids, prompt_attn, comp_ids, comp_mask, lengths, totals, parts, rewards,
                   adv.to(run.accelerator.device), seconds, global_rewards)


def global_advantages(rewards, group_size: int, scale: str):
    """(every rank's rewards in rank order, this rank's advantages): advantages are
    computed on the global batch, so ``scale_rewards=batch`` uses the same std on
    any number of ranks."""
    from trainers.losses import advantages as compute_advantages

    global_rewards = all_gather_cat(rewards)
    return global_rewards, compute_advantages(global_rewards, group_size, scale).view(world_size(), -1)[rank()]


def update(run: _Run, ro: Rollout) -> dict[str, float]:
    """``mu`` optimizer passes over one rollout (the clipped surrogate, plus beta x k3 KL); pass statistics."""
    return _passes(run, ro, step_optimizer=True)


def _passes(run: _Run, ro: Rollout, *, step_optimizer: bool) -> dict[str, float]:
    """The ``mu`` passes of ``update``; with ``step_optimizer=False`` one pass that only
    accumulates gradients (a test reads them). Statistics are reduced over ranks.

    Normalisers are global: ``dapo`` divides by the token count of every rank's
    completions (an all-reduce) and each rank's loss is multiplied by the world
    size, because DDP/FSDP *average* gradients over ranks; the result is the
    single-process loss and gradient of the same global batch. ``grpo`` and
    ``dr_grpo`` divide by this rank's sequence count, which the average makes
    global already."""
    import torch

    from trainers.losses import aggregate, clipped_surrogate, k3_kl

    cfg, accelerator, model, n_total, micro = run.cfg, run.accelerator, run.model, run.n_total, run.micro
    input_ids = torch.cat([ro.prompt_ids, ro.comp_ids], dim=1)
    attn = torch.cat([ro.prompt_attn, ro.comp_mask.to(ro.prompt_attn.dtype)], dim=1)
    T = ro.comp_ids.shape[1]
    world = world_size()
    local_tokens = float(ro.comp_mask.sum())
    n_tokens = max(all_reduce_sum(local_tokens), 1.0)  # the global batch's completion tokens
    # DDP averages over ranks: a rank's share of a global-token mean is scaled back up by the world size
    dapo_scale = world if cfg.loss_type == "dapo" else 1
    passes = cfg.mu if step_optimizer else 1
    old_logps, ref_logps = [None] * (n_total // micro), [None] * (n_total // micro)
    # each group's prompt once per micro-batch; under DDP its pass runs on the inner module (a second
    # forward through the DDP wrapper before one backward would confuse its gradient reducer)
    shared = {"group": cfg.num_generations, "prompt_model": accelerator.unwrap_model(model)} if run.share_prefix else {}
    with torch.no_grad():
        for j, s in enumerate(range(0, n_total, micro)):
            sl = slice(s, s + micro)
            if cfg.mu > 1:
                old_logps[j], _ = policy_logprobs(model, input_ids[sl], attn[sl], T, cfg.temperature, **shared)
            if run.ref_model is not None:
                ref_logps[j], _ = policy_logprobs(run.ref_model, input_ids[sl], attn[sl], T, cfg.temperature,
                                                  group=shared.get("group"))
    agg = {"clip_low": 0.0, "clip_high": 0.0, "kl": 0.0, "entropy": 0.0, "loss": 0.0, "grad_norm": 0.0}
    for _ in range(passes):
        for j, s in enumerate(range(0, n_total, micro)):
            sl = slice(s, s + micro)
            mask = ro.comp_mask[sl]
            with accelerator.autocast():
                logp, ent = policy_logprobs(model, input_ids[sl], attn[sl], T, cfg.temperature, with_entropy=True,
                                            **shared)
            old = logp.detach() if old_logps[j] is None else old_logps[j]
            per_tok, c_low, c_high = clipped_surrogate(logp, old, ro.advantages[sl], cfg.epsilon, cfg.epsilon_high)
            if ref_logps[j] is not None:
                kl = k3_kl(logp, ref_logps[j])
                per_tok = per_tok + cfg.beta * kl
                agg["kl"] += _masked_mean(kl.detach(), mask) / (n_total // micro) / cfg.mu
            loss = aggregate(per_tok, mask, cfg.loss_type, num_sequences=n_total, num_tokens=n_tokens,
                             max_completion_length=cfg.max_new_tokens) * dapo_scale
            accelerator.backward(loss)
            # token shares of the global batch: summed over ranks below
            share = mask.sum().item() / n_tokens / passes
            agg["clip_low"] += (c_low & mask.bool()).sum().item() / n_tokens / passes
            agg["clip_high"] += (c_high & mask.bool()).sum().item() / n_tokens / passes
            agg["entropy"] += _masked_mean(ent, mask) * share
            agg["loss"] += loss.item() / passes
        if not step_optimizer:
            break
        if cfg.max_grad_norm is not None:
            grad_norm = accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        else:
            grad_norm = torch.sqrt(sum((p.grad.float() ** 2).sum() for p in model.parameters() if p.grad is not None))
        agg["grad_norm"] += float(grad_norm) / cfg.mu  # of the averaged gradient: the same on every rank
        run.optimizer.step()
        run.scheduler.step()
        run.optimizer.zero_grad(set_to_none=True)
    # token-share statistics add up over ranks; loss and KL are means of per-rank values
    for k in ("clip_low", "clip_high", "entropy"):
        agg[k] = all_reduce_sum(agg[k])
    for k in ("loss", "kl"):
        agg[k] = all_reduce_mean(agg[k])
    return agg


def step_metrics(run: _Run, ro: Rollout, agg: dict[str, float], step: int, t0: float) -> dict[str, Any]:
    """The logged metrics of one step (rewards per function, clipping, KL, entropy, lengths, timings)."""
    import torch

    from trainers.losses import group_std

    # every figure is of the global batch (all ranks), not of this rank's slice
    rewards = ro.global_rewards if ro.global_rewards is not None else ro.rewards
    lengths = all_gather_cat(torch.tensor(ro.lengths, dtype=torch.float64))
    stds = group_std(rewards, run.cfg.num_generations)
    judged = ~torch.isnan(rewards)
    m: dict[str, Any] = {
        "step": step,
        "reward/mean": _nanmean(rewards),
        "reward/std": _nanstd(rewards),
        "reward/none_frac": 1.0 - judged.float().mean().item(),
        "frac_zero_std_groups": (stds < 1e-8).float().mean().item(),
        "completion_length/mean": float(lengths.mean()),
        "completion_length/max": int(lengths.max()),
        "clip_frac/low": agg["clip_low"],
        "clip_frac/high": agg["clip_high"],
        "clip_frac/region": agg["clip_low"] + agg["clip_high"],
        "kl": agg["kl"],
        "entropy": agg["entropy"],
        "loss": agg["loss"],
        "grad_norm": agg["grad_norm"],
        "lr": run.scheduler.get_last_lr()[0],
        "time/generate_s": ro.seconds,
        "time/step_s": time.perf_counter() - t0,
    }
    for name, vals in ro.parts.items():
        t = all_gather_cat(torch.tensor([float("nan") if v is None else v for v in vals]))
        m[f"reward/{name}/mean"] = _nanmean(t)
        m[f"reward/{name}/std"] = _nanstd(t)
    return m


def _masked_mean(x, mask) -> float:
    mask = mask.to(x.dtype)
    return float((x * mask).sum() / mask.sum().clamp(min=1))


def _nanmean(t) -> float:
    t = t[~t.isnan()]
    return float(t.mean()) if t.numel() else float("nan")


def _nanstd(t) -> float:
    t = t[~t.isnan()]
    return float(t.std(unbiased=False)) if t.numel() > 1 else 0.0


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(argv, prog="python -m trainers.grpo", description=__doc__.splitlines()[0],
                   config_cls=GRPOConfig, train=train_grpo)


if __name__ == "__main__":
    raise SystemExit(main())
