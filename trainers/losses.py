"""GRPO's maths as pure torch functions: advantages, the k3 KL, the clipped
objective and the loss aggregation variants.

Nothing here knows about models, tokenizers or data; every function takes
tensors and returns tensors, so each formula can be checked by hand in a test.

References:
- GRPO, DeepSeekMath (Shao et al. 2024, arXiv:2402.03300), eq. 3-4: group
  advantage ``(r - mean(r)) / std(r)``; per-token KL with the k3 estimator
  ``pi_ref/pi - log(pi_ref/pi) - 1`` (Schulman, "Approximating KL divergence").
- DAPO (Yu et al. 2025, arXiv:2503.14476): a higher upper clip ``eps_high``
  ("clip-higher") and token-level aggregation over the whole batch.
- Dr. GRPO (Liu et al. 2025, arXiv:2503.20783): no per-sequence length
  normalisation; divide by a constant (sequences x max completion length)
  so long wrong answers are not favoured.
"""

from __future__ import annotations

from typing import Literal

import torch

LossType = Literal["grpo", "dr_grpo", "dapo"]

ADVANTAGE_EPS = 1e-4


def group_advantages(rewards: torch.Tensor, group_size: int, eps: float = ADVANTAGE_EPS) -> torch.Tensor:
    """``A_i = (r_i - mean_group) / (std_group + eps)`` for rewards laid out as
    consecutive groups of ``group_size`` completions of the same prompt.

    ``NaN`` marks a reward that could not be judged: it is left out of its
    group's mean and std and gets advantage 0 (it neither pushes nor pulls).
    The std is the sample std (``n - 1``), as TRL and DeepSeekMath's code use;
    a group with fewer than two judged rewards has std 0 and so advantage 0
    for every member (``r - mean`` is 0 for a single judged reward).
    """
    if rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    r = rewards.float().view(-1, group_size)
    judged = ~torch.isnan(r)
    n = judged.sum(dim=1, keepdim=True).clamp(min=1)
    filled = torch.where(judged, r, torch.zeros_like(r))
    mean = filled.sum(dim=1, keepdim=True) / n
    sq = torch.where(judged, (r - mean) ** 2, torch.zeros_like(r)).sum(dim=1, keepdim=True)
    std = torch.sqrt(sq / (n - 1).clamp(min=1))
    adv = torch.where(judged, (r - mean) / (std + eps), torch.zeros_like(r))
    return adv.view(-1)


ScaleRewards = Literal["group", "batch", "none"]


def advantages(rewards: torch.Tensor, group_size: int, scale: ScaleRewards = "group",
               eps: float = ADVANTAGE_EPS) -> torch.Tensor:
    """Group-relative advantages ``r_i - mean_group``, divided by a std chosen by ``scale``:

    - ``group``: the group's std (DeepSeekMath; ``group_advantages``);
    - ``batch``: the std of every judged reward of the (global) batch, as TRL's
      ``scale_rewards="batch"`` (robust when a group's rewards barely differ);
    - ``none``: no division (Dr. GRPO, arXiv:2503.20783 sec. 3.1: the std
      division favours questions that are too easy or too hard).

    ``rewards`` must be the whole global batch (gather it across ranks first)
    for ``batch`` to mean the same on one rank as on many. NaN = not judged:
    advantage 0, left out of every mean and std.
    """
    if scale == "group":
        return group_advantages(rewards, group_size, eps)
    if scale not in ("batch", "none"):
        raise ValueError(f"unknown scale_rewards {scale!r}; use 'group', 'batch' or 'none'")
    if rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    r = rewards.float().view(-1, group_size)
    judged = ~torch.isnan(r)
    n = judged.sum(dim=1, keepdim=True).clamp(min=1)
    mean = torch.where(judged, r, torch.zeros_like(r)).sum(dim=1, keepdim=True) / n
    centred = torch.where(judged, r - mean, torch.zeros_like(r))
    if scale == "batch":
        flat = r[judged]
        std = flat.std(unbiased=True) if flat.numel() > 1 else torch.tensor(0.0)
        centred = centred / (std + eps)
    return centred.view(-1)


def group_std(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """Per-group sample std over the judged rewards (NaN = not judged); 0 for a
    group with fewer than two judged rewards. Used for the zero-std metric."""
    r = rewards.float().view(-1, group_size)
    judged = ~torch.isnan(r)
    n = judged.sum(dim=1).clamp(min=1)
    mean = torch.where(judged, r, torch.zeros_like(r)).sum(dim=1) / n
    sq = torch.where(judged, (r - mean[:, None]) ** 2, torch.zeros_like(r)).sum(dim=1)
    return torch.sqrt(sq / (n - 1).clamp(min=1))


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of KL(pi || pi_ref): ``exp(d) - d - 1`` with
    ``d = log pi_ref - log pi``. Always >= 0, and 0 exactly where they agree."""
    d = ref_logp - logp
    return torch.exp(d) - d - 1


def clipped_surrogate(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    eps_low: float,
    eps_high: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-token PPO/GRPO loss ``-min(rho A, clip(rho, 1-eps_low, 1+eps_high) A)``.

    ``advantages`` is per sequence (shape ``[B]``) or per token (``[B, T]``).
    ``eps_high`` defaults to ``eps_low`` (symmetric clip, as in the paper).
    Returns ``(loss, clipped_low, clipped_high)``: the masks say where the clip
    was active, i.e. the gradient was cut — below ``1 - eps_low`` with a
    negative advantage, above ``1 + eps_high`` with a positive one.
    """
    eps_high = eps_low if eps_high is None else eps_high
    adv = advantages[:, None] if advantages.dim() == 1 else advantages
    ratio = torch.exp(logp - old_logp)
    clipped_ratio = torch.clamp(ratio, 1 - eps_low, 1 + eps_high)
    loss = -torch.min(ratio * adv, clipped_ratio * adv)
    clipped_low = (ratio < 1 - eps_low) & (adv < 0)
    clipped_high = (ratio > 1 + eps_high) & (adv > 0)
    return loss, clipped_low, clipped_high


def aggregate(
    per_token: torch.Tensor,
    mask: torch.Tensor,
    loss_type: LossType,
    *,
    num_sequences: int | None = None,
    num_tokens: float | None = None,
    max_completion_length: int | None = None,
) -> torch.Tensor:
    """Reduce a ``[B, T]`` per-token loss over the completion ``mask``.

    - ``grpo``: mean over each sequence's tokens, then mean over sequences
      (DeepSeekMath eq. 3: ``1/G sum_i 1/|o_i| sum_t``).
    - ``dapo``: sum over all tokens / number of tokens in the batch.
    - ``dr_grpo``: sum over all tokens / (sequences x ``max_completion_length``).

    When the batch is split into micro-batches for gradient accumulation, pass
    the whole batch's ``num_sequences`` (and ``num_tokens`` for dapo): the
    micro-batch losses then add up to exactly the full-batch loss.
    """
    mask = mask.to(per_token.dtype)
    n_seq = num_sequences if num_sequences is not None else per_token.shape[0]
    if loss_type == "grpo":
        per_seq = (per_token * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
        return per_seq.sum() / n_seq
    if loss_type == "dapo":
        n_tok = num_tokens if num_tokens is not None else mask.sum().clamp(min=1)
        return (per_token * mask).sum() / n_tok
    if loss_type == "dr_grpo":
        length = max_completion_length if max_completion_length is not None else per_token.shape[1]
        return (per_token * mask).sum() / (n_seq * length)
    raise ValueError(f"unknown loss_type {loss_type!r}; use 'grpo', 'dr_grpo' or 'dapo'")


def token_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of each position's next-token distribution, ``[B, T, V] -> [B, T]``."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(dim=-1)


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``log p(target_t)`` per position, ``[B, T, V], [B, T] -> [B, T]`` (float32).

    Uses ``logsumexp`` rather than a full ``log_softmax`` copy to keep peak
    memory at one ``[B, T, V]`` tensor on large vocabularies.
    """
    logits = logits.float()
    picked = torch.gather(logits, -1, targets.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)
