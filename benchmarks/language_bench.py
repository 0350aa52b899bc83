"""Language-mixing filter on a hand-labeled set: precision and recall on "mixed".

``benchmarks/data/language_labeled.jsonl`` holds reasoning texts written for
this benchmark (7 languages; clean ones dense with LaTeX, code and a few
technical terms; mixed ones with same-script mixing, cross-script mixing and
reasoning wholly in the wrong language), labeled before the thresholds were
tuned. A text is predicted "mixed" when ``LanguageMixFilter`` drops it for
any reason (``mixed_language`` or ``wrong_language``).

Peers, measured in the same run on the same texts:

- ``fasttext-whole``: fastText on the whole cleaned text, "mixed" when its top
  language is not the target or its probability is below 0.9 (the usual
  document-level check).
- ``langdetect-whole``: the same with langdetect's top language.

Prints a table, then one JSON line with the figures.

    python benchmarks/language_bench.py
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

from filters.language import LanguageMixFilter, _fasttext, _langdetect, clean

DATA = Path(__file__).parent / "data" / "language_labeled.jsonl"


def fasttext_whole(text: str, language: str) -> bool:
    labels = _fasttext().f.predict(" ".join(clean(text).split()) + "\n", 1, 0.0, "replace")
    prob, label = labels[0]
    return label[9:] != language or prob < 0.9


def langdetect_whole(text: str, language: str) -> bool:
    from langdetect.lang_detect_exception import LangDetectException

    try:
        langs = _langdetect()(clean(text))
    except LangDetectException:
        return True
    return langs[0].lang.split("-")[0] != language or langs[0].prob < 0.9


def score(predicted: list[bool], gold: list[bool]) -> dict:
    tp = sum(p and g for p, g in zip(predicted, gold))
    fp = sum(p and not g for p, g in zip(predicted, gold))
    fn = sum(g and not p for p, g in zip(predicted, gold))
    return {
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        "tp": tp, "fp": fp, "fn": fn,
    }


def main() -> None:
    items = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    gold = [it["label"] == "mixed" for it in items]
    flt = LanguageMixFilter()
    results, errors = {}, []
    for name, predict in [
        ("LanguageMixFilter", lambda t, lang: flt.judge(t, lang) is not None),
        ("fasttext-whole", fasttext_whole),
        ("langdetect-whole", langdetect_whole),
    ]:
        start = time.perf_counter()
        predicted = [predict(it["text"], it["language"]) for it in items]
        results[name] = {**score(predicted, gold), "seconds": time.perf_counter() - start}
        if name == "LanguageMixFilter":
            errors = [(it, p) for it, p, g in zip(items, predicted, gold) if p != g]
            by_kind = Counter(it["kind"] for it, p, g in zip(items, predicted, gold) if p == g)
    total_kind = Counter(it["kind"] for it in items)

    langs = Counter(it["language"] for it in items)
    print(f"labeled set: {len(items)} texts, {sum(gold)} mixed, languages: "
          + ", ".join(f"{k}={v}" for k, v in sorted(langs.items())))
    print(f"{'method':<20} {'precision':>9} {'recall':>7} {'tp':>4} {'fp':>4} {'fn':>4} {'seconds':>8}")
    for name, r in results.items():
        print(f"{name:<20} {r['precision']:>9.3f} {r['recall']:>7.3f} {r['tp']:>4} {r['fp']:>4} {r['fn']:>4} "
              f"{r['seconds']:>8.3f}")
    print("LanguageMixFilter correct by kind: "
          + ", ".join(f"{k} {by_kind[k]}/{v}" for k, v in sorted(total_kind.items())))
    for it, predicted in errors:
        print(f"  miss {it['id']} ({it['kind']}, label {it['label']}, predicted "
              f"{'mixed' if predicted else 'clean'}): {flt._judge(it['text'], it['language'])[1] or 'kept'}")
    ours = results["LanguageMixFilter"]
    print(json.dumps({
        "texts": len(items), "languages": len(langs), "mixed": sum(gold),
        "precision_mixed": round(ours["precision"], 4), "recall_mixed": round(ours["recall"], 4),
        "peers": {k: {"precision": round(v["precision"], 4), "recall": round(v["recall"], 4)}
                  for k, v in results.items() if k != "LanguageMixFilter"},
    }))


if __name__ == "__main__":
    main()
