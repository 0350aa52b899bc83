"""What SFT and GRPO share around the loop: the accelerator (precision, devices,
FSDP), optimizer + LR schedule, checkpoints with exact resume, and the metrics
log (JSONL, and an ``on_log`` callback the caller fills — the flow with Prefect logging).

Multi-GPU runs go through ``accelerate launch`` (see README / configs/
accelerate_fsdp_8gpu.yaml); a plain ``python -m trainers.sft`` is a single
process on CPU or one GPU. ``Accelerator.save_state`` stores model, optimizer,
scheduler and RNG states (sharded under FSDP); ``trainer_state.json`` beside
them stores the step and the data position, so a resumed run continues with
the same batches it would have seen.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "checkpoint-"


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX512-BF16 or AMX-BF16, from /proc/cpuinfo):
    there oneDNN's bf16 matmuls run several times faster than fp32 ones (~4x on this
    project's AMD EPYC CI box); elsewhere bf16 is emulated and slower than fp32."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def make_accelerator(precision: str):
    """An ``Accelerator`` with bf16 autocast on a bf16-capable GPU when ``precision`` is
    ``auto`` or ``bf16``; on a CPU fp32 unless ``precision`` is ``bf16`` (the GRPO trainer
    then keeps attention in fp32: ``trainers.grpo._cpu_fp32_attention``)."""
    import torch
    from accelerate import Accelerator

    use_bf16 = precision == "bf16" or (
        precision == "auto" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    )
    if precision == "bf16" and not torch.cuda.is_available() and not cpu_has_native_bf16():
        log.warning("precision=bf16 on a CPU without native bf16 (AVX512-BF16/AMX): bf16 autocast is emulated "
                    "and slower than fp32 here; precision=auto trains in fp32")
    # cpu=True on a CPU-only box: otherwise accelerate ignores a torchrun/accelerate
    # multi-process launch there and every process trains alone on the whole batch.
    return Accelerator(mixed_precision="bf16" if use_bf16 else "no", cpu=not torch.cuda.is_available())


#: glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
#: what ``keep_cpu_memory`` sets (the mmap threshold falls back to 32 MB where glibc refuses more)
KEPT_CPU_MEMORY = {"mmap_threshold": 1 << 30, "trim_threshold": (1 << 31) - 1, "top_pad": 64 << 20}
_allocator_tuned: dict[str, int] | None = None


def kept_cpu_memory_env() -> dict[str, str]:
    """``KEPT_CPU_MEMORY`` as glibc's environment variables, for another process
    (``benchmarks/grpo_vs_trl.py --trl-kept-memory`` gives them to TRL's)."""
    return {f"MALLOC_{k.upper()}_": str(v) for k, v in KEPT_CPU_MEMORY.items()}


def keep_cpu_memory(device) -> dict[str, int] | None:
    """On a CPU device under glibc: keep freed memory in the process for reuse, so that
    each micro-batch's activations do not come from fresh pages.

    glibc's defaults hand every allocation above its (adaptive, <= 32 MB) mmap threshold
    a fresh ``mmap`` and give freed heap memory back to the kernel above a trim threshold:
    a CPU training step that allocates and frees the same few-MB activations every
    micro-batch then takes ~20k page faults (each a zeroed page) per GRPO update, ~6% of
    its time (tiny model, 256 completions of 128 tokens). This raises both thresholds
    (``mallopt``; the process keeps its peak heap instead of returning it), as PyTorch's
    CPU performance guide does with jemalloc/tcmalloc. Skipped off CPU, off glibc, when
    ``MALLOC_*``/``GLIBC_TUNABLES`` settings or an ``LD_PRELOAD``-ed allocator already choose,
    or when ``DATAGEN_KEEP_CPU_MEMORY=0``. Returns the values set (None: nothing done)."""
    import ctypes
    import ctypes.util
    import os
    import platform

    global _allocator_tuned
    if getattr(device, "type", str(device)) != "cpu" or platform.system() != "Linux":
        return None
    if _allocator_tuned is not None:
        return _allocator_tuned
    if os.environ.get("DATAGEN_KEEP_CPU_MEMORY", "1") == "0" or os.environ.get("LD_PRELOAD"):
        return None
    if any(k.startswith("MALLOC_") for k in os.environ) or "malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return None
    if platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    values = {}
    # the largest mmap threshold glibc accepts is 32 MB on 64-bit (older releases): try higher first
    for threshold in (KEPT_CPU_MEMORY["mmap_threshold"], 32 << 20):
        if mallopt(_M_MMAP_THRESHOLD, threshold):
            values["mmap_threshold"] = threshold
            break
    for name, param in (("trim_threshold", _M_TRIM_THRESHOLD), ("top_pad", _M_TOP_PAD)):
        if mallopt(param, KEPT_CPU_MEMORY[name]):
            values[name] = KEPT_CPU_MEMORY[name]
    _allocator_tuned = values
    log.info("CPU training: glibc malloc keeps freed memory (%s)", values)
    return values


def build_optimizer(model, cfg):
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    # fused AdamW is a single kernel per step on CUDA; on CPU the foreach path is fastest.
    kwargs = {"fused": True} if next(model.parameters()).is_cuda else {"foreach": True}
    return torch.optim.AdamW(
        params, lr=cfg.learning_rate, betas=tuple(cfg.adam_betas), weight_decay=cfg.weight_decay, **kwargs
    )


def build_scheduler(optimizer, cfg, total_steps: int):
    """Linear warmup over ``warmup_ratio`` of the steps, then cosine to 0 (or constant)."""
    import torch

    warmup = round(cfg.warmup_ratio * total_steps)

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if cfg.lr_schedule == "constant":
            return 1.0
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def load_model_and_tokenizer(cfg, model=None, tokenizer=None):
    """The model/tokenizer passed in code, else loaded from ``cfg.model`` (a path, a hub
    id, or ``NAME@VERSION`` of a model in the store at ``cfg.model_store``)."""
    if model is None or tokenizer is None:
        if cfg.model is None:
            raise ValueError("no model: set `model:` in the config (a local dir or hub id) or pass model= and tokenizer=")
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from datagen.models_store import resolve_model

        # NAME@VERSION: a model committed to the store, fetched once into the local cache
        path = resolve_model(cfg.model, root=getattr(cfg, "model_store", None))
        tokenizer = tokenizer or AutoTokenizer.from_pretrained(path)
        model = model or AutoModelForCausalLM.from_pretrained(path, dtype="auto")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


# ---------------------------------------------------------------- checkpoints


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest complete checkpoint (one with trainer_state.json, written last)."""
    root = Path(output_dir)
    if not root.is_dir():
        return None
    done = [p for p in root.glob(f"{CHECKPOINT_PREFIX}*") if (p / "trainer_state.json").exists()]
    return max(done, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX):]), default=None)


def save_checkpoint(accelerator, output_dir: str | Path, step: int, state: dict[str, Any], keep: int,
                    parts: tuple | None = None) -> Path:
    """Save model/optimizer/scheduler/RNG via accelerate (or, for a model sharded by
    ``trainers.fsdp``, as per-rank shards: pass ``parts=(model, optimizer, scheduler)``),
    then ``trainer_state.json`` last (its presence marks the checkpoint complete); prune old ones."""
    path = Path(output_dir) / f"{CHECKPOINT_PREFIX}{step}"
    if parts is not None and _sharded(parts[0]):
        from trainers.fsdp import save_sharded

        save_sharded(path, *parts)
    else:
        accelerator.save_state(str(path))
    if accelerator.is_main_process:
        tmp = path / "trainer_state.json.tmp"
        tmp.write_text(json.dumps({"step": step, **state}, indent=1))
        tmp.rename(path / "trainer_state.json")
        ckpts = sorted(
            (p for p in Path(output_dir).glob(f"{CHECKPOINT_PREFIX}*") if (p / "trainer_state.json").exists()),
            key=lambda p: int(p.name[len(CHECKPOINT_PREFIX):]),
        )
        for old in ckpts[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return path


def _sharded(model) -> bool:
    from trainers.fsdp import is_sharded

    return is_sharded(model)


def load_checkpoint(accelerator, path: Path, parts: tuple | None = None) -> dict[str, Any]:
    """Restore a ``save_checkpoint`` (same ``parts`` as when saved); returns its trainer state."""
    if parts is not None and _sharded(parts[0]):
        from trainers.fsdp import load_sharded

        load_sharded(path, *parts)
    else:
        accelerator.load_state(str(path))
    return json.loads((path / "trainer_state.json").read_text())


def save_final_model(accelerator, model, tokenizer, output_dir: str | Path) -> Path:
    """The trained model as a plain ``save_pretrained`` dir (``<output_dir>/final``)."""
    path = Path(output_dir) / "final"
    unwrapped = accelerator.unwrap_model(model)
    if _sharded(model):
        from trainers.fsdp import full_state_dict

        state_dict = full_state_dict(model)  # gathered on rank 0
    else:
        state_dict = accelerator.get_state_dict(model)  # gathers FSDP shards on rank 0
    if accelerator.is_main_process:
        unwrapped.save_pretrained(path, state_dict=state_dict)
        tokenizer.save_pretrained(path)
    accelerator.wait_for_everyone()
    return path


def prepare_training(accelerator, cfg, model, optimizer_and_scheduler):
    """``(model, optimizer, scheduler)`` ready to train: sharded with ``trainers.fsdp``
    when ``cfg.fsdp`` and several processes, else through ``accelerator.prepare``
    (DDP / one device). ``optimizer_and_scheduler(model)`` builds them on the final params."""
    if getattr(cfg, "fsdp", False) and accelerator.num_processes > 1:
        from trainers.fsdp import shard_model

        model = shard_model(model.to(accelerator.device))
        optimizer, scheduler = optimizer_and_scheduler(model)
        return model, optimizer, scheduler
    optimizer, scheduler = optimizer_and_scheduler(model)
    return accelerator.prepare(model, optimizer, scheduler)


def push_final_model(accelerator, cfg, final_dir: Path, *, stage: str) -> str | None:
    """Commit ``final_dir`` to the store as a version of ``cfg.push_to_store`` (main
    process only); returns ``NAME@VERSION`` on every rank, or None when not asked."""
    if not getattr(cfg, "push_to_store", None):
        return None
    ref = None
    if accelerator.is_main_process:
        from datagen.models_store import commit_model

        config = cfg.model_dump(mode="json") if hasattr(cfg, "model_dump") else {}
        ref = commit_model(final_dir, cfg.push_to_store, root=cfg.model_store, stage=stage, config=config).ref
    if accelerator.num_processes > 1:
        from accelerate.utils import broadcast_object_list

        holder = [ref]
        broadcast_object_list(holder, from_process=0)
        ref = holder[0]
    return ref


# -------------------------------------------------------------------- metrics


class MetricsLog:
    """One JSON object per logged step in ``<output_dir>/metrics.jsonl``, and the same
    metrics handed to ``on_log`` (the flow fills it with Prefect logging; the trainers
    know nothing of Prefect)."""

    def __init__(self, output_dir: str | Path, *, enabled: bool = True, name: str = "train",
                 on_log: Callable[[dict[str, Any]], None] | None = None):
        self.path = Path(output_dir) / "metrics.jsonl"
        self.enabled = enabled
        self.name = name
        self.on_log = on_log
        self.last: dict[str, Any] = {}
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def log(self, metrics: dict[str, Any]) -> None:
        metrics = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in metrics.items()}
        self.last = metrics
        if not self.enabled:
            return
        with self.path.open("a") as fh:
            fh.write(json.dumps({"time": round(time.time(), 3), **metrics}) + "\n")
        if self.on_log is not None:
            self.on_log(metrics)


def run_cli(argv, *, prog: str, description: str, config_cls, train) -> int:
    """The shared ``python -m trainers.<name> --config X.yaml [--set k=v ...]`` entry point."""
    import argparse

    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--config", required=True, help=f"{config_cls.__name__} as YAML")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    from datagen.config import ConfigError, load

    try:
        config = load(config_cls, args.config, args.set, help_hint="every key: see trainers/config.py")
    except ConfigError as exc:
        parser.exit(2, f"{prog}: error: {exc}\n")
    result = train(config)
    log.info("done: %d steps, final model in %s", result.steps, result.final_model_dir)
    return 0
