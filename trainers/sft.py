"""Supervised fine-tuning on chat ``messages`` (DeepSeek-R1's cold start and
its 800k-sample SFT: 2 epochs by default).

Read top to bottom: tokenise once with the chat template into the token cache
(``trainers.tokenize``: loss on assistant tokens only, EOS included; read back
memory-mapped, each rank reading only the rows it trains on) -> plan the
packing (sample boundaries only) -> loop (gradient accumulation,
cosine schedule with warmup, periodic eval loss, checkpoints) -> save.

Several GPUs: ``accelerate launch --config_file configs/accelerate_fsdp_8gpu.yaml
-m trainers.sft --config X.yaml`` (FSDP); each process takes every
``world_size``-th micro-batch of the same seeded order.

The loss is the mean over all assistant tokens of an optimizer step (summed
over micro-batches, divided by the step's token count), so gradient
accumulation gives the same update as one big batch.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainers.config import SFTConfig
from trainers.data import IGNORE, PackedRow, collate
from trainers.distributed import all_reduce_mean, all_reduce_sum
from trainers.packing import use_packed_attention
from trainers.runtime import (
    MetricsLog,
    build_optimizer,
    build_scheduler,
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
from trainers.tokenize import pack_plan

log = logging.getLogger(__name__)


@dataclass
class SFTResult:
    output_dir: Path
    final_model_dir: Path | None
    steps: int
    metrics: dict[str, Any]
    dropped_too_long: int = 0
    model_ref: str | None = None  # NAME@VERSION of the committed final model (push_to_store)


def load_tokenized(cfg: SFTConfig, rows, tokenizer, accelerator):
    """(train set, its sample ids, eval set or None, its sample ids): tokenised once by the
    main process into the token cache (``trainers.tokenize``), opened memory-mapped by all."""
    import numpy as np

    from trainers.tokenize import TokenizedSet, tokenize_stage

    cache = cfg.token_cache or (Path(cfg.output_dir) / "tokenized")
    if rows is not None and not hasattr(rows, "collect") and not hasattr(rows, "iter_slices"):
        rows = list(rows)  # an iterator is read twice (its key, then its tokens)
    with accelerator.main_process_first():
        train_path = tokenize_stage(tokenizer, source=rows, path=None if rows is not None else cfg.data,
                                    max_length=cfg.max_length, truncate=cfg.truncate, cache_root=cache)
        eval_path = (tokenize_stage(tokenizer, path=cfg.eval_data, max_length=cfg.max_length,
                                    truncate=cfg.truncate, cache_root=cache) if cfg.eval_data else None)
    train = TokenizedSet.open(train_path)
    ids = np.arange(len(train), dtype=np.int64)
    if cfg.eval_fraction:
        perm = np.random.default_rng(cfg.seed).permutation(len(train))
        k = max(1, int(len(train) * cfg.eval_fraction))
        return train, np.sort(perm[k:]), train, np.sort(perm[:k])
    if eval_path is not None:
        ev = TokenizedSet.open(eval_path)
        return train, ids, ev, np.arange(len(ev), dtype=np.int64)
    return train, ids, None, ids[:0]


def micro_batches(n_rows: int, cfg: SFTConfig, epoch: int) -> list[list[int]]:
    """The epoch's micro-batches (row indices) in a seeded order."""
    order = list(range(n_rows))
    random.Random(cfg.seed * 1_000_003 + epoch).shuffle(order)
    bs = cfg.per_device_batch_size
    return [order[i: i + bs] for i in range(0, len(order), bs)]


def token_loss_sum(model, batch) -> tuple[Any, int]:
    """Summed next-token cross-entropy over labelled tokens, and their count."""
    import torch.nn.functional as F

    from trainers.packing import packed_kwargs

    ids = batch["input_ids"]
    out = model(input_ids=ids, position_ids=batch["position_ids"], use_cache=False,
                **packed_kwargs(batch["seq_lens"], ids.device))
    logits = out.logits[:, :-1].float()
    targets = batch["labels"][:, 1:]
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE,
                           reduction="sum")
    return loss, int((targets != IGNORE).sum())


def to_device(batch: dict[str, Any], device) -> dict[str, Any]:
    """Tensors of a collated batch moved to ``device``; ``seq_lens`` stays a list."""
    return {k: (v.to(device) if hasattr(v, "to") else v) for k, v in batch.items()}


def evaluate(model, rows: list[PackedRow], cfg: SFTConfig, pad_id: int, device) -> float:
    import torch

    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(rows), cfg.per_device_batch_size):
            batch = to_device(collate(rows[i: i + cfg.per_device_batch_size]), device)
            loss, cnt = token_loss_sum(model, batch)
            total, n = total + float(loss), n + cnt
    model.train()
    return total / max(n, 1)


def train_sft(config: SFTConfig, rows: Iterable[dict] | Any | None = None, *, model=None, tokenizer=None,
              on_log: Callable[[dict[str, Any]], None] | None = None) -> SFTResult:
    """Fine-tune on chat ``messages``; return the output dir and final metrics.

    ``rows``: dicts (or a polars frame) with ``messages`` (list of {role, content}
    or its JSON string); else ``config.data``. ``model``/``tokenizer``: objects,
    else loaded from ``config.model``. Resumes from the newest checkpoint in
    ``config.output_dir`` when ``config.resume``: model, optimizer, scheduler,
    RNG and the position in the data. ``on_log``: called with each logged step's metrics
    (on the main process), e.g. the flow's Prefect logging.
    """
    import torch

    cfg = config
    torch.manual_seed(cfg.seed)
    model, tokenizer = load_model_and_tokenizer(cfg, model, tokenizer)
    accelerator = make_accelerator(cfg.precision)
    world, rank = accelerator.num_processes, accelerator.process_index
    train_set, train_ids, eval_set, eval_ids = load_tokenized(cfg, rows, tokenizer, accelerator)
    dropped = int(train_set.meta.get("dropped_too_long", 0))
    # rows are ranges of train_ids: 8 bytes per row; a row's tokens are read only when trained on
    starts = pack_plan(train_set.lengths()[train_ids], cfg.max_length, packing=cfg.packing)
    n_rows = len(starts) - 1

    def get_row(k: int) -> PackedRow:
        return train_set.row(train_ids[starts[k]: starts[k + 1]])

    eval_rows: list[PackedRow] = []
    if eval_set is not None and len(eval_ids):
        e_starts = pack_plan(eval_set.lengths()[eval_ids], cfg.max_length, packing=cfg.packing)
        eval_rows = [eval_set.row(eval_ids[e_starts[k]: e_starts[k + 1]]) for k in range(len(e_starts) - 1)]

    per_epoch_micro = math.ceil(n_rows / cfg.per_device_batch_size)
    micro_per_step = cfg.gradient_accumulation_steps * world
    steps_per_epoch = max(1, per_epoch_micro // micro_per_step)
    total_steps = cfg.max_steps or max(1, round(cfg.num_epochs * steps_per_epoch))

    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    use_packed_attention(model, accelerator.device)  # varlen / per-sample attention: no L x L mask
    model.train()
    model, optimizer, scheduler = prepare_training(accelerator, cfg, model, lambda m: (
        opt := build_optimizer(m, cfg), build_scheduler(opt, cfg, total_steps)))
    parts = (model, optimizer, scheduler)
    out_dir = Path(cfg.output_dir)

    step = 0
    ckpt = latest_checkpoint(out_dir) if cfg.resume else None
    if ckpt is not None:
        step = load_checkpoint(accelerator, ckpt, parts)["step"]
        log.info("resumed from %s at step %d", ckpt, step)

    metrics_log = MetricsLog(out_dir, enabled=accelerator.is_main_process, name="sft", on_log=on_log)
    pad_id = tokenizer.pad_token_id
    t_start, tokens_seen = time.perf_counter(), 0
    while step < total_steps:
        t0 = time.perf_counter()
        # the step's micro-batches: a pure function of (seed, step), which makes resume exact
        epoch, within = divmod(step, steps_per_epoch)
        plan = micro_batches(n_rows, cfg, epoch)
        chunk = plan[within * micro_per_step: (within + 1) * micro_per_step][rank::world]
        batches = [collate([get_row(i) for i in idxs]) for idxs in chunk]
        # the step's loss is the mean over every rank's labelled tokens: a global count, and
        # x world because DDP/FSDP average the ranks' gradients
        local_tok = sum(int((b["labels"][:, 1:] != IGNORE).sum()) for b in batches)
        n_tok = max(all_reduce_sum(local_tok), 1.0) / world
        loss_total = 0.0
        for b in batches:
            b = to_device(b, accelerator.device)
            with accelerator.autocast():
                loss_sum, _ = token_loss_sum(model, b)
            loss = loss_sum / max(n_tok, 1)
            accelerator.backward(loss)
            loss_total += float(loss.detach())
            tokens_seen += int(b["input_ids"].numel())
        grad_norm = accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm) if cfg.max_grad_norm else None
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        m: dict[str, Any] = {
            "step": step,
            "epoch": step / steps_per_epoch,
            "loss": all_reduce_mean(loss_total),  # each rank's share of the global mean, averaged back
            "lr": scheduler.get_last_lr()[0],
            "grad_norm": float(grad_norm) if grad_norm is not None else None,
            "tokens_per_s": all_reduce_sum(tokens_seen) / (time.perf_counter() - t_start),  # all ranks
            "time/step_s": time.perf_counter() - t0,
        }
        if eval_rows and cfg.eval_every and step % cfg.eval_every == 0:
            m["eval_loss"] = evaluate(model, eval_rows, cfg, pad_id, accelerator.device)
        if step % cfg.log_every == 0 or step == total_steps:
            metrics_log.log(m)
        if cfg.save_every and step % cfg.save_every == 0 and step < total_steps:
            save_checkpoint(accelerator, out_dir, step, {}, cfg.keep_checkpoints, parts)

    final_metrics = dict(metrics_log.last)
    if eval_rows:
        final_metrics["eval_loss"] = evaluate(model, eval_rows, cfg, pad_id, accelerator.device)
        metrics_log.log({"step": step, "eval_loss": final_metrics["eval_loss"]})
    save_checkpoint(accelerator, out_dir, step, {}, cfg.keep_checkpoints, parts)
    final = save_final_model(accelerator, model, tokenizer, out_dir)
    model_ref = push_final_model(accelerator, cfg, final, stage="sft")  # NAME@VERSION when push_to_store is set
    return SFTResult(out_dir, final, step, final_metrics, dropped, model_ref)


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(argv, prog="python -m trainers.sft", description=__doc__.splitlines()[0],
                   config_cls=SFTConfig, train=train_sft)


if __name__ == "__main__":
    raise SystemExit(main())
