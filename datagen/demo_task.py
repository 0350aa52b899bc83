"""The demo's tasks: two-digit addition with a written scratchpad, and numbers in words.

``make demo`` (``datagen.demo``) needs a task a tiny model can learn on a CPU
in a minute or two but only *through* a chain of thought: the sum of two
two-digit numbers, worked column by column — one line per column (the digits,
their sum, the digit written, the carry), then the result — and the final
answer in ``\\boxed{}`` so the real math verifier grades it. The scratchpad
uses step *words* ("ones", "write", "carry"), and each step word has a Chinese
twin ("个位", "写", "进"): cold-start samples that write some steps in Chinese
teach the policy R1-Zero's language mixing, which the language filter and the
language-consistency reward then have something to act on.

The non-reasoning task is writing a number in words ("write 47 in words" ->
"forty seven"): no chain of thought, graded by the judge verifier (the judge
template ``demo_judge_words.v1``) against the reference.

Everything here is plain data: problem rows in the record shape, reasoning
texts, the judge's training pairs and the word vocabulary of the demo's
tokenizer (``datagen.tinymodel.build_word_tokenizer``).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

FEWSHOT_TEMPLATE = "demo_addition_fewshot.v1"
EXEMPLARS = "demo_addition.v1"
PLAIN_TEMPLATE = "demo_plain.v1"
WORDS_TEMPLATE = "demo_number_words.v1"
JUDGE_TEMPLATE = "demo_judge_words.v1"
WORDS_TASK = "number_words"

#: Step words in English and their Chinese twins.
STEP_WORDS = {
    "en": {"ones": "ones", "tens": "tens", "hundreds": "hundreds", "write": "write", "carry": "carry",
           "so": "so the sum is"},
    "zh": {"ones": "个位", "tens": "十位", "hundreds": "百位", "write": "写", "carry": "进",
           "so": "所以 和 是"},
}
_COLUMNS = ("ones", "tens", "hundreds")

_ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
         "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def addition_prompt(a: int, b: int) -> str:
    return f"what is {a}+{b} ?"


def addition_row(a: int, b: int, *, source: str = "demo-addition") -> dict[str, Any]:
    """A problem row (record shape) for ``a + b``."""
    return {"prompt": addition_prompt(a, b), "answer": str(a + b), "domain": "math", "language": "en",
            "source": source}


def scratchpad(a: int, b: int, *, zh_lines: Iterable[int] = (), check: bool = False) -> str:
    """The worked sum of ``a + b``: one line per column, then the result.

    Every column line has the same shape — digits, carry in, two-digit column
    sum, digit written, carry out (``ones 7+5+0=12 write 2 carry 1``) — so a
    digit the next step needs always sits the same number of tokens back: a
    tiny model learns the procedure in a few hundred steps. Lines whose index
    is in ``zh_lines`` use the Chinese step words (mixing); ``check`` appends a
    verification line (subtracting back), R1's habit of re-checking — longer
    reasoning, which the length budget may cut.
    """
    zh = set(zh_lines)
    lines, carry = [], 0
    for i, (da, db) in enumerate(((a % 10, b % 10), (a // 10 % 10, b // 10 % 10))):
        w = STEP_WORDS["zh" if i in zh else "en"]
        s = da + db + carry
        lines.append(f"{w[_COLUMNS[i]]} {da}+{db}+{carry}={s:02d} {w['write']} {s % 10} {w['carry']} {s // 10}")
        carry = s // 10
    if carry:
        w = STEP_WORDS["zh" if 2 in zh else "en"]
        lines.append(f"{w['hundreds']} {w['write']} {carry}")
    w = STEP_WORDS["zh" if len(lines) in zh else "en"]
    lines.append(f"{w['so']} {a + b}")
    if check:
        lines.append(f"check {a + b}-{b}={a} ok")
    return "\n".join(lines)


def boxed(answer: str) -> str:
    return f"\\boxed{{{answer}}}"


def number_words(n: int) -> str:
    """English words of ``0 <= n < 1000`` ("forty seven", "one hundred five")."""
    if not 0 <= n < 1000:
        raise ValueError(f"number_words takes 0..999, got {n}")
    if n >= 100:
        rest = n % 100
        return f"{_ONES[n // 100]} hundred" + (f" {number_words(rest)}" if rest else "")
    if n < 20:
        return _ONES[n]
    return _TENS[n // 10] + ("" if n % 10 == 0 else f" {_ONES[n % 10]}")


def words_prompt(n: int) -> str:
    return f"write {n} in words ."


def words_row(n: int) -> dict[str, Any]:
    """A non-reasoning problem row: the number in words, judged against the reference."""
    return {"prompt": words_prompt(n), "answer": number_words(n), "domain": "general", "language": "en",
            "source": "demo-number-words", "task": WORDS_TASK, "cot": "none", "prompt_template": WORDS_TEMPLATE}


def judge_output(correct: bool) -> str:
    return "VERDICT: CORRECT" if correct else "VERDICT: INCORRECT"


def split_pairs(seed: int, n_train: int, n_heldout: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Disjoint train and held-out ``(a, b)`` pairs of two-digit numbers, drawn seeded."""
    pairs = [(a, b) for a in range(10, 100) for b in range(10, 100)]
    random.Random(seed).shuffle(pairs)
    if n_train + n_heldout > len(pairs):
        raise ValueError(f"asked for {n_train + n_heldout} problems; only {len(pairs)} two-digit pairs exist")
    return pairs[n_heldout:n_heldout + n_train], pairs[:n_heldout]


def vocabulary_texts() -> list[str]:
    """Texts covering every word the demo's models read or write (the tokenizer's vocabulary)."""
    from datagen.generate.prompts import PROMPTS_DIR

    texts = ["0 1 2 3 4 5 6 7 8 9 + - = ? . , : { } \\boxed{ \n VERDICT: CORRECT INCORRECT check ok what is write in words",
             "judge question reference response hundred"]
    for lang in STEP_WORDS.values():
        texts.extend(lang.values())
    texts.extend(number_words(n) for n in range(100))
    for name in (FEWSHOT_TEMPLATE, PLAIN_TEMPLATE, WORDS_TEMPLATE, JUDGE_TEMPLATE):
        texts.append((PROMPTS_DIR / f"{name}.txt").read_text(encoding="utf-8"))
    return texts


def assistant_turn(reasoning: str | None, summary: str) -> str:
    """The assistant text in the mix's ``think_tags`` format (``datagen.mix.assistant_text``)."""
    from datagen.mix import MixConfig, assistant_text

    return assistant_text(reasoning, summary, MixConfig())


def cold_start_samples(pairs: list[tuple[int, int]], *, seed: int, mixed_share: float, check_share: float,
                       words: Iterable[int] = (), judge_pairs: int = 0) -> list[dict[str, Any]]:
    """Cold-start SFT rows (chat ``messages`` + ``kind``) for the teacher.

    Addition: the user turn is the problem rendered with the few-shot template
    and one exemplar (what generation and GRPO will send), the assistant turn
    the scratchpad in ``<think>`` then the boxed answer; ``mixed_share`` of
    them write one step in Chinese, ``check_share`` add a check line.
    Numbers in words (``words``): plain question, the words as the answer.
    Judge rows (``judge_pairs``): the judge template on a reference and a
    response that matches it or not, answered with the verdict line.
    """
    from datagen.generate.prompts import load_exemplars, render_prompt
    from datagen.records import normalize_row

    rng = random.Random(seed)
    exemplars = load_exemplars(EXEMPLARS)
    rows: list[dict[str, Any]] = []
    for a, b in pairs:
        problem = normalize_row(addition_row(a, b))
        user = render_prompt(FEWSHOT_TEMPLATE, problem, exemplars=exemplars, k=1, seed=seed)[-1]["content"]
        n_lines = len(scratchpad(a, b).splitlines())
        zh = [rng.randrange(n_lines)] if rng.random() < mixed_share else []
        reasoning = scratchpad(a, b, zh_lines=zh, check=rng.random() < check_share)
        rows.append({**_ids(problem), "kind": "mixed" if zh else "reasoning", "messages": [
            {"role": "user", "content": user},
            {"role": "assistant", "content": assistant_turn(reasoning, boxed(str(a + b)))}]})
    for n in words:
        rows.append({**_ids(normalize_row(words_row(n))), "kind": "words", "messages": [{"role": "user", "content": words_prompt(n)},
                                                   {"role": "assistant", "content": number_words(n)}]})
    for _ in range(judge_pairs):
        n = rng.randrange(100)
        correct = rng.random() < 0.5
        other = n if correct else rng.choice([m for m in range(100) if m != n and (
            abs(m - n) < 10 or rng.random() < 0.3)])
        values = {"prompt": words_prompt(n), "answer": number_words(n), "response": number_words(other)}
        user = render_prompt(JUDGE_TEMPLATE, values)[-1]["content"]
        judge_row = normalize_row({"prompt": user, "domain": "general", "language": "en", "source": "demo-judge"})
        rows.append({**_ids(judge_row), "kind": "judge", "messages": [{"role": "user", "content": user},
                                                   {"role": "assistant", "content": judge_output(correct)}]})
    rng.shuffle(rows)
    return rows


def _ids(problem: dict[str, Any]) -> dict[str, Any]:
    """The record columns a cold-start row keeps of its problem (one sample per problem: sample_id = problem_id)."""
    return {"problem_id": problem["problem_id"], "sample_id": problem["problem_id"], "source": problem["source"],
            "domain": problem["domain"], "language": problem["language"], "prompt": problem["prompt"]}


def column_line(rng: random.Random) -> str:
    """One random column step (``tens 7+5+1=13 write 3 carry 1``), in English or Chinese."""
    w = STEP_WORDS["zh" if rng.random() < 0.3 else "en"]
    da, db, carry = rng.randrange(10), rng.randrange(10), rng.randrange(2)
    s = da + db + carry
    return f"{w[rng.choice(_COLUMNS[:2])]} {da}+{db}+{carry}={s:02d} {w['write']} {s % 10} {w['carry']} {s // 10}"


def _worked_sum(rng: random.Random, held: set[tuple[int, int]], mixed_share: float) -> str:
    while True:
        a, b = rng.randrange(10, 100), rng.randrange(10, 100)
        if (a, b) not in held:
            break
    n_lines = len(scratchpad(a, b).splitlines())
    zh = [rng.randrange(n_lines)] if rng.random() < mixed_share else []
    return f"{addition_prompt(a, b)}\n{scratchpad(a, b, zh_lines=zh)}"


def pretraining_documents(n: int, *, seed: int, exclude: Iterable[tuple[int, int]] = (),
                          mixed_share: float = 0.3) -> list[dict[str, Any]]:
    """The base model's pretraining corpus (the stand-in for a pretrained LLM's knowledge of arithmetic).

    ``n`` documents: most are pages of one to three worked sums written as
    notes (the question, then the scratchpad, English steps with some in
    Chinese — a corpus that mixes languages, as the web does; a page's earlier
    sums are what a few-shot prompt's exemplars are later: other numbers to
    not copy), the rest four loose column steps (the digit-sum table). Pairs in ``exclude`` (the held-out problems) never
    appear. Each document is a chat row with an empty user turn, so the
    ``sft`` flow trains on the whole document (its loss is on assistant turns).
    """
    rng = random.Random(seed)
    held = set(exclude)
    docs = []
    for i in range(n):
        if rng.random() < 0.8:
            text, kind = "\n\n".join(_worked_sum(rng, held, mixed_share) for _ in range(rng.choice((1, 2, 3)))), "notes"
        else:
            text, kind = "\n".join(column_line(rng) for _ in range(4)), "steps"
        docs.append({"problem_id": f"pretrain-{i:06d}", "sample_id": f"pretrain-{i:06d}", "source": "demo-pretrain",
                     "domain": "math", "language": "en", "prompt": "", "kind": kind, "messages": [{"role": "user", "content": ""},
                                                {"role": "assistant", "content": text}]})
    return docs
