"""``language_consistency`` and ``LanguageMixFilter``: one literal case per rule."""

from __future__ import annotations

from datagen.language import clean, language_consistency
from filters.language import LanguageMixFilter

EN = ("We differentiate both sides and get the slope of the tangent line. "
      "Then we substitute the point into the equation and simplify the result carefully.")


def test_clean_english_is_fully_consistent():
    assert language_consistency(EN, "en") == 1.0


def test_latex_code_numbers_urls_are_not_words():
    text = ("We compute $\\int_0^1 x^2\\,dx = \\frac{1}{3}$ and check it with `sum(x**2 for x in xs)`. "
            "```python\nprint('bonjour le monde, ceci est du code')\n```\n"
            "See https://example.org/fr/la-page for 12345 details about the result.")
    assert "bonjour" not in clean(text) and "frac" not in clean(text) and "example" not in clean(text)
    assert language_consistency(text, "en") == 1.0


def test_cjk_characters_count_as_words():
    # 4 CJK characters vs 12 English words: 12 / 16.
    text = "We add the two numbers and then we check the result carefully 所以答案"
    assert language_consistency(text, "en") == 12 / 16


def test_text_with_no_words_scores_one():
    assert language_consistency("$x^2 + 1 = 0$", "en") == 1.0


def test_wholly_foreign_text_scores_near_zero():
    fr = ("Nous dérivons les deux membres et obtenons la pente de la tangente. "
          "Ensuite nous remplaçons le point dans l'équation et simplifions soigneusement le résultat.")
    assert language_consistency(fr, "en") < 0.2
    assert language_consistency(fr, "fr") == 1.0


def test_technical_terms_are_not_mixing():
    text = ("We apply the Gauss-Jordan method a priori, then use L'Hôpital's rule for the limit. "
            "The Schrödinger equation is not needed here, so we simply expand the Taylor series.")
    assert LanguageMixFilter().judge(text, "en") is None


def test_latin_terms_in_chinese_are_neutral():
    text = "这道题可以用 DP 来做，然后用 Python 的 sort 函数排序，最后检查边界条件是否正确。"
    assert language_consistency(text, "zh") == 1.0


def test_english_sentence_in_chinese_is_mixing():
    text = "我们先计算这个积分，然后检查结果。Let me double check this calculation once more before moving on."
    assert LanguageMixFilter().judge(text, "zh") == "mixed_language"


def test_kana_in_chinese_target_is_japanese():
    text = "我们先计算这个积分，然后检查结果是否正确。ちょっと待って、もう一度計算してみます。"
    assert LanguageMixFilter().judge(text, "zh") == "mixed_language"


def test_chinese_sentence_in_japanese_target_is_detected():
    text = ("まず、二次方程式の解を求めます。解の公式を使って計算します。"
            "我们用数学归纳法来证明这个通项公式是正确的。次に、結果を確かめます。")
    assert LanguageMixFilter().judge(text, "ja") == "mixed_language"


def test_one_foreign_sentence_in_a_long_text_is_mixing():
    text = " ".join([EN] * 40) + " Donc la réponse est bien égale à six, ce qui confirme notre calcul. " + EN
    assert LanguageMixFilter().judge(text, "en") == "mixed_language"


def test_french_sentence_in_english_is_mixing_same_script():
    text = EN + " Donc la réponse est bien égale à six, ce qui confirme notre calcul précédent. " + EN
    assert LanguageMixFilter().judge(text, "en") == "mixed_language"


def test_thresholds_can_be_turned_off():
    text = EN + " Donc la réponse est bien égale à six, ce qui confirme notre calcul précédent."
    assert LanguageMixFilter().judge(text, "en") == "mixed_language"
    assert LanguageMixFilter(max_foreign_words=None).judge(text, "en") is None
    assert LanguageMixFilter(max_foreign_share=0.5).judge(text, "en") is None
    fr = "Nous dérivons les deux membres et obtenons la pente de la tangente au point donné."
    assert LanguageMixFilter(min_consistency=None, max_foreign_words=None).judge(fr, "en") is None


def test_summary_is_checked_separately():
    record = {"language": "en", "reasoning": EN, "summary": "La réponse finale est six, comme nous l'avons montré."}
    assert LanguageMixFilter().check(record).reason == "answer_wrong_language"
    assert LanguageMixFilter(check_summary=False).check(record).keep
