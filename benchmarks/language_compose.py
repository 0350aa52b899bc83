"""Compose the labeled long reasoning texts of ``benchmarks/language_bench.py``.

Nothing can be downloaded here, so the benchmark's texts are composed from
sentence material written by hand for it (``benchmarks/data/language_material_*.json``:
per language, reasoning sentences with math slots, general sentences, answer
lines, technical terms and loanwords, short interjections) by a seeded
generator. Two sets, each with its own material *and* its own composition:

- ``prefreeze`` (pattern ``a``): written while the filter was built and tuned.
- ``postfreeze`` (pattern ``b``): material and composition written only after
  the filter code was frozen (commit "language filter frozen"), never used to
  tune it.

Each text is 2-20 KB (UTF-8), with inline and display LaTeX, and the kinds
of the issue: clean (plain, LaTeX-dense, technical terms/loanwords, code and
identifiers inside, general text, mixing just *below* the threshold) and
mixed (just *above* the threshold, answer-only switch, heavy mixing,
foreign phrases inside sentences, wholly the wrong language). The label of a
threshold case comes from the generator's own word count (whitespace words;
one per Han/kana character), not from the filter's measure.

    python benchmarks/language_compose.py            # rewrites benchmarks/data/language_<set>.jsonl
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

DATA = Path(__file__).parent / "data"
LANGS = ["en", "zh", "ja", "ko", "ru", "ar", "hi", "de", "fr", "es"]
LATIN = {"en", "de", "fr", "es"}
#: The filter's default mixing threshold (share of judged words); labels of
#: the threshold cases are placed relative to it.
THRESHOLD = 0.01

INLINE_MATH = [
    r"$x^2 + y^2 = 25$", r"$a_n = a_{n-1} + a_{n-2}$", r"$\frac{3}{4}$", r"$n \ge 3$", r"$f(x) = x^3 - 3x + 1$",
    r"$\sqrt{2}$", r"$(x-1)(x+2)$", r"$\binom{10}{3} = 120$", r"$p = \frac{1}{6}$", r"$\sum_{k=1}^{n} k$",
    r"$2^{10} = 1024$", r"$\angle ABC = 60^\circ$", r"$\log_2 n$", r"$O(n \log n)$", r"$\mathbb{Z}$",
    r"$S = \frac{1}{2} b h$", r"$x \in [0, 1]$", r"$\gcd(a, b) = 1$", r"$\lim_{x \to 0} \frac{\sin x}{x} = 1$",
    r"\(\int_0^1 x^2\,dx\)", r"$\text{area} = 12$", r"$k = 7$", r"$\alpha + \beta = \pi$",
]
DISPLAY_MATH = [
    "$$\\sum_{k=1}^{n} (2k-1) = n^2$$",
    "\\[\n\\int_0^{\\pi} \\sin x \\, dx = 2\n\\]",
    "$$\\begin{aligned} (x+1)^2 &= x^2 + 2x + 1 \\\\ &= 49 \\end{aligned}$$",
    "\\begin{equation}\n\\frac{d}{dx} e^{x^2} = 2x e^{x^2}\n\\end{equation}",
    "$$P(A \\cup B) = P(A) + P(B) - P(A \\cap B) = \\frac{5}{12}$$",
    "$$\\det \\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix} = -2$$",
]
CODE = [
    ("```python\ndef count_pairs(nums, target):\n    # count the pairs whose sum equals target\n    seen = {}\n"
    "    total = 0\n    for x in nums:\n        total += seen.get(target - x, 0)\n        seen[x] = seen.get(x, 0) + 1\n"
    "    return total\n```"),
    ("```python\ndp = [0] * (n + 1)\ndp[1] = 1\nfor i in range(2, n + 1):\n    dp[i] = dp[i - 1] + dp[i - 2]  # Fibonacci\n"
    "print(dp[n])\n```"),
    ("```cpp\nint lo = 0, hi = n - 1;\nwhile (lo < hi) {\n    int mid = (lo + hi) / 2;  // binary search on the answer\n"
    "    if (check(mid)) hi = mid; else lo = mid + 1;\n}\n```"),
]
IDENTIFIERS = ["dp[i]", "max_len", "np.sum", "prefixSum", "left_ptr", "arr[j+1]", "x1", "visited[v]", "heapq.heappush",
               "is_valid()", "memo[n]", "graph.add_edge"]


def word_count(sentence: str, lang: str) -> int:
    """The generator's own count of a sentence's words (math and identifiers excluded)."""
    prose = re.sub(r"\$[^$]*\$|\\\(.*?\\\)|\{[a-z]\}", " ", sentence)
    cjk = len(re.findall(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff]", prose))
    if lang in ("zh", "ja"):
        return cjk + len(re.findall(r"[A-Za-z]+", prose))
    return cjk + sum(1 for t in prose.split() if re.search(r"[^\W\d_]", t))


class Composer:
    """Fills material into texts for one set; ``pattern`` picks the composition style."""

    def __init__(self, material: dict, pattern: str, seed: int):
        self.m, self.pattern, self.rng = material, pattern, random.Random(seed)

    def fill(self, template: str, lang: str, *, ident: bool = False) -> str:
        rng = self.rng
        math = rng.choice(IDENTIFIERS) if ident and lang in LATIN else rng.choice(INLINE_MATH)
        return (template.replace("{m}", math).replace("{k}", str(rng.randint(2, 999)))
                .replace("{t}", rng.choice(self.m[lang]["terms"])))

    def sentence(self, lang: str, *, general: bool = False, terms: bool = False, ident: bool = False,
                 dense: bool = False) -> str:
        rng, mat = self.rng, self.m[lang]
        if terms and rng.random() < 0.35:
            return self.fill(rng.choice(mat["term_s"]), lang)
        if general:
            return rng.choice(mat["g"])
        if rng.random() < 0.08:
            return rng.choice(mat["short"])
        s = self.fill(rng.choice(mat["s"]), lang, ident=ident and rng.random() < 0.3)
        if dense:
            s = s + " " + " ".join(rng.choice(INLINE_MATH) for _ in range(rng.randint(1, 3)))
        return s

    def answer(self, lang: str) -> str:
        return self.fill(self.rng.choice(self.m[lang]["ans"]), lang)

    def foreign_lang(self, lang: str, *, cross_script: bool | None = None) -> str:
        rng = self.rng
        others = [x for x in LANGS if x != lang]
        if cross_script is True:
            others = [x for x in others if (x in LATIN) != (lang in LATIN)]
        elif cross_script is False:
            others = [x for x in others if x in LATIN] if lang in LATIN else others
        elif lang in LATIN and rng.random() < 0.5:
            others = [x for x in others if x in LATIN]
        return rng.choice(others)

    def body(self, lang: str, size: int, **kw) -> list[list[str]]:
        """Paragraphs (lists of sentences) of about ``size`` bytes."""
        rng = self.rng
        paragraphs, total = [], 0
        while total < size:
            k = rng.randint(2, 6) if self.pattern == "a" else rng.randint(1, 9)
            para = [self.sentence(lang, **kw) for _ in range(k)]
            paragraphs.append(para)
            total += sum(len(s.encode()) + 1 for s in para) + 2
        return paragraphs

    def render(self, paragraphs: list[list[str]], lang: str, *, code: bool, dense: bool, answer: str) -> str:
        rng = self.rng
        sep = "" if lang in ("zh", "ja") else " "
        blocks = []
        for i, para in enumerate(paragraphs):
            if self.pattern == "b" and rng.random() < 0.3:
                blocks.append("\n".join(f"{j + 1}. {s}" for j, s in enumerate(para)))  # a numbered list of steps
            else:
                blocks.append(sep.join(para))
            if dense or rng.random() < 0.2:
                blocks.append(rng.choice(DISPLAY_MATH))
            if code and (i == 1 or rng.random() < 0.1):
                blocks.append(rng.choice(CODE))
        if self.pattern == "b" and rng.random() < 0.5:
            blocks.insert(0, rng.choice(["**Understanding the problem**", "## Step 1", "---"]) if lang == "en"
                          else "## 1")
        return "\n\n".join(blocks + [answer])

    def make(self, lang: str, kind: str, idx: int) -> dict:
        rng = self.rng
        big = kind in ("below_threshold",)
        size = rng.randint(9_000, 16_000) if big else rng.randint(2_000, 15_500)
        flags = {"general": kind == "clean_general", "terms": kind == "clean_terms", "ident": kind == "clean_code",
                     "dense": kind == "clean_latex_dense"}
        paragraphs = self.body(lang, size, **flags)
        answer = self.answer(lang)
        foreign, words, foreign_langs = 0, sum(word_count(s, lang) for p in paragraphs for s in p), []
        label = "clean"
        if kind in ("below_threshold", "above_threshold"):
            lo, hi = (0.3, 0.65) if kind == "below_threshold" else (1.6, 3.0)
            goal = rng.uniform(lo, hi) * THRESHOLD
            other = self.foreign_lang(lang)
            foreign_langs.append(other)
            while True:
                s = self.sentence(other)
                n = word_count(s, other)
                if (foreign + n) / (words + n) > goal and kind == "below_threshold":
                    break
                p = rng.randrange(len(paragraphs))
                paragraphs[p].insert(rng.randint(0, len(paragraphs[p])), s)
                foreign, words = foreign + n, words + n
                if kind == "above_threshold" and foreign / words >= goal and foreign > 3:
                    break
            label = "mixed" if kind == "above_threshold" else "clean"
        elif kind == "answer_only":
            other = self.foreign_lang(lang)
            foreign_langs.append(other)
            answer = self.answer(other)
            if self.pattern == "b":
                answer = self.fill(rng.choice(self.m[other]["s"]), other) + " " + answer
            label = "mixed"
        elif kind == "heavy_mix":
            other = self.foreign_lang(lang)
            foreign_langs.append(other)
            for p in paragraphs:
                if rng.random() < 0.35:
                    p[:] = [self.sentence(other) for _ in p]
                elif rng.random() < 0.3:
                    p.insert(rng.randint(0, len(p)), self.sentence(other))
            label = "mixed"
        elif kind == "phrase_mix":
            other = self.foreign_lang(lang, cross_script=True)
            foreign_langs.append(other)
            flat = [(i, j) for i, p in enumerate(paragraphs) for j in range(len(p))]
            goal = rng.uniform(2.0, 6.0) * THRESHOLD
            while foreign / max(words, 1) < goal or foreign <= 3:
                i, j = rng.choice(flat)
                src = self.fill(rng.choice(self.m[other]["s"]), other)
                src = re.sub(r"\$[^$]*\$", "", src)
                if other in ("zh", "ja"):
                    start = rng.randrange(max(1, len(src) - 8))
                    phrase = src[start:start + rng.randint(4, 8)]
                else:
                    toks = src.split()
                    start = rng.randrange(max(1, len(toks) - 4))
                    phrase = " ".join(toks[start:start + rng.randint(3, 6)])
                n = word_count(phrase, other)
                if n == 0:
                    continue
                host = paragraphs[i][j].split(" ")
                cut = rng.randint(1, max(1, len(host) - 1))
                paragraphs[i][j] = " ".join(host[:cut] + [phrase] + host[cut:]) if lang not in ("zh", "ja") else (
                    paragraphs[i][j][: len(paragraphs[i][j]) // 2] + " " + phrase + " "
                    + paragraphs[i][j][len(paragraphs[i][j]) // 2:])
                foreign, words = foreign + n, words + n
            label = "mixed"
        elif kind == "wrong_language":
            other = self.foreign_lang(lang)
            foreign_langs.append(other)
            paragraphs = self.body(other, size)
            answer = self.answer(other)
            label = "mixed"
        text = self.render(paragraphs, lang, code=kind == "clean_code" or rng.random() < 0.15,
                           dense=kind == "clean_latex_dense", answer=answer)
        return {"id": f"{self.pattern}-{lang}-{idx:03d}", "language": lang, "label": label, "kind": kind,
                "foreign": foreign_langs, "generator_mixing": round(foreign / max(words, 1), 5),
                "bytes": len(text.encode()), "text": text}


CODE_FOREIGN_COMMENTS = [
    "```python\n# 计算前缀和，然后二分查找\nprefix = [0]\nfor v in values:\n    prefix.append(prefix[-1] + v)\n```",
    "```python\ndef solve(n):\n    # Wir zählen die Teiler und geben die Summe zurück\n    return sum(d for d in range(1, n + 1) if n % d == 0)\n```",
    "```js\n// Проверяем все пары и запоминаем лучшую\nlet best = 0;\nfor (const [a, b] of pairs) best = Math.max(best, a * b);\n```",
    "```cpp\n// 各頂点を一度だけ訪問する\nfor (int v : order) visit(v);\n```",
]


class ComposerC(Composer):
    """Pattern ``c`` (post-freeze): bullets and bold headings, single-newline
    paragraphs, code whose comments are in another language (clean: code is no
    language), foreign sentences interleaved through the whole text, a whole
    foreign paragraph, and an answer switched on its own last line without a
    blank line before it."""

    def render(self, paragraphs, lang, *, code, dense, answer):
        rng = self.rng
        sep = "" if lang in ("zh", "ja") else " "
        blocks = []
        for i, para in enumerate(paragraphs):
            style = rng.random()
            if style < 0.2:
                blocks.append("\n".join(f"- {x}" for x in para))
            elif style < 0.3:
                blocks.append(f"**{rng.choice(self.m[lang]['short'])}** " + sep.join(para))
            else:
                blocks.append(sep.join(para))
            if dense or rng.random() < 0.25:
                blocks.append(rng.choice(DISPLAY_MATH))
            if code and (i == 1 or rng.random() < 0.1):
                blocks.append(rng.choice(CODE_FOREIGN_COMMENTS if self.code_foreign else CODE))
        joiner = "\n" if rng.random() < 0.3 else "\n\n"
        return joiner.join(blocks) + "\n\n" + answer

    def make(self, lang, kind, idx):
        rng = self.rng
        self.code_foreign = kind == "clean_code_comments"
        if kind in ("clean_code_comments", "interleaved", "answer_only_inline", "foreign_paragraph"):
            size = rng.randint(2_000, 15_000)
            paragraphs = self.body(lang, size, ident=kind == "clean_code_comments")
            words = sum(word_count(x, lang) for p in paragraphs for x in p)
            foreign, foreign_langs, answer, label = 0, [], self.answer(lang), "clean"
            if kind == "interleaved":
                other = self.foreign_lang(lang)
                foreign_langs.append(other)
                for p in paragraphs:
                    for j in range(len(p) - 1, -1, -1):
                        if rng.random() < 0.3:
                            x = self.sentence(other)
                            p.insert(j, x)
                            n = word_count(x, other)
                            foreign, words = foreign + n, words + n
                label = "mixed" if foreign / max(words, 1) > THRESHOLD and foreign > 2 else "clean"
            elif kind == "foreign_paragraph":
                other = self.foreign_lang(lang)
                foreign_langs.append(other)
                para = [self.sentence(other) for _ in range(rng.randint(2, 4))]
                n = sum(word_count(x, other) for x in para)
                paragraphs.insert(rng.randint(0, len(paragraphs)), para)
                foreign, words = n, words + n
                label = "mixed" if foreign / words > THRESHOLD and foreign > 2 else "clean"
            elif kind == "answer_only_inline":
                other = self.foreign_lang(lang)
                foreign_langs.append(other)
                answer = self.answer(other)
                label = "mixed"
            text = self.render(paragraphs, lang, code=kind == "clean_code_comments", dense=False, answer="")
            text = text.rstrip() + ("\n" + answer if kind == "answer_only_inline" else "\n\n" + answer)
            return {"id": f"c-{lang}-{idx:03d}", "language": lang, "label": label, "kind": kind,
                    "foreign": foreign_langs, "generator_mixing": round(foreign / max(words, 1), 5),
                    "bytes": len(text.encode()), "text": text}
        self.pattern = "b"  # the b-style body and threshold placement, with pattern c's rendering
        item = super().make(lang, kind, idx)
        item["id"] = item["id"].replace("b-", "c-", 1)
        self.pattern = "c"
        return item


KINDS = {
    # pattern a: 22 texts per language (11 clean, 11 mixed)
    "a": ["clean_plain"] * 2 + ["clean_latex_dense"] * 2 + ["clean_terms"] * 2 + ["clean_code"] * 2
         + ["clean_general", "below_threshold", "below_threshold"]
         + ["above_threshold"] * 3 + ["answer_only"] * 3 + ["heavy_mix"] * 2 + ["phrase_mix"] * 2 + ["wrong_language"],
    # pattern c (post-freeze): 12 texts per language; clean/mixed of interleaved and
    # foreign_paragraph follow the generator's own count against the threshold
    "c": ["clean_plain", "clean_latex_dense", "clean_terms", "clean_code_comments", "clean_general",
          "below_threshold", "above_threshold", "answer_only", "answer_only_inline", "interleaved",
          "foreign_paragraph", "phrase_mix"],
    # pattern b: 12 texts per language (6 clean, 6 mixed)
    "b": ["clean_plain", "clean_latex_dense", "clean_terms", "clean_code", "clean_general", "below_threshold",
          "above_threshold", "above_threshold", "answer_only", "answer_only", "phrase_mix", "heavy_mix"],
}


def compose(set_name: str) -> list[dict]:
    """All texts of one set, deterministic."""
    pattern, seed = {"prefreeze": ("a", 15), "postfreeze": ("c", 1515)}[set_name]
    material = json.loads((DATA / f"language_material_{set_name}.json").read_text(encoding="utf-8"))
    composer = (ComposerC if pattern == "c" else Composer)(material, pattern, seed)
    items = []
    for lang in LANGS:
        for idx, kind in enumerate(KINDS[pattern]):
            item = composer.make(lang, kind, idx)
            while item["bytes"] > 20_000:  # the benchmark's texts are 2-20 KB
                item = composer.make(lang, kind, idx)
            items.append(item)
    return items


def main() -> None:
    for set_name in ("prefreeze", "postfreeze"):
        if not (DATA / f"language_material_{set_name}.json").exists():
            print(f"{set_name}: no material yet")
            continue
        items = compose(set_name)
        out = DATA / f"language_{set_name}.jsonl"
        out.write_text("".join(json.dumps(it, ensure_ascii=False) + "\n" for it in items), encoding="utf-8")
        sizes = [it["bytes"] for it in items]
        print(f"{set_name}: {len(items)} texts, {sum(it['label'] == 'mixed' for it in items)} mixed, "
              f"{min(sizes)}-{max(sizes)} bytes -> {out}")


if __name__ == "__main__":
    main()
