"""Supervised fine-tuning on chat ``messages`` (DeepSeek-R1's cold start and
its 800k-sample SFT: 2 epochs by default).

Read top to bottom: load rows -> tokenise with the chat template (loss on
assistant tokens only, EOS included) -> pack -> loop (gradient accumulation,
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
from trainers.data import IGNORE, PackedRow, collate, pack, parse_messages, tokenize_chat, unpacked
from trainers.packing import use_packed_attention
from trainers.runtime import (
    MetricsLog,
    build_optimizer,
    build_scheduler,
    latest_checkpoint,
    load_checkpoint,
    load_model_and_tokenizer,
    make_accelerator,
    push_final_model,
    run_cli,
    save_checkpoint,
    save_final_model,
)

log = logging.getLogger(__name__)


@dataclass
class SFTResult:
    output_dir: Path
    final_model_dir: Path | None
    steps: int
    metrics: dict[str, Any]
    dropped_too_long: int = 0
    model_ref: str | None = None  # NAME@VERSION of the committed final model (push_to_store)


def load_rows(source, path: str | None) -> list[dict[str, Any]]:
    """Rows with ``messages``: a list/iterable of dicts, a polars (Lazy)DataFrame,
    or a JSONL/Parquet file path."""
    if source is None:
        if path is None:
            raise ValueError("no SFT data: set `data:` in the config or pass rows=[{'messages': [...]}, ...]")
        from datagen.files import read_records

        source = read_records(path)
    if hasattr(source, "collect"):
        source = source.select("messages").collect()
    if hasattr(source, "to_dicts"):
        source = source.to_dicts()
    rows = [dict(r) for r in source]
    if not rows:
        raise ValueError("the SFT dataset is empty")
    if "messages" not in rows[0]:
        raise ValueError(f"SFT rows need a 'messages' column; got columns {sorted(rows[0])}")
    return rows


def build_rows(tokenizer, rows, cfg: SFTConfig) -> tuple[list[PackedRow], int]:
    """Tokenised (and packed) training rows, and how many samples were too long."""
    samples, dropped = [], 0
    for r in rows:
        s = tokenize_chat(tokenizer, parse_messages(r["messages"]))
        if len(s.input_ids) > cfg.max_length:
            if cfg.truncate == "error":
                raise ValueError(f"a sample has {len(s.input_ids)} tokens > max_length={cfg.max_length}")
            dropped += 1
            continue
        samples.append(s)
    if dropped:
        log.warning("dropped %d samples longer than max_length=%d", dropped, cfg.max_length)
    return (pack(samples, cfg.max_length) if cfg.packing else unpacked(samples)), dropped


def micro_batches(rows: list[PackedRow], cfg: SFTConfig, epoch: int) -> list[list[int]]:
    """The epoch's micro-batches (row indices) in a seeded order."""
    order = list(range(len(rows)))
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
    data = load_rows(rows, cfg.data)
    model, tokenizer = load_model_and_tokenizer(cfg, model, tokenizer)
    eval_data = load_rows(None, cfg.eval_data) if cfg.eval_data else []
    if cfg.eval_fraction:
        shuffled = data[:]
        random.Random(cfg.seed).shuffle(shuffled)
        k = max(1, int(len(shuffled) * cfg.eval_fraction))
        eval_data, data = shuffled[:k], shuffled[k:]
    train_rows, dropped = build_rows(tokenizer, data, cfg)
    eval_rows = build_rows(tokenizer, eval_data, cfg)[0] if eval_data else []

    accelerator = make_accelerator(cfg.precision)
    world, rank = accelerator.num_processes, accelerator.process_index
    per_epoch_micro = math.ceil(len(train_rows) / cfg.per_device_batch_size)
    micro_per_step = cfg.gradient_accumulation_steps * world
    steps_per_epoch = max(1, per_epoch_micro // micro_per_step)
    total_steps = cfg.max_steps or max(1, round(cfg.num_epochs * steps_per_epoch))

    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    use_packed_attention(model, accelerator.device)  # varlen / per-sample attention: no L x L mask
    model.train()
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg, total_steps)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    out_dir = Path(cfg.output_dir)

    step = 0
    ckpt = latest_checkpoint(out_dir) if cfg.resume else None
    if ckpt is not None:
        step = load_checkpoint(accelerator, ckpt)["step"]
        log.info("resumed from %s at step %d", ckpt, step)

    metrics_log = MetricsLog(out_dir, enabled=accelerator.is_main_process, name="sft", on_log=on_log)
    pad_id = tokenizer.pad_token_id
    t_start, tokens_seen = time.perf_counter(), 0
    while step < total_steps:
        t0 = time.perf_counter()
        # the step's micro-batches: a pure function of (seed, step), which makes resume exact
        epoch, within = divmod(step, steps_per_epoch)
        plan = micro_batches(train_rows, cfg, epoch)
        chunk = plan[within * micro_per_step: (within + 1) * micro_per_step][rank::world]
        batches = [collate([train_rows[i] for i in idxs], pad_id) for idxs in chunk]
        n_tok = sum(int((b["labels"][:, 1:] != IGNORE).sum()) for b in batches)
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
            "loss": loss_total,
            "lr": scheduler.get_last_lr()[0],
            "grad_norm": float(grad_norm) if grad_norm is not None else None,
            "tokens_per_s": tokens_seen / (time.perf_counter() - t_start),
            "time/step_s": time.perf_counter() - t0,
        }
        if eval_rows and cfg.eval_every and step % cfg.eval_every == 0:
            m["eval_loss"] = evaluate(model, eval_rows, cfg, pad_id, accelerator.device)
        if step % cfg.log_every == 0 or step == total_steps:
            metrics_log.log(m)
        if cfg.save_every and step % cfg.save_every == 0 and step < total_steps:
            save_checkpoint(accelerator, out_dir, step, {}, cfg.keep_checkpoints)

    final_metrics = dict(metrics_log.last)
    if eval_rows:
        final_metrics["eval_loss"] = evaluate(model, eval_rows, cfg, pad_id, accelerator.device)
        metrics_log.log({"step": step, "eval_loss": final_metrics["eval_loss"]})
    save_checkpoint(accelerator, out_dir, step, {}, cfg.keep_checkpoints)
    final = save_final_model(accelerator, model, tokenizer, out_dir)
    model_ref = push_final_model(accelerator, cfg, final, stage="sft")  # NAME@VERSION when push_to_store is set
    return SFTResult(out_dir, final, step, final_metrics, dropped, model_ref)


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(argv, prog="python -m trainers.sft", description=__doc__.splitlines()[0],
                   config_cls=SFTConfig, train=train_sft)


if __name__ == "__main__":
    raise SystemExit(main())
