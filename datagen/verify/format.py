"""Format verifier: ``<think>…</think>`` then a visible answer (R1), optionally
the R1-Zero form ``<think>…</think><answer>…</answer>``, or R1's readable
cold-start form ``|special_token|<reasoning>|special_token|<summary>``.

Pre-filled ``<think>``: many chat templates (DeepSeek-R1's, Qwen3's) end the
prompt with ``<think>\\n``, so the model's completion starts inside the think
block and never contains the opening tag. Requiring it there zeroes every
format reward, so ``think_prefilled`` is explicit:

- ``None`` (default): accept both — the opening tag present, or absent with
  the closing tag present (the same reading as ``records.split_completion``);
- ``True``: the template wrote the opening tag; the completion must not repeat it;
- ``False``: the completion must open the think block itself.

Under RL the format check is a reward, so every rule is written against the
cheapest output that would satisfy it:

- *Visible answer.* An answer made only of characters that render as nothing
  (zero-width and other format characters ``Cf`` such as U+200B, U+2062,
  U+FEFF; separators ``Z*``; controls; lone combining marks; Hangul fillers;
  the blank Braille cell), of empty wrappers (``\\boxed{}``, ``$ $``,
  ``\\text{}``, ``\\phantom{5}``, LaTeX spacing, HTML tags and comments,
  ``&#8203;``, chat special tokens) or of punctuation alone is
  ``invisible_answer``: it needs at least one letter, digit or symbol. An
  answer with text beside an empty box (``The answer is \\boxed{}.``) is
  ``empty_box``: the box is where the final answer goes.
- *Reasoning that exists.* ``min_reasoning_chars`` is a floor on the
  reasoning's length counted by ``reasoning_length``: visible characters,
  with repeats not counted (distinct character 4-grams), so neither
  invisible characters nor ``"hmm " * 1000`` buy length. The verifier's
  default (1) only refuses empty or invisible reasoning; the GRPO format
  reward defaults to ``R1_MIN_REASONING_CHARS`` so that it cannot be earned
  by dropping the chain of thought.
- *One reasoning block, before the answer.* Nested, repeated or reversed
  think tags, text before the opening tag, an unclosed block and answer tags
  inside the reasoning are all failures.

Every failure is ``incorrect`` (format is always judgeable) with a stable
reason slug first in the detail, e.g. ``"unclosed_think: …"``; a completion
that is not text at all is ``unparseable``.
"""

from __future__ import annotations

import functools
import html
import re
import unicodedata
from typing import Any

from datagen.records import verdict

#: Reason slugs (stable: they are metric keys).
REASONS = (
    "empty_completion",
    "missing_think",
    "unexpected_think_open",
    "text_before_think",
    "unclosed_think",
    "multiple_think_blocks",
    "answer_in_think",
    "empty_reasoning",
    "short_reasoning",
    "empty_answer",
    "invisible_answer",
    "empty_box",
    "missing_answer_tags",
    "malformed_answer_tags",
    "text_outside_answer",
)

#: Default floor of the GRPO format reward on ``reasoning_length``: about one
#: sentence of working ("Adding 2 and 3 gives 5, so the answer is 5." is 44).
#: R1-style reasoning runs to thousands of characters, so this never touches a
#: genuine chain of thought; it only removes the reward for dropping it.
R1_MIN_REASONING_CHARS = 40

#: Default floor of the GRPO format reward on ``reasoning_words`` (distinct
#: content words): "Adding 2 and 3 gives 5, so the answer is 5." has 7. It
#: measures content, not characters: the alphabet, ``0 1 2 … 19`` or
#: ``"hmm " * 1000`` have at most 2; a CJK sentence counts per character,
#: so 37 characters of dense Japanese reasoning pass as they should.
R1_MIN_REASONING_WORDS = 5

#: A "word" longer than this is a letter sequence (the alphabet), not a word.
_MAX_WORD_LETTERS = 20
# One content word: a CJK ideograph, kana or Hangul syllable on its own (those
# scripts write a word in one to a few characters, without spaces), or a run
# of 2 to _MAX_WORD_LETTERS letters of any other script.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7a3\uf900-\ufaff\U00020000-\U0002fa1f"
_CONTENT_WORD = re.compile(f"[{_CJK}]|(?:(?![{_CJK}])[^\\W\\d_])+")

#: n of the character n-grams ``reasoning_length`` counts once each.
_NGRAM = 4

# Unicode categories that render as nothing on their own: controls, format
# characters (zero-width space/joiners, invisible times/separator U+2062/3,
# BOM, bidi marks, tag characters), surrogates, private-use and unassigned
# code points, separators, and combining marks (visible only on a base).
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp", "Mn", "Me"})
# Letters and symbols by category that are blank glyphs in practice, and the
# replacement characters that stand for text that was lost (U+FFFC, U+FFFD).
_BLANK_GLYPHS = "\u115f\u1160\u3164\uffa0\u2800\u17b4\u17b5\ufffc\ufffd"

_SPECIAL_TOKEN = re.compile(r"<\|[^<>|\n]{1,64}\|>|<｜[^<>｜\n]{1,64}｜>")
_HTML_COMMENT = re.compile(r"<!--.*?(?:-->|$)", re.DOTALL)
_HTML_TAG = re.compile(r"</?[A-Za-z][^<>\n]{0,200}>")
_PHANTOM = re.compile(r"\\[hv]?phantom\s*(?=\{)")
_PHANTOM_TOKEN = re.compile(r"\\[hv]?phantom\s*(?:\\[A-Za-z]+|[^\s{\\])")  # \phantom 5, \phantom\pi
_LATEX_SPACING = re.compile(
    r"\\(?:[hv]space\*?|hskip|vskip|kern|mkern|mskip)\s*(?:\{[^{}]{0,40}\}|-?[\d.]+\s*[a-z]{2})"
    r"|\\(?:quad|qquad|enspace|thinspace|medspace|thickspace|negthinspace|negmedspace|negthickspace"
    r"|space|nobreakspace|nobreak|allowbreak|relax|null|strut|mathstrut|displaystyle|textstyle"
    r"|scriptstyle|left|right|big|Big|bigg|Bigg|hfill|vfill|hfil|vfil|hss|vss|newline|linebreak|par|break"
    r"|smallskip|medskip|bigskip|newpage|clearpage|noindent|indent|centering|raggedright|raggedleft)(?![A-Za-z])"
    r"|\\[ ,;:!>\\]|~"
)
# Wrappers whose removal keeps their argument: ``\boxed{5}`` -> ``{5}``.
_LATEX_WRAPPER = re.compile(
    r"\\(?:boxed|fbox|framebox|text|textrm|textbf|textit|mathrm|mathbf|mathit|mathsf|mathtt|operatorname"
    r"|mbox|hbox|ensuremath)(?![A-Za-z])"
)
# Ink in a colour that does not show (white on the page, transparent) or an
# HTML element styled not to render: the text is there but hidden.
_HIDDEN_COLOUR = r"(?:white|transparent|\#?f{3}(?:f{3})?\b|\#?F{3}(?:F{3})?\b|rgba?\([^)]*,\s*0(?:\.0*)?\s*\))"
_TEXTCOLOR = re.compile(r"\\textcolor\s*(?:\[[^\]]*\])?\s*\{\s*" + _HIDDEN_COLOUR + r"\s*\}\s*(?=\{)")
_COLOR_SWITCH = re.compile(r"\\color\s*(?:\[[^\]]*\])?\s*\{\s*" + _HIDDEN_COLOUR + r"\s*\}[^{}]*(?:\{[^{}]*\}[^{}]*)*")
_HIDDEN_HTML = re.compile(
    r"<(?P<tag>[A-Za-z][A-Za-z0-9]*)\b[^<>]*(?:style\s*=\s*[\"'][^\"']*(?:display\s*:\s*none|visibility\s*:\s*hidden"
    r"|opacity\s*:\s*0(?:\.0*)?(?![.\d])|font-size\s*:\s*0(?![.\d])|color\s*:\s*" + _HIDDEN_COLOUR + r")[^\"']*[\"']"
    r"|\bhidden\b)[^<>]*>.*?(?:</(?P=tag)\s*>|$)", re.DOTALL | re.IGNORECASE)
_MATH_DELIMITERS = re.compile(r"\\[()\[\]]|\$|[{}]")
# Escaped braces are ink (``\{\}`` is the empty set); kept through the
# delimiter removal as a symbol.
_ESCAPED_BRACE = re.compile(r"\\[{}]")
# Code fence lines (with their language tag): an empty fenced block shows nothing.
_CODE_FENCE = re.compile(r"^[ \t]*(?:```|~~~)[^\n`]*$", re.MULTILINE)
# Box openings and braces, for one left-to-right pass that finds each box's argument.
_BOX_OR_BRACE = re.compile(r"\\[{}]|\\(?:boxed|fbox|framebox)\s*\{|[{}]")
#: A box argument longer than this is not checked for visibility (it cannot be
#: empty in any way that matters, and the check stays linear in the answer).
_MAX_BOX_CHECK = 400


_PRINTABLE_ASCII = re.compile(r"[\x21-\x7e]")


# What a character's Unicode name says about its glyph: fillers, blank patterns
# and null noteheads are drawn as nothing whatever their category (U+1D159 is
# "So"); "SYMBOL FOR NULL" and "BLANK SYMBOL" draw a visible picture.
_BLANK_NAME = re.compile(r"\bFILLER\b|\bPATTERN BLANK\b|\bNULL NOTEHEAD\b|\bINVISIBLE\b|\bZERO WIDTH\b")


@functools.lru_cache(maxsize=65536)
def is_invisible(ch: str) -> bool:
    """True for a character that renders as nothing on its own (whitespace
    included): by Unicode category, or by a name that declares a blank glyph."""
    if unicodedata.category(ch) in _INVISIBLE_CATEGORIES or ch in _BLANK_GLYPHS:
        return True
    return ord(ch) > 0x7F and _BLANK_NAME.search(unicodedata.name(ch, "")) is not None


def _visible_ranges(blocks: tuple[tuple[int, int], ...]) -> str:
    """Regex class body of the code points in ``blocks`` that are never invisible
    (computed once: the blocks hold no invisible character except where cut out)."""
    parts, start = [], None
    for lo, hi in blocks:
        for cp in range(lo, hi + 2):
            ok = cp <= hi and not is_invisible.__wrapped__(chr(cp))
            if ok and start is None:
                start = cp
            elif not ok and start is not None:
                parts.append(f"{re.escape(chr(start))}-{re.escape(chr(cp - 1))}")
                start = None
    return "".join(parts)


# Runs that may hold an invisible character: anything but printable ASCII,
# ASCII whitespace (which ``str.split`` handles in C) and the visible part of
# the common scripts (Latin, Greek, Cyrillic, CJK, kana, Hangul, math
# symbols, full-width forms), so ordinary prose in any of them is never
# looked at one character at a time.
_MAYBE_INVISIBLE = re.compile("[^\t\n\x0b\x0c\r\x20-\x7e" + _visible_ranges((
    (0x00A0, 0x024F), (0x0370, 0x04FF), (0x2010, 0x2027), (0x2030, 0x205E), (0x2070, 0x22FF),
    (0x3000, 0x30FF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0xFF00, 0xFFEF),
)) + "]+")


def _fix_run(m: re.Match[str]) -> str:
    # Whitespace stays a separator (" "); other invisible characters vanish,
    # so a zero-width space inside a word does not split it.
    return "".join((" " if ch.isspace() else "") if is_invisible(ch) else ch for ch in m.group())


def _replace_invisible(text: str, spaces: str = "") -> str:
    """Drop invisible characters; each whitespace run becomes ``spaces`` (ends stripped)."""
    return spaces.join(_MAYBE_INVISIBLE.sub(_fix_run, text).split())


def strip_invisible(text: str) -> str:
    """``text`` without characters that render as nothing (whitespace included)."""
    return _replace_invisible(text)


def _has_visible(text: str) -> bool:
    # Any printable ASCII character settles it without scanning the rest.
    return _PRINTABLE_ASCII.search(text) is not None or bool(strip_invisible(text))


def has_visible_answer(answer: str) -> bool:
    """True when ``answer`` shows at least one letter, digit or symbol once
    invisible characters, empty LaTeX/HTML wrappers, phantoms, spacing and
    chat special tokens are taken away (see the module docstring)."""
    text = html.unescape(answer)  # &#8203; / &nbsp; are invisible characters spelled in ASCII
    text = _CODE_FENCE.sub("", text)
    text = _ESCAPED_BRACE.sub("\u2205", text)
    text = _SPECIAL_TOKEN.sub("", text)
    text = _HTML_COMMENT.sub("", text)
    text = _HIDDEN_HTML.sub("", text)
    text = _HTML_TAG.sub("", text)
    text = _COLOR_SWITCH.sub("", _TEXTCOLOR.sub(lambda _: "\\phantom", text))  # hidden ink: like a phantom
    text = _PHANTOM_TOKEN.sub("", _drop_phantoms(text))
    text = _LATEX_SPACING.sub("", text)
    text = _LATEX_WRAPPER.sub("", text)
    text = _MATH_DELIMITERS.sub("", text)
    return any(unicodedata.category(ch)[0] in "LNS" for ch in strip_invisible(text))


def _drop_phantoms(text: str) -> str:
    """Remove ``\\phantom{…}`` (and h/v variants) with their balanced argument:
    it typesets as empty space. One left-to-right pass: linear in the text."""
    out, pos = [], 0
    for m in _PHANTOM.finditer(text):
        if m.start() < pos:
            continue  # inside a phantom already removed
        out.append(text[pos:m.start()])
        depth, i = 0, m.end()
        while i < len(text):
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    break
            i += 1
        pos = i + 1
    out.append(text[pos:])
    return "".join(out)


def reasoning_length(reasoning: str, *, cap: int | None = None) -> int:
    """Length of the reasoning that counts: visible characters (whitespace
    runs count as one space; invisible characters as nothing) with repeats
    not counted — the number of distinct character 4-grams plus 3, which is
    the plain length for text that never repeats a 4-gram. ``"hmm " * 1000``
    counts 7. With ``cap``, stops counting once ``cap`` is reached (the
    check needs only "at least"), so a long chain of thought costs O(cap).
    """
    if cap is not None and len(reasoning) > 64 * cap + 4096:
        # A prefix that already reaches the cap settles it: a prefix's
        # n-grams are the whole text's.
        head = reasoning_length(reasoning[:64 * cap + 4096], cap=cap)
        if head >= cap:
            return head
    text = _replace_invisible(reasoning, " ")
    if len(text) <= _NGRAM:
        return len(text)
    seen: set[str] = set()
    for i in range(len(text) - _NGRAM + 1):
        seen.add(text[i:i + _NGRAM])
        if cap is not None and len(seen) + _NGRAM - 1 >= cap:
            break
    return len(seen) + _NGRAM - 1


def reasoning_words(reasoning: str, *, cap: int | None = None) -> int:
    """How much the reasoning says: the number of distinct content words.

    A word is a run of 2 to 20 letters (any script; digits, symbols and
    LaTeX commands' names aside, see below) or one CJK character (ideograph,
    kana, Hangul syllable), counted once however often it repeats. Single
    letters, digits, operators and letter runs longer than 20 (the alphabet
    written out) are not words, so ``0 1 2 … 19``, ``abc…xyz0123…`` and filler
    repeats say almost nothing, while a sentence of working in any language
    counts its words. Invisible characters are dropped first (a zero-width
    space inside a word does not split it). With ``cap``, stops once ``cap``
    words are found (linear in the prefix read).
    """
    text = _replace_invisible(reasoning, " ")
    text = re.sub(r"\\[A-Za-z]+", " ", text)  # \frac, \cdot: markup, not words
    seen: set[str] = set()
    for m in _CONTENT_WORD.finditer(text):
        word = m.group()
        if len(word) == 1 and not re.match(f"[{_CJK}]", word):
            continue
        if len(word) > _MAX_WORD_LETTERS:
            continue
        seen.add(word.lower())
        if cap is not None and len(seen) >= cap:
            break
    return len(seen)


def verify_format(
    completion: str | None,
    *,
    think_tags: tuple[str, str] = ("<think>", "</think>"),
    answer_tags: tuple[str, str] = ("<answer>", "</answer>"),
    require_answer_tags: bool = False,
    think_prefilled: bool | None = None,
    min_reasoning_chars: int = 1,
    special_token: str | None = None,
    min_reasoning_words: int = 0,
) -> dict[str, Any]:
    """Verdict on the completion's shape; ``correct`` has detail ``"ok"``.

    ``min_reasoning_chars``: floor on ``reasoning_length`` of the reasoning
    (0 turns the check off). ``min_reasoning_words``: floor on
    ``reasoning_words``, the content measure (0, the default, turns it off;
    the GRPO format reward uses ``R1_MIN_REASONING_WORDS``).
    ``special_token``: judge the cold-start form ``T reasoning T summary``
    instead of think tags (``think_*`` and ``answer_tags`` then do not apply).
    A completion that is not a string is ``unparseable``.
    """
    if completion is not None and not isinstance(completion, str):
        return verdict("unparseable", detail=f"not_text: the completion is {type(completion).__name__}, not text")
    if min_reasoning_chars < 0:
        raise ValueError(f"min_reasoning_chars must be >= 0, got {min_reasoning_chars}")
    if min_reasoning_words < 0:
        raise ValueError(f"min_reasoning_words must be >= 0, got {min_reasoning_words}")
    if special_token is not None:
        reason = cold_start_problem(completion, special_token=special_token, min_reasoning_chars=min_reasoning_chars,
                                    min_reasoning_words=min_reasoning_words)
    else:
        reason = format_problem(
            completion,
            think_tags=think_tags,
            answer_tags=answer_tags,
            require_answer_tags=require_answer_tags,
            think_prefilled=think_prefilled,
            min_reasoning_chars=min_reasoning_chars,
            min_reasoning_words=min_reasoning_words,
        )
    if reason is None:
        return verdict("correct", detail="ok")
    return verdict("incorrect", detail=reason)


def format_problem(
    completion: str | None,
    *,
    think_tags: tuple[str, str] = ("<think>", "</think>"),
    answer_tags: tuple[str, str] = ("<answer>", "</answer>"),
    require_answer_tags: bool = False,
    think_prefilled: bool | None = None,
    min_reasoning_chars: int = 1,
    min_reasoning_words: int = 0,
) -> str | None:
    """None when the think-tag form is well-formed, else ``"<slug>: <explanation>"``."""
    open_tag, close_tag = think_tags
    text = completion or ""
    if not _has_visible(text):
        return "empty_completion: the completion is empty or invisible"
    # A tag written inside code (a fenced block or an inline span) is code
    # talking about tags -- R1 writes parsers for them -- not a think block:
    # tags are found in a copy with closed code spans blanked, same offsets.
    original = text
    text = _mask_code(text) if "`" in text else text
    n_open, n_close = text.count(open_tag), text.count(close_tag)
    if n_close == 0:
        if n_open == 0 and think_prefilled is False:
            return f"missing_think: no {open_tag}…{close_tag} block"
        if n_open == 0 and think_prefilled is None:
            return f"missing_think: no {close_tag} (and no {open_tag})"
        return f"unclosed_think: {close_tag} never comes; the generation stopped inside its reasoning"
    if n_close > 1 or n_open > 1:
        return f"multiple_think_blocks: {n_open} {open_tag} and {n_close} {close_tag}"
    close_at = text.index(close_tag)
    reasoning_at = 0
    if n_open == 1:
        open_at = text.index(open_tag)
        if think_prefilled is True:
            return f"unexpected_think_open: the template pre-fills {open_tag}; the completion repeats it"
        if open_at > close_at:
            return f"multiple_think_blocks: {open_tag} after {close_tag}"
        if text[:open_at].strip():
            return f"text_before_think: text before {open_tag}"
        reasoning_at = open_at + len(open_tag)
    elif think_prefilled is False:
        return f"missing_think: {close_tag} without {open_tag} (pass think_prefilled=True if the template pre-fills it)"
    a_open, a_close = answer_tags
    reasoning = original[reasoning_at:close_at]
    # A complete answer block inside the reasoning is an answer given there; a
    # lone tag name is only the reasoning talking about the format.
    inner_open = reasoning.find(a_open)
    if inner_open >= 0 and reasoning.find(a_close, inner_open) >= 0:
        return f"answer_in_think: {a_open}…{a_close} inside the reasoning; the answer belongs after {close_tag}"
    problem = _reasoning_problem(reasoning, min_reasoning_chars, min_reasoning_words)
    if problem:
        return problem
    answer = original[close_at + len(close_tag):]
    n_a_open, n_a_close = answer.count(a_open), answer.count(a_close)
    if n_a_open == 0 and n_a_close == 0:
        if require_answer_tags:
            return f"missing_answer_tags: no {a_open}…{a_close} after {close_tag}"
        return _answer_problem(answer, f"after {close_tag}")
    if n_a_open != 1 or n_a_close != 1 or answer.index(a_open) > answer.index(a_close):
        return f"malformed_answer_tags: {n_a_open} {a_open} and {n_a_close} {a_close}"
    before, rest = answer.split(a_open, 1)
    inner, after = rest.split(a_close, 1)
    if require_answer_tags and (before.strip() or after.strip()):
        return f"text_outside_answer: text around {a_open}…{a_close}"
    return _answer_problem(inner, f"in {a_open}{a_close}")


def cold_start_problem(completion: str | None, *, special_token: str = "|special_token|",
                       min_reasoning_chars: int = 1, min_reasoning_words: int = 0) -> str | None:
    """None when ``completion`` is ``T reasoning T summary`` (T = ``special_token``,
    DeepSeek-R1's readable cold-start format), else ``"<slug>: <explanation>"``.
    The slugs are the think-tag ones: the reasoning block is the same thing."""
    if not special_token:
        raise ValueError("special_token must be a non-empty string")
    text = completion or ""
    if not _has_visible(text):
        return "empty_completion: the completion is empty or invisible"
    n = text.count(special_token)
    if n == 0:
        return f"missing_think: no {special_token}"
    if n == 1:
        return f"unclosed_think: one {special_token}; the reasoning never ends"
    if n > 2:
        return f"multiple_think_blocks: {n} {special_token} (expected 2)"
    before, reasoning, summary = text.split(special_token)
    if before.strip():
        return f"text_before_think: text before the first {special_token}"
    return _reasoning_problem(reasoning, min_reasoning_chars, min_reasoning_words) or _answer_problem(
        summary, f"after the second {special_token}")


_CODE_SPAN = re.compile(r"```.*?```|`[^`\n]+`", re.DOTALL)


def _mask_code(text: str) -> str:
    """``text`` with every closed code span (fenced or inline) replaced by
    spaces of the same length: offsets stay valid, tags inside code vanish."""
    return _CODE_SPAN.sub(lambda m: " " * len(m.group()), text)


def _reasoning_problem(reasoning: str, min_chars: int, min_words: int = 0) -> str | None:
    if min_chars > 0:
        length = reasoning_length(reasoning, cap=min_chars)
        if length == 0:
            return "empty_reasoning: the reasoning is empty or invisible"
        if length < min_chars:
            return f"short_reasoning: {length} characters of reasoning (repeats not counted), at least {min_chars} needed"
    if min_words > 0:
        words = reasoning_words(reasoning, cap=min_words)
        if words == 0 and not strip_invisible(reasoning):
            return "empty_reasoning: the reasoning is empty or invisible"
        if words < min_words:
            return f"short_reasoning: {words} distinct words of reasoning, at least {min_words} needed"
    return None


def _answer_problem(answer: str, where: str) -> str | None:
    if not answer.strip():
        return f"empty_answer: nothing {where}"
    if not has_visible_answer(answer):
        return (f"invisible_answer: nothing visible {where} (only invisible characters, spacing, "
                "empty wrappers or punctuation)")
    if any(not has_visible_answer(box) for box in box_arguments(answer)):
        return f"empty_box: a \\boxed{{}} {where} holds nothing visible"
    return None


def box_arguments(text: str) -> list[str]:
    """Arguments of the ``\\boxed{…}`` / ``\\fbox{…}`` in ``text`` (an unclosed box
    runs to the end), found in one pass; arguments longer than
    ``_MAX_BOX_CHECK`` characters are left out."""
    stack: list[int | None] = []  # content start of an open box, None for a plain brace
    spans: list[tuple[int, int]] = []
    for m in _BOX_OR_BRACE.finditer(text):
        token = m.group()
        if token in ("\\{", "\\}"):
            continue  # an escaped brace is a symbol, not grouping
        if token == "{":
            stack.append(None)
        elif token == "}":
            if stack and (start := stack.pop()) is not None:
                spans.append((start, m.start()))
        else:
            stack.append(m.end())
    spans += [(start, len(text)) for start in stack if start is not None]
    return [text[a:b] for a, b in spans if b - a <= _MAX_BOX_CHECK]
