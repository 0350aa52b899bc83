"""Language-mixing filter on labeled long reasoning texts: precision, recall, F1 on "mixed".

Sets (``benchmarks/language_compose.py`` says how they are made), each reported apart:

- ``prefreeze``: 220 texts (10 languages, 2-20 KB each), material and
  composition written while the filter was built and tuned;
- ``postfreeze``: texts whose material and composition were written only
  after the filter code was frozen, never used to tune it (the goal applies
  here: F1 >= 0.95 and precision >= 0.95, each language listed);
- ``earlier``: the 77 short hand-written texts of the first version (7 languages).

A text is predicted "mixed" when ``LanguageMixFilter`` drops it for any reason
(its last paragraph is judged as the answer when it reads as one).

Baselines, in the same run on the same texts:

- ``fasttext-whole``: fastText on the whole cleaned text; "mixed" when its
  top language is not the target or its probability is below 0.9;
- ``fasttext-sentence``: fastText per sentence of the cleaned text; "mixed"
  when the words of sentences it labels foreign (p >= 0.5) exceed the
  filter's own thresholds (1% of the words, more than 2 words).

Prints tables, then one JSON line with the figures.

    python benchmarks/language_bench.py [--show-errors]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter, defaultdict
from pathlib import Path

from datagen.language import _SAME_LANGUAGE, clean, fasttext_model, sentences
from filters.language import LanguageMixFilter

DATA = Path(__file__).parent / "data"
SETS = {"prefreeze": "language_prefreeze.jsonl", "postfreeze": "language_postfreeze.jsonl",
        "earlier": "language_labeled.jsonl"}


def _same(language: str) -> frozenset[str]:
    return _SAME_LANGUAGE.get(language, frozenset({language}))


def fasttext_whole(text: str, language: str) -> bool:
    prob, label = fasttext_model().f.predict(" ".join(clean(text).split()) + "\n", 1, 0.0, "replace")[0]
    return label[9:] not in _same(language) or prob < 0.9


def fasttext_sentence(text: str, language: str) -> bool:
    predict = fasttext_model().f.predict
    foreign = total = 0
    for words in sentences(text):
        n = len(words)
        total += n
        prob, label = predict(" ".join(words) + "\n", 1, 0.0, "replace")[0]
        if label[9:] not in _same(language) and prob >= 0.5:
            foreign += n
    return foreign > 2 and foreign / max(total, 1) > 0.01


def score(predicted: list[bool], gold: list[bool]) -> dict:
    tp = sum(p and g for p, g in zip(predicted, gold))
    fp = sum(p and not g for p, g in zip(predicted, gold))
    fn = sum(g and not p for p, g in zip(predicted, gold))
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"n": len(gold), "precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn}


def load(name: str) -> list[dict]:
    path = DATA / SETS[name]
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def row(name: str, r: dict) -> str:
    return (f"{name:<26} {r['n']:>4} {r['precision']:>6.3f} {r['recall']:>6.3f} {r['f1']:>6.3f} "
            f"{r['tp']:>4} {r['fp']:>4} {r['fn']:>4}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--show-errors", action="store_true", help="print every text the filter gets wrong")
    args = parser.parse_args()
    flt = LanguageMixFilter()
    fasttext_model()
    methods = {
        "LanguageMixFilter": lambda t, lang: flt.judge(t, lang) is not None,
        "fasttext-whole": fasttext_whole,
        "fasttext-sentence": fasttext_sentence,
    }
    out: dict = {"goal": {"set": "postfreeze", "f1": 0.95, "precision": 0.95}, "sets": {}}
    header = f"{'':<26} {'n':>4} {'prec':>6} {'recall':>6} {'F1':>6} {'tp':>4} {'fp':>4} {'fn':>4}"
    for set_name in SETS:
        items = load(set_name)
        if not items:
            print(f"\n[{set_name}] no texts")
            continue
        gold = [it["label"] == "mixed" for it in items]
        nbytes = sum(len(it["text"].encode()) for it in items)
        langs = Counter(it["language"] for it in items)
        print(f"\n[{set_name}] {len(items)} texts ({sum(gold)} mixed), {nbytes / 1e6:.2f} MB, languages: "
              + ", ".join(f"{k}={v}" for k, v in sorted(langs.items())))
        print(header)
        entry: dict = {"texts": len(items), "mixed": sum(gold), "mb": round(nbytes / 1e6, 3), "methods": {}}
        predictions = {}
        for name, predict in methods.items():
            start = time.process_time()
            predicted = [predict(it["text"], it["language"]) for it in items]
            cpu = time.process_time() - start
            predictions[name] = predicted
            r = score(predicted, gold)
            print(row(name, r) + f"   {nbytes / 1e6 / cpu:6.1f} MB/s")
            entry["methods"][name] = {k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}
            entry["methods"][name]["mb_per_cpu_s"] = round(nbytes / 1e6 / cpu, 2)
        ours = predictions["LanguageMixFilter"]
        by_lang, by_kind = defaultdict(list), defaultdict(list)
        for it, p, g in zip(items, ours, gold):
            by_lang[it["language"]].append((p, g))
            by_kind[it["kind"]].append((p, g))
        print("LanguageMixFilter by language:")
        entry["by_language"] = {}
        for lang in sorted(by_lang):
            r = score([p for p, _ in by_lang[lang]], [g for _, g in by_lang[lang]])
            print(row(f"  {lang}", r))
            entry["by_language"][lang] = {k: round(r[k], 4) for k in ("precision", "recall", "f1")}
        print("LanguageMixFilter correct by kind: " + ", ".join(
            f"{k} {sum(p == g for p, g in v)}/{len(v)}" for k, v in sorted(by_kind.items())))
        entry["by_kind"] = {k: f"{sum(p == g for p, g in v)}/{len(v)}" for k, v in sorted(by_kind.items())}
        errors = [(it, p) for it, p, g in zip(items, ours, gold) if p != g]
        for it, p in errors if args.show_errors else errors[:12]:
            detail = " ".join((flt.judge_text(it["text"], it["language"])[1] or "kept").split())
            print(f"  miss {it['id']} ({it['kind']}, {it['language']}, foreign {it.get('foreign')}, label "
                  f"{it['label']}, gen mixing {it.get('generator_mixing')}): {detail[:200]}")
        out["sets"][set_name] = entry
    print(json.dumps(out))


if __name__ == "__main__":
    main()
