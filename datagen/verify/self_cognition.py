"""Self-cognition judged by rule: does the answer say who the model is, and only that?

A self-cognition row carries ``identity`` (JSON ``{"name", "maker"}``, from the sources'
config, ``datagen.nonreasoning``). The response (its summary: the part after the
reasoning) is ``correct`` when

1. it names the model's name or its maker (NFKC, case-folded substring), and
2. no clause of it claims another identity: a clause (text between , ; . ! ? and their
   CJK forms, or a line) that names another assistant or lab (``OTHER_IDENTITIES``) must
   also hold a negation ("No, I am Tiny-R1, not ChatGPT." passes; "I am not Tiny-R1, I am
   ChatGPT." fails on its second clause), and the model's own name or maker must not be
   denied: a negation right before it ("I am not Tiny-R1", "我不是Tiny-R1", "je ne suis pas
   Tiny-R1") or right after it ("Tiny-R1ではありません") fails, while a negation elsewhere in
   the clause ("I am Tiny-R1 and I am not perfect") does not.

Otherwise ``incorrect`` (the detail names the rule); ``unparseable`` without a final
answer; ``error`` when the row has no readable identity. Names that are part of the
configured identity are never "other".
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

from datagen.records import response_of, verdict

#: Other assistants and labs an answer must not claim to be (case-folded).
OTHER_IDENTITIES: tuple[str, ...] = (
    "chatgpt", "gpt-4", "gpt-3", "gpt4", "openai", "claude", "anthropic", "gemini", "bard", "google",
    "llama", "meta ai", "qwen", "通义千问", "alibaba", "阿里巴巴", "deepseek", "深度求索", "mistral",
    "ernie", "文心一言", "baidu", "百度", "copilot", "microsoft", "微软", "谷歌",
)
#: Negation markers by script; a clause with one of these denies what it names.
_NEGATION = re.compile(
    r"\b(?:not|no|never|isn't|aren't|unlike|ne|pas|non|nicht|kein|keine|nein|nunca)\b|不|没|非|ではありません|ではない|じゃない",
    re.IGNORECASE,
)
#: A negation directly before (up to two words between) or after a name denies it.
_DENY_BEFORE = r"(?:\b(?:not|never|isn't|aren't|pas|nicht|kein|keine|no es|no soy)\b|不是|并非|非)\W*(?:\w+\W+){0,2}?"
_DENY_AFTER = r"\W*(?:ではありません|ではない|じゃない|is\W+not\b|isn't|n'est\W+pas|ist\W+nicht|no\W+es\b)"
_CLAUSE = re.compile(r"[,;.!?\n，；。！？、]+")


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def _identity(raw: Any) -> dict[str, str] | None:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return None
    if not isinstance(raw, Mapping):
        return None
    ident = {k: raw.get(k) for k in ("name", "maker")}
    return ident if all(isinstance(v, str) and v.strip() for v in ident.values()) else None  # type: ignore[return-value]


def check_self_cognition(response: str, name: str, maker: str) -> tuple[bool, str]:
    """The rule of the module docstring on one response: (passed, why)."""
    own = [_fold(name), _fold(maker)]
    others = [o for o in OTHER_IDENTITIES if not any(o in x for x in own)]
    text = _fold(response)
    if not any(x in text for x in own):
        return False, f"names neither {name!r} nor {maker!r}"
    denials = [re.compile(_DENY_BEFORE + re.escape(x) + "|" + re.escape(x) + _DENY_AFTER) for x in own]
    for clause in _CLAUSE.split(text):
        negated = _NEGATION.search(clause) is not None
        claimed = next((o for o in others if o in clause), None)
        if claimed and not negated:
            return False, f"claims another identity ({claimed!r}) in {clause.strip()[:80]!r}"
        if any(d.search(clause) for d in denials):
            return False, f"denies its own identity in {clause.strip()[:80]!r}"
    return True, f"names {name!r}/{maker!r} and no other identity"


def verify_self_cognition(rows: Sequence[Mapping[str, Any]], *, think_prefilled: bool = False) -> list[dict[str, Any]]:
    """One verdict per row (``identity``, ``summary`` or ``completion``); see the module docstring."""
    out = []
    for row in rows:
        ident = _identity(row.get("identity"))
        if ident is None:
            out.append(verdict("error", detail="no identity {name, maker} to check against (column 'identity')"))
            continue
        response = response_of(row, think_prefilled=think_prefilled)
        if response is None or not response.strip():
            out.append(verdict("unparseable", detail="response has no final answer"))
            continue
        passed, why = check_self_cognition(response, ident["name"], ident["maker"])
        out.append(verdict("correct" if passed else "incorrect", detail=why))
    return out


__all__ = ["OTHER_IDENTITIES", "check_self_cognition", "verify_self_cognition"]
