"""Peak RSS of the sft flow's data loading, before and after it streamed (issue 18), at two sizes.

    python benchmarks/sft_flow_data.py [--rows 20000 80000] [--quick]

An SFT mix version of ~8 KB one-turn chats (a 200-character prompt, a ~7.7 KB
``<think>`` completion) is written to a local store; then each path runs in its
own child process, whose peak RSS is its own ``VmHWM``:

- **before** (the code removed from ``flows/train.py``'s ``_run_stage``): the
  whole version collected into Python dicts, ``lf.select("messages").collect()
  .to_dicts()``, then ``train_sft``'s data step (the token cache from rows in
  memory: ``tokenize_stage(source=rows)``), the set opened, packing planned;
- **after**: the ``tokenize`` stage's shard function (what each of its tasks runs,
  ``flows.tokenize.tokenize_shard_rows``) into a committed version, then what each
  SFT process does with it: ``materialize_version`` (decoded once into the local
  memory-mapped set), opened, packing planned.

Both read 200 packed rows at the end. Both children import the flows (and so
Prefect: ``start_mb``) but run no Prefect server or task; the flow runs the stage's shard tasks on
its thread pool, one per input shard, and these versions have one shard each.
The tokenizer is a word-level one built here (the chat template path of
``trainers.data.tokenize_chat``, ~1.6k tokens a chat; the char-level tiny one
is 5x slower at the same bytes). Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WORDS = ["the", "so", "we", "then", "check", "if", "let", "x", "be", "thus", "wait", "but", "equals", "sum", "of",
         "and", "is", "not", "prime", "factor", "root", "hence", "compute", "verify", "again", "step", "first", "next",
         "value", "answer"]
MAX_LENGTH = 4096


def word_tokenizer(path: Path) -> str:
    """A word-level fast tokenizer over WORDS with the tiny models' chat template, saved to ``path``."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from datagen.tinymodel import _CHAT_TEMPLATE, SPECIAL_TOKENS

    vocab = {t: i for i, t in enumerate(SPECIAL_TOKENS)}
    for w in WORDS:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="<|end|>", unk_token="<unk>", pad_token="<pad>",
        additional_special_tokens=[t for t in SPECIAL_TOKENS if t not in ("<s>", "<|end|>", "<unk>", "<pad>")],
        chat_template=_CHAT_TEMPLATE.replace("{PREFILL}", ""))
    fast.save_pretrained(path)
    return str(path)


def write_mix(root: str, n: int, seed: int = 0) -> str:
    """An ``sft-mix`` version of ``n`` ~8 KB chats, written in batches (the parent never holds them all)."""
    from datagen.store import open_store

    rng = random.Random(seed)

    def text(k: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(k // 5))

    pool = [text(7700) for _ in range(64)]  # completions drawn from a pool: generating 640 MB word by word is slow
    w = open_store(root).writer("sft-mix", stage="mix")
    for base in range(0, n, 4096):
        w.write([{"problem_id": f"p{i}", "sample_id": f"p{i}:0", "source": "bench", "domain": "math",
                  "language": "en", "prompt": f"Problem {i}", "messages": [
            {"role": "user", "content": f"Problem {i}: " + text(200)},
            {"role": "assistant", "content": "<think> " + pool[rng.randrange(len(pool))] + f" </think> {i}"}]}
            for i in range(base, min(n, base + 4096))])
    return w.commit().ref


def hwm_mb() -> float:
    """This process's own peak RSS (``VmHWM``; ``ru_maxrss`` can carry a parent's across exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child(path: str, root: str, tok_dir: str, work: str) -> dict:
    import numpy as np

    import flows.tokenize
    import flows.train  # noqa: F401 - both paths run in the flow's process: Prefect and the flows are loaded
    from datagen.store import open_store
    from trainers.tokenize import TokenizedSet, load_tokenizer, pack_plan, tokenize_stage

    tok = load_tokenizer(tok_dir)
    store = open_store(root)
    src = store.resolve("sft-mix")
    out: dict = {"path": path, "rows": src.rows, "start_mb": hwm_mb()}
    t0 = time.perf_counter()
    if path == "before":
        rows = store.scan(src).select("messages").collect().to_dicts()  # the removed line of flows/train.py
        out["collected_mb"] = hwm_mb()
        set_dir = tokenize_stage(tok, source=rows, max_length=MAX_LENGTH, cache_root=Path(work) / "cache")
    else:
        from flows.tokenize import TokenizeParams, tokenize_shard_rows
        from trainers.tokenize import materialize_version

        w = store.writer("sft-mix-tokens", stage="tokenize", config={"max_length": MAX_LENGTH}, parents=[src.ref])
        for i, shard in enumerate(src.shards):
            tokenize_shard_rows(store, shard.path, w.dataset, w.version, i, tok, max_length=MAX_LENGTH,
                                truncate="drop", batch_rows=1024, shard_tokens=TokenizeParams.model_fields["shard_tokens"].default)
        out["shards_mb"] = hwm_mb()
        manifest = w.commit()
        out["tokenized_mb"] = hwm_mb()
        set_dir = materialize_version(store, manifest, Path(work) / "cache")
    out["tokenize_s"] = round(time.perf_counter() - t0, 1)
    ts = TokenizedSet.open(set_dir)
    starts = pack_plan(ts.lengths(), MAX_LENGTH)
    for k in range(min(200, len(starts) - 1)):
        ts.row(np.arange(starts[k], starts[k + 1]))
    out.update(samples=len(ts), tokens=int(ts.offsets[-1]), peak_mb=round(hwm_mb(), 1),
               wall_s=round(time.perf_counter() - t0, 1))
    return out


def run_child(*args: str) -> dict:
    res = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, cwd=ROOT,
                         check=False)
    if res.returncode:
        raise SystemExit(f"child {args[0]} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    ap.add_argument("--rows", type=int, nargs="+", default=[20_000, 80_000])
    ap.add_argument("--quick", action="store_true", help="2k and 8k rows (a smoke run)")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
        return
    sizes = [2000, 8000] if args.quick else args.rows
    results = []
    with tempfile.TemporaryDirectory(prefix="sft-flow-data-") as tmp:
        tok_dir = word_tokenizer(Path(tmp) / "tok")
        for n in sizes:
            root = str(Path(tmp) / f"store-{n}")
            t0 = time.perf_counter()
            write_mix(root, n)
            print(f"{n} rows written in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
            for path in ("before", "after"):
                work = Path(tmp) / f"work-{n}-{path}"
                work.mkdir()
                r = run_child(path, root, tok_dir, str(work))
                print(json.dumps(r), file=sys.stderr)
                results.append(r)
    by = {(r["path"], r["rows"]): r["peak_mb"] for r in results}
    lo, hi = sizes[0], sizes[-1]
    summary = {"rows": sizes, "peak_mb": {f"{p}@{n}": by[(p, n)] for p in ("before", "after") for n in sizes},
               "growth_before": round(by[("before", hi)] / by[("before", lo)], 2),
               "growth_after": round(by[("after", hi)] / by[("after", lo)], 2),
               "results": results}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
