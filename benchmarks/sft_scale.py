"""SFT at R1 scale on CPU: memory of packed long rows, of the tokenised data, and TRL beside us.

    python benchmarks/sft_scale.py [--quick]      # needs the `bench` extra (trl) for the last part

Every measurement runs in its own child process so its peak RSS (``ru_maxrss``)
is its own. Three parts:

1. **Packed rows of 4k, 8k, 16k, 32k tokens** (tiny Llama, char tokenizer, CPU):
   collate + one forward/backward through ``trainers.packing`` (per-sample
   SDPA, no mask). Peak RSS above the loaded model and its ratio per doubling
   (linear memory: ~2x); the previous path (a dense ``[1, 1, L, L]`` block mask
   through transformers' SDPA) beside it at 4k and 8k.
2. **Tokenised data from 10k to 1M samples**: a synthetic fast tokenisation
   (random ids and masks, ~100 tokens a sample — the chat template would take
   hours at 1M) written by ``tokenize_to_disk``, then opened memory-mapped,
   packing planned and 200 packed rows read: peak RSS should stay flat.
3. **Against TRL on R1-shaped data** (completions of 8-30 KB, one chat each,
   max_length 32768): data preparation (our tokenise stage with the chat
   template vs ``SFTTrainer``'s tokenise + pack) time and peak RSS, then
   training tokens/s for a few optimizer steps. TRL runs its recommended CPU
   setting, ``packing_strategy="wrapped"`` (its ``bfd`` padding-free packing
   needs flash-attention; on CPU it falls back to a quadratic mask).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORDS = ["the", "so", "we", "then", "check", "if", "let", "x", "be", "thus", "wait", "but", "equals", "sum", "of", "and", "is", "not", "prime", "factor", "root", "hence", "compute", "verify", "again", "step", "first", "next", "value", "answer"]


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_anon_mb() -> float:
    """Current anonymous RSS (heap, arrays): what the process holds, without the
    file-backed pages of its memory maps, which the kernel can drop at any time."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def text(rng: random.Random, n_chars: int) -> str:
    out, size = [], 0
    while size < n_chars:
        w = rng.choice(WORDS)
        out.append(w)
        size += len(w) + 1
    return " ".join(out)[:n_chars]


def chats(n: int, lo: int, hi: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [{"messages": [{"role": "user", "content": f"Problem {i}: " + text(rng, 200)},
                          {"role": "assistant", "content": "<think>" + text(rng, rng.randint(lo, hi)) + "</think> 42"}]}
            for i in range(n)]


def tiny(max_pos: int = 40000):
    import torch

    from datagen.tinymodel import build_model, build_tokenizer

    torch.set_num_threads(1)
    tok = build_tokenizer()
    return tok, build_model(tok, hidden_size=64, num_layers=2, num_heads=4, max_position_embeddings=max_pos)


# ----------------------------------------------------------------- children


def part_row(L: int, dense: bool) -> dict:
    """collate + forward/backward of one packed row of ~L tokens."""
    import torch
    import torch.nn.functional as F

    from trainers.data import IGNORE, collate, pack, tokenize_chat
    from trainers.packing import packed_kwargs, use_packed_attention

    tok, model = tiny()
    samples, total = [], 0
    for row in chats(10_000, 500, 2000, seed=L):
        s = tokenize_chat(tok, row["messages"])
        if total + len(s.input_ids) > L:
            if L - total < 300:
                break
            continue
        samples.append(s)
        total += len(s.input_ids)
    rows = pack(samples, L)
    base = rss_mb()
    t0 = time.perf_counter()
    batch = collate(rows)
    if dense:  # the previous path: a [1, 1, N, N] block-diagonal mask through SDPA
        n = batch["input_ids"].shape[1]
        seg = torch.repeat_interleave(torch.arange(len(batch["seq_lens"])), torch.tensor(batch["seq_lens"]))
        mask = ((seg[:, None] == seg[None, :]) & torch.tril(torch.ones(n, n, dtype=torch.bool)))[None, None]
        out = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], attention_mask=mask)
    else:
        use_packed_attention(model)
        out = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"],
                    **packed_kwargs(batch["seq_lens"]))
    logits = out.logits[:, :-1].float()
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch["labels"][:, 1:].reshape(-1),
                           ignore_index=IGNORE)
    loss.backward()
    return {"tokens": int(batch["input_ids"].shape[1]), "samples": len(samples), "seconds": time.perf_counter() - t0,
            "base_mb": base, "peak_mb": rss_mb(), "delta_mb": rss_mb() - base}


def part_data(n: int, root: str) -> dict:
    """Synthetic fast tokenisation of n samples to disk, then open + plan + read 200 rows."""
    import numpy as np

    from trainers.tokenize import TokenizedSet, pack_plan, tokenize_to_disk

    rng = np.random.default_rng(0)

    def encode(k):
        ids = rng.integers(0, 100, size=k, dtype=np.uint32)
        trained = np.zeros(k, dtype=bool)
        trained[k // 3:] = True
        return ids, trained

    g = np.random.default_rng(2)  # lengths streamed in chunks, as rows would be
    lengths = (int(k) for c in range(0, n, 65536) for k in g.integers(50, 150, size=min(65536, n - c)))
    t0 = time.perf_counter()
    path = tokenize_to_disk(lengths, None, Path(root) / f"synth-{n}", max_length=4096, encode=encode)
    t_tok = time.perf_counter() - t0
    after_write = rss_mb()
    ts = TokenizedSet.open(path)
    starts = pack_plan(ts.lengths(), 4096)
    picks = np.random.default_rng(1).integers(0, len(starts) - 1, size=200)
    n_tok = sum(len(ts.row(np.arange(starts[k], starts[k + 1]))) for k in picks)
    disk = sum(f.stat().st_size for f in Path(path).iterdir())
    return {"samples": n, "tokens": int(ts.meta["tokens"]), "tokenise_s": t_tok, "rows": len(starts) - 1,
            "read_tokens": n_tok, "disk_mb": disk / 2**20, "peak_after_write_mb": after_write, "peak_mb": rss_mb(),
            "anon_mb": rss_anon_mb()}


def part_ours(n: int, steps: int, L: int, root: str) -> dict:
    from trainers.config import SFTConfig
    from trainers.sft import train_sft
    from trainers.tokenize import tokenize_stage

    tok, model = tiny()
    rows = chats(n, 8_000, 30_000)
    base = rss_mb()
    t0 = time.perf_counter()
    path = tokenize_stage(tok, source=rows, max_length=L, cache_root=f"{root}/cache")
    prep_s = time.perf_counter() - t0
    prep_peak = rss_mb()
    meta = json.loads((path / "meta.json").read_text())
    res = train_sft(SFTConfig(output_dir=f"{root}/out", max_steps=steps, per_device_batch_size=1, max_length=L,
                              learning_rate=1e-3, token_cache=f"{root}/cache", warmup_ratio=0.0, resume=False),
                    rows, model=model, tokenizer=tok)
    return {"prep_s": prep_s, "prep_tokens": meta["tokens"], "prep_rss_mb": prep_peak - base, "base_mb": base,
            "tokens_per_s": res.metrics["tokens_per_s"], "peak_mb": rss_mb()}


def part_trl(n: int, steps: int, L: int, root: str) -> dict:
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    tok, model = tiny()
    rows = chats(n, 8_000, 30_000)
    base = rss_mb()
    args = SFTConfig(output_dir=f"{root}/trl", max_steps=steps, per_device_train_batch_size=1, max_length=L,
                     packing=True, packing_strategy="wrapped", padding_free=False, learning_rate=1e-3,
                     report_to="none", use_cpu=True, save_strategy="no", logging_steps=1, dataset_num_proc=None)
    t0 = time.perf_counter()
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok)
    prep_s = time.perf_counter() - t0
    prep_peak = rss_mb()
    prep_tokens = sum(len(x) for x in trainer.train_dataset["input_ids"])
    t0 = time.perf_counter()
    trainer.train()
    secs = time.perf_counter() - t0
    n_tokens = next(float(h["num_tokens"]) for h in reversed(trainer.state.log_history) if "num_tokens" in h)
    return {"prep_s": prep_s, "prep_tokens": prep_tokens, "prep_rss_mb": prep_peak - base, "base_mb": base,
            "tokens_per_s": n_tokens / secs, "peak_mb": rss_mb()}


# ------------------------------------------------------------------- parent


def child(*args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([sys.executable, __file__, "--part", *args], capture_output=True, text=True, env=env,
                          timeout=3600, check=False)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", nargs="+", help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    ap.add_argument("--steps", type=int, default=3, help="optimizer steps per trainer in part 3")
    ap.add_argument("--samples", type=int, default=60, help="R1-shaped chats in part 3")
    args = ap.parse_args()
    if args.part:
        kind, *rest = args.part
        fn = {"row": lambda: part_row(int(rest[0]), rest[1] == "dense"),
              "data": lambda: part_data(int(rest[0]), rest[1]),
              "ours": lambda: part_ours(int(rest[0]), int(rest[1]), int(rest[2]), rest[3]),
              "trl": lambda: part_trl(int(rest[0]), int(rest[1]), int(rest[2]), rest[3])}[kind]
        print(json.dumps(fn()))
        return

    report: dict = {"rows": {}, "dense_rows": {}, "data": {}, "vs_trl": {}}
    lengths = [4096, 8192] if args.quick else [4096, 8192, 16384, 32768]
    print("1. one packed row: collate + forward/backward (tiny Llama, CPU, 1 thread)")
    prev = None
    for L in lengths:
        r = child("row", str(L), "packed")
        report["rows"][L] = r
        if "error" in r:
            print(f"  {L:>6}: error {r['error']}")
            continue
        ratio = f"{r['delta_mb'] / prev:.2f}x" if prev else "  -  "
        prev = r["delta_mb"]
        print(f"  {r['tokens']:>6} tok ({r['samples']:>2} samples): {r['seconds']:6.2f} s  peak {r['peak_mb']:7.0f} MB  "
              f"above model {r['delta_mb']:6.0f} MB  per doubling {ratio}")
    for L in lengths[:2]:
        r = child("row", str(L), "dense")
        report["dense_rows"][L] = r
        if "error" not in r:
            print(f"  previous dense-mask path {r['tokens']:>6} tok: {r['seconds']:6.2f} s  above model "
                  f"{r['delta_mb']:6.0f} MB")

    print("2. tokenised data: synthetic fast tokenisation, then memory-mapped open + plan + 200 rows")
    sizes = [10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000]
    with tempfile.TemporaryDirectory() as root:
        for n in sizes:
            r = child("data", str(n), root)
            report["data"][n] = r
            if "error" in r:
                print(f"  {n:>9,}: error {r['error']}")
                continue
            print(f"  {n:>9,} samples {r['tokens'] / 1e6:7.1f} M tok: tokenise {r['tokenise_s']:6.1f} s "
                  f"({r['tokens'] / r['tokenise_s'] / 1e6:.1f} M tok/s)  disk {r['disk_mb']:6.0f} MB  "
                  f"peak RSS {r['peak_mb']:5.0f} MB (writing {r['peak_after_write_mb']:4.0f}; anonymous at the end "
                  f"{r['anon_mb']:4.0f} MB, the rest is mapped file pages)")

    print(f"3. vs TRL on R1-shaped data ({args.samples} chats, completions 8-30 KB, max_length 32768, "
          f"{args.steps} steps)")
    n, steps = (12, 2) if args.quick else (args.samples, args.steps)
    with tempfile.TemporaryDirectory() as root:
        ours = child("ours", str(n), str(steps), "32768", root)
        trl = child("trl", str(n), str(steps), "32768", root)
    report["vs_trl"] = {"ours": ours, "trl": trl}
    for name, r in (("ours", ours), ("TRL wrapped", trl)):
        if "error" in r:
            print(f"  {name}: error {r['error']}")
            continue
        print(f"  {name:<12} prep {r['prep_s']:6.2f} s ({r['prep_tokens'] / r['prep_s'] / 1e3:7.0f} k tok/s)  "
              f"prep RSS +{r['prep_rss_mb']:5.0f} MB  train {r['tokens_per_s']:8.0f} tok/s  peak {r['peak_mb']:5.0f} MB")
    if "error" not in ours and "error" not in trl:
        print(f"  ratios: train tokens/s {ours['tokens_per_s'] / trl['tokens_per_s']:.2f}x TRL; prep speed "
              f"{(ours['prep_tokens'] / ours['prep_s']) / (trl['prep_tokens'] / trl['prep_s']):.2f}x; prep memory "
              f"{ours['prep_rss_mb'] / max(trl['prep_rss_mb'], 1):.2f}x")
    print(json.dumps(report, default=str))


if __name__ == "__main__":
    main()
