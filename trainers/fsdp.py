"""FSDP for the trainers: torch's ``fully_shard`` (FSDP2), on CPU (gloo) and GPUs (NCCL).

Why not accelerate's FSDP plugin: on a CPU-only box accelerate turns an FSDP
config into plain DDP (``DistributedType.MULTI_CPU``), so the sharded path
could never be tested here. ``fully_shard`` runs on gloo, so the same code is
tested on 2 CPU processes and runs on GPUs.

- ``shard_model``: every transformer block (the model's ``_no_split_modules``)
  and then the root are sharded; parameters become ``DTensor`` shards, each
  forward all-gathers a block and frees it after, gradients are
  reduce-scattered and *averaged* over ranks (as DDP), optimizer state is
  sharded with the parameters. A sharded model still generates: its forwards
  gather on the fly (every rank must call them the same number of times; the
  GRPO sampler syncs its stop for this).
- Checkpoints (``save_sharded`` / ``load_sharded``): model and optimizer via
  ``torch.distributed.checkpoint`` (one shard file per rank, resharding on
  load), the LR schedule, and each rank's RNG; resume is exact.
- ``full_state_dict``: the gathered weights on rank 0 for ``save_pretrained``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def shard_model(model) -> Any:
    """Shard ``model`` in place over the default process group; returns it."""
    from torch.distributed.fsdp import fully_shard

    names = set(getattr(model, "_no_split_modules", None) or [])
    blocks = [m for m in model.modules() if type(m).__name__ in names]
    if not blocks:
        raise ValueError(f"{type(model).__name__} names no transformer blocks (_no_split_modules): cannot shard it")
    for block in blocks:
        fully_shard(block)
    fully_shard(model)
    return model


def is_sharded(model) -> bool:
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) for p in model.parameters())


def save_sharded(path: str | Path, model, optimizer, scheduler) -> None:
    """Model + optimizer shards (DCP), the schedule and this rank's RNG under ``path``."""
    import torch
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    msd, osd = get_state_dict(model, optimizer)
    dcp.save({"model": msd, "optim": osd}, checkpoint_id=str(p / "sharded"))
    torch.save({"scheduler": scheduler.state_dict(), "rng": torch.get_rng_state()}, p / f"rank{dist.get_rank()}.pt")
    dist.barrier()


def load_sharded(path: str | Path, model, optimizer, scheduler) -> None:
    """Restore what ``save_sharded`` wrote (the same or another world size for the model/optimizer)."""
    import torch
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    p = Path(path)
    msd, osd = get_state_dict(model, optimizer)
    state = {"model": msd, "optim": osd}
    dcp.load(state, checkpoint_id=str(p / "sharded"))
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
    mine = p / f"rank{dist.get_rank()}.pt"
    extra = torch.load(mine if mine.exists() else p / "rank0.pt", weights_only=False)
    scheduler.load_state_dict(extra["scheduler"])
    torch.set_rng_state(extra["rng"])


def full_state_dict(model) -> dict[str, Any]:
    """Every parameter gathered, on CPU, on rank 0 (empty elsewhere)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
