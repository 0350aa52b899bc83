"""``datagen.language`` (the mixing measure) and ``LanguageMixFilter``: one literal case per rule.

Counts are hand-checked: a word is a whitespace token of letters (one word
per Han/kana character); LaTeX, code, identifiers, numbers and units are no
words; names, terms and loanwords are neutral.
"""

from __future__ import annotations

import pytest

from datagen.language import analyze, clean, language_consistency, mixing, sentences, split_answer
from filters.language import LanguageMixFilter

EN = ("We differentiate both sides and get the slope of the tangent line. "
      "Then we substitute the point into the equation and simplify the result carefully. ")
FR = "Donc la réponse est bien égale à six, ce qui confirme notre calcul précédent. "
ZH = "我们先计算这个积分，然后检查结果是否正确。"


def judge(text: str, language: str) -> str:
    return LanguageMixFilter().judge(text, language) or "keep"


# ---------------------------------------------------------------- what is a word

def test_clean_english_is_fully_consistent():
    report = analyze(EN, "en")
    assert (report.target_words, report.foreign_words, report.mixing) == (25, 0, 0.0)


def test_latex_code_urls_are_not_words():
    text = ("We compute $\\int_0^1 x^2\\,dx = \\frac{1}{3}$ and check it with `sum(x**2 for x in xs)`. "
            "```python\nprint('bonjour le monde, ceci est du code')\n```\n"
            "See https://example.org/fr/la-page for 12345 details about the result.")
    assert "bonjour" not in clean(text) and "frac" not in clean(text) and "example" not in clean(text)
    assert sentences(text) == [["We", "compute", "and", "check", "it", "with"],
                               ["See", "for", "details", "about", "the", "result"]]
    assert mixing(text, "en") == 0.0


def test_identifiers_and_units_are_not_words():
    # dp[i], max_len, np.sum, prefixSum, x1 and the unit after 5 are all dropped.
    text = "We store dp[i] in max_len, call np.sum on prefixSum with x1, and it weighs 5 kg."
    assert sentences(text) == [["We", "store", "in", "call", "on", "with", "and", "it", "weighs"]]


def test_code_lines_outside_fences_are_not_words():
    text = "这里用动态规划。\n    for i in range(n):\n        dp[i] = dp[i - 1] + 1\nreturn dp[n]\n所以答案是对的。"
    assert analyze(text, "zh").foreign_words == 0


def test_text_with_no_words_has_no_mixing():
    assert mixing("$x^2 + 1 = 0$", "en") == 0.0
    assert language_consistency("$x^2 + 1 = 0$", "en") == 1.0


def test_cjk_characters_count_as_words():
    # 4 Han characters (foreign) vs 12 English words.
    text = "We add the two numbers and then we check the result carefully 所以答案"
    report = analyze(text, "en")
    assert (report.target_words, report.foreign_words) == (12, 4)
    assert report.mixing == pytest.approx(4 / 16)


# ---------------------------------------------------------------- clean texts that must be kept

def test_latex_dense_clean_text_is_kept():
    text = ("Let $f(x) = x^2 + 3x$ and $g(x) = \\sqrt{x}$. Then $f'(x) = 2x + 3$, so $f'(1) = 5$. "
            "Hence $(f \\circ g)'(x) = f'(g(x)) g'(x) = \\frac{2\\sqrt{x} + 3}{2\\sqrt{x}}$. At $x = 4$: $\\frac{7}{4}$.\n\n"
            "$$\\sum_{k=1}^{n} (2k-1) = n^2$$\n\n\\begin{aligned} a &= b \\\\ c &= d \\end{aligned}")
    assert judge(text, "en") == "keep"


def test_identifiers_in_prose_are_kept():
    text = "We set dp[i] = max(dp[i-1], a_i) and keep prefix_sum[j]; numpy.cumsum does the same. " + EN
    assert judge(text, "en") == "keep"


def test_loanwords_and_terms_in_the_same_script_are_kept():
    text = ("The naïve approach is fine here; the raison d'être of the Ansatz is to guess the form, a priori, "
            "without any déjà vu. By the Cauchy-Schwarz inequality the bound holds. " + EN)
    assert judge(text, "en") == "keep"
    de = ("Das Update des Backends war ein Workaround für den Bug im Feature-Branch, aber das Deployment hat "
          "trotzdem funktioniert. Wir prüfen jetzt noch einmal die Laufzeit.")
    assert judge(de, "de") == "keep"


@pytest.mark.parametrize("language,text", [
    ("zh", "我们用 dynamic programming 和 binary search 来解决这个问题。然后用 Python 的 sorted 函数排序。"),
    ("ja", "アルゴリズムの計算量を考えます。Dijkstra 法とハッシュテーブルを使えば、定数時間で答えられます。"),
    ("ko", "DP 배열을 사용하면 각 쿼리를 상수 시간에 처리할 수 있습니다. 그 다음 BFS 로 최단 거리를 구합니다."),
    ("ru", "Используем метод Gauss-Seidel и алгоритм Dijkstra, а потом проверим ответ на Python."),
    ("ar", "نستخدم خوارزمية Dijkstra لإيجاد أقصر مسار، ثم نتحقق من النتيجة باستخدام Python."),
    ("hi", "हम DP का उपयोग करते हैं और फिर BFS से सबसे छोटी दूरी निकालते हैं।"),
])
def test_latin_terms_and_names_in_other_scripts_are_neutral(language, text):
    report = analyze(text, language)
    assert report.foreign_words == 0 and report.neutral_words > 0
    assert judge(text, language) == "keep"


def test_title_case_names_are_neutral_but_phrases_are_not():
    assert analyze("我们用 the Chinese Remainder Theorem 来做。", "zh").foreign_words == 0
    assert analyze("我们用 the sum of the first terms 来做。", "zh").foreign_words == 6


# ---------------------------------------------------------------- mixing, one case per script

@pytest.mark.parametrize("language,foreign", [
    ("en", "Теперь проверим результат ещё раз. "),            # Cyrillic
    ("en", "الآن نتحقق من النتيجة مرة أخرى. "),                # Arabic
    ("en", "अब हम परिणाम को फिर से जाँचते हैं। "),              # Devanagari
    ("en", "이제 결과를 다시 확인합니다. "),                     # Hangul
    ("en", "もう一度結果を確認します。 "),                       # kana
    ("en", "我们再检查一下结果。 "),                             # Han
    ("en", "Wir müssen das Ergebnis noch einmal überprüfen, bevor wir weitermachen. "),  # same script
])
def test_a_foreign_sentence_in_each_script_is_mixing(language, foreign):
    text = EN * 3 + foreign + EN
    assert judge(text, language) == "mixed_language"


def test_english_sentence_in_chinese_is_mixing():
    text = ZH * 3 + "Let me double check this calculation once more before moving on."
    assert judge(text, "zh") == "mixed_language"


def test_kana_in_chinese_target_is_japanese():
    text = ZH * 3 + "ちょっと待って、もう一度計算してみます。"
    report = analyze(text, "zh")
    assert report.foreign_languages == {"ja": report.foreign_words}
    assert judge(text, "zh") == "mixed_language"


def test_chinese_sentence_in_japanese_target_is_detected():
    text = ("まず、二次方程式の解を求めます。解の公式を使って計算します。"
            "我们用数学归纳法来证明这个通项公式是正确的。次に、結果を確かめます。")
    assert analyze(text, "ja").foreign_languages.get("zh", 0) > 0
    assert judge(text, "ja") == "mixed_language"


def test_wholly_foreign_text_is_wrong_language():
    fr = FR * 3
    assert mixing(fr, "en") == 1.0
    assert judge(fr, "en") == "wrong_language"
    assert judge(fr, "fr") == "keep"


# ---------------------------------------------------------------- the threshold

def test_mixing_just_above_and_below_the_threshold():
    foreign = "Donc la réponse est bien égale à six."  # 8 French words
    above = EN * 12 + foreign          # 8 of 308 words: 2.6% > 1%
    below = EN * 40 + foreign          # 8 of 1008 words: 0.79% < 1%
    assert analyze(above, "en").foreign_words == 8 and analyze(above, "en").judged_words == 308
    assert analyze(below, "en").mixing == pytest.approx(8 / 1008)
    assert judge(above, "en") == "mixed_language"
    assert judge(below, "en") == "keep"


def test_thresholds_can_be_turned_off():
    text = EN * 3 + FR
    assert LanguageMixFilter().judge(text, "en") == "mixed_language"
    assert LanguageMixFilter(max_foreign_share=None, max_foreign_words=None).judge(text, "en") is None
    assert LanguageMixFilter(max_foreign_share=0.5).judge(text, "en") is None
    assert LanguageMixFilter(max_foreign_words=20).judge(text, "en") is None
    assert LanguageMixFilter(min_consistency=None, max_foreign_share=None, max_foreign_words=None).judge(FR, "en") is None


# ---------------------------------------------------------------- the answer, judged apart

def test_answer_only_switch_is_wrong_answer_language():
    text = EN * 20 + "\n\nRéponse finale : la valeur est 42."
    assert split_answer(text)[1] == "Réponse finale : la valeur est 42."
    assert analyze(split_answer(text)[0], "en").mixing == 0.0   # the reasoning alone is clean
    assert judge(text, "en") == "wrong_answer_language"


def test_answer_only_switch_after_think_tags_and_in_records():
    assert judge("<think>" + EN * 5 + "</think>答案是 42。", "en") == "wrong_answer_language"
    record = {"language": "en", "reasoning": EN * 5, "summary": "La réponse finale est six, comme nous l'avons montré."}
    decision = LanguageMixFilter().check(record)
    assert decision.reason == "wrong_answer_language" and "answer: mixing 1.0000" in decision.detail
    assert LanguageMixFilter(check_summary=False).check(record).keep


def test_answer_label_alone_decides_a_short_answer():
    assert judge(ZH * 5 + "\n\n**Antwort:** $x = 5$", "zh") == "wrong_answer_language"
    assert judge(EN * 5 + "\n\n**Respuesta:** $x = 5$", "en") == "wrong_answer_language"
    assert judge(EN * 5 + "\n\n**Answer:** $x = 5$", "en") == "keep"


def test_mixed_drop_detail_carries_the_share():
    decision = LanguageMixFilter().check({"language": "en", "reasoning": EN * 3 + FR, "summary": "It is 6."})
    assert decision.reason == "mixed_language"
    # 3 x 25 English words + 14 French ones: 14 / 89.
    assert "mixing 0.1573 (14 foreign of 89 words; fr:14)" in decision.detail
