"""chrF: a translation's reference metric (Popović 2015, "chrF: character n-gram F-score
for automatic MT evaluation"), computed by sacrebleu — the kept implementation — never by hand.

A translation row is judged twice in the verify stage: by the LLM judge (meaning) and by
chrF against its reference (``answer``). chrF is the cheap, model-free gate: a response
that shares too few character n-grams with the reference (another language, an
explanation instead of a translation, an empty or truncated answer) is ``incorrect``.

Outcome: ``correct`` when chrF >= the threshold of the row's language, else
``incorrect``; ``score`` = chrF / 100 either way (graded, so a reward can use it);
``unparseable`` when the response has no final answer; ``error`` when the row has no
reference. Thresholds: chrF's character 6-grams score a CJK paraphrase far lower than a
European one (in Chinese one character is often a whole word: "我喜欢看书。" against
"我喜欢读书。" scores 28, "Le temps est beau aujourd'hui." against "Il fait beau
aujourd'hui." 71), hence a lower default for zh/ja/ko.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from datagen.records import response_of, verdict

#: chrF (0-100) at or above which a translation passes the reference gate.
DEFAULT_THRESHOLD = 40.0
DEFAULT_THRESHOLD_BY_LANGUAGE: dict[str, float] = {"zh": 20.0, "ja": 20.0, "ko": 20.0}


def chrf(hypothesis: str, reference: str) -> float:
    """Sentence-level chrF (sacrebleu defaults: character 6-grams, beta 2), 0-100."""
    from sacrebleu.metrics import CHRF

    return float(CHRF().sentence_score(hypothesis, [reference]).score)


def verify_chrf(
    rows: Sequence[Mapping[str, Any]],
    *,
    threshold: float = DEFAULT_THRESHOLD,
    threshold_by_language: Mapping[str, float] | None = None,
    think_prefilled: bool = False,
) -> list[dict[str, Any]]:
    """One verdict per row: the response (``summary``, else the split ``completion``) against ``answer``.

    ``threshold_by_language`` overrides ``threshold`` for a row's ``language``
    (default ``DEFAULT_THRESHOLD_BY_LANGUAGE``)."""
    by_language = DEFAULT_THRESHOLD_BY_LANGUAGE if threshold_by_language is None else threshold_by_language
    out = []
    for row in rows:
        reference = row.get("answer")
        if not isinstance(reference, str) or not reference.strip():
            out.append(verdict("error", detail="no reference translation (column 'answer')"))
            continue
        response = response_of(row, think_prefilled=think_prefilled)
        if response is None or not response.strip():
            out.append(verdict("unparseable", detail="response has no final answer"))
            continue
        limit = float(by_language.get(str(row.get("language")), threshold))
        score = chrf(response.strip(), reference.strip())
        passed = score >= limit
        out.append(verdict("correct" if passed else "incorrect", score=round(score / 100.0, 4),
                           detail=f"chrF {score:.1f} {'>=' if passed else '<'} {limit:g}"))
    return out


__all__ = ["DEFAULT_THRESHOLD", "DEFAULT_THRESHOLD_BY_LANGUAGE", "chrf", "verify_chrf"]
