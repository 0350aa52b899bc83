"""The few collectives the trainers need, as no-ops in a single process.

Why they exist: under data parallelism each rank sees only its slice of the
global batch. Anything that must be a statistic of the *global* batch — the
token count that ``dapo`` divides by, the batch std of ``scale_rewards:
batch``, the logged reward mean — has to be reduced across ranks, or it
silently becomes rank 0's view (or a per-rank normaliser that DDP then
averages, which weighs ranks with short completions more).

All functions work on CPU tensors over gloo and on CUDA tensors over NCCL;
without an initialised process group they return their input.
"""

from __future__ import annotations

from typing import Any


def _dist():
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def world_size() -> int:
    d = _dist()
    return d.get_world_size() if d else 1


def rank() -> int:
    d = _dist()
    return d.get_rank() if d else 0


def _backend_device(t):
    """NCCL needs CUDA tensors; gloo takes CPU ones."""
    import torch

    d = _dist()
    if d is not None and d.get_backend() == "nccl" and not t.is_cuda:
        return t.to(torch.device("cuda", torch.cuda.current_device()))
    return t


def all_reduce_sum(value: Any):
    """Sum of a tensor (or number) over ranks; a float for a number."""
    import torch

    d = _dist()
    is_num = not isinstance(value, torch.Tensor)
    if d is None:
        return float(value) if is_num else value
    t = torch.tensor(float(value), dtype=torch.float64) if is_num else value.detach().clone()
    dev = t.device
    t = _backend_device(t)
    d.all_reduce(t, op=d.ReduceOp.SUM)
    return float(t) if is_num else t.to(dev)


def all_reduce_mean(value: float) -> float:
    """Mean of a number over ranks."""
    return all_reduce_sum(value) / world_size()


def all_gather_cat(t):
    """Tensors of the same shape from every rank, concatenated along dim 0 in rank order."""
    import torch

    d = _dist()
    if d is None:
        return t
    src = _backend_device(t.detach().contiguous())
    out = [torch.empty_like(src) for _ in range(d.get_world_size())]
    d.all_gather(out, src)
    return torch.cat(out, dim=0).to(t.device)


def any_rank(flag: bool) -> bool:
    """True when ``flag`` is true on at least one rank (every rank gets the same answer)."""
    return all_reduce_sum(1.0 if flag else 0.0) > 0


def all_ranks(flag: bool) -> bool:
    """True only when ``flag`` is true on every rank: e.g. "every rank's sampler is done",
    so that sharded forwards (FSDP) run the same number of times on every rank."""
    return all_reduce_sum(1.0 if flag else 0.0) == world_size()
