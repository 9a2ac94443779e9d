"""Answer metrics on hand-made cases: English and Chinese, full/half width, number formats."""

import pytest

from ragkit.eval import metrics as m


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The Battery!", "battery"),
        ("１，５００ ｍ²", "1500 m2"),  # full-width digits and comma, superscript
        ("1,500", "1500"),
        ("40 %", "40"),
        ("40%", "40"),
        ("隼鸟 M3 的保修期是 2 年。", "隼鸟m3的保修期是2年"),
        ("2.5 hours", "2.5 hours"),  # a decimal point is not punctuation
        ("9:00–21:00", "9:00 21:00"),
        ("USD 1,299.", "usd 1299"),
        ("USD 189.00", "usd 189"),  # zeros ending a decimal say nothing
        ("1.50 m, 2.10 kg, 10.05 s", "1.5 m 2.1 kg 10.05 s"),
        ("firmware 1.2.0", "firmware 1.2.0"),  # a version keeps its parts
    ],
)
def test_normalize(text, expected):
    assert m.normalize(text) == expected


def test_tokens_chinese_by_character_english_by_word():
    assert m.tokens("保修期 18 个月") == ["保", "修", "期", "18", "个", "月"]
    assert m.tokens("The M3 shows E01 at 5mm") == ["m3", "shows", "e01", "at", "5", "mm"]
    assert m.tokens("2.5 h at 9:30") == ["2.5", "h", "at", "9:30"]


@pytest.mark.parametrize(
    "pred, answers, em",
    [
        ("18 months.", ["18 months"], 1.0),
        ("18 Months", ["18 months"], 1.0),
        ("１８ ｍｏｎｔｈｓ", ["18 months"], 1.0),  # full width
        ("1500", ["1,500"], 1.0),
        ("40 %", ["40%"], 1.0),
        ("5mm", ["5 mm"], 1.0),  # unit glued or spaced
        ("18 个月。", ["18个月"], 1.0),
        ("It is 18 months.", ["18 months"], 0.0),
        ("24 months", ["18 months"], 0.0),
        ("", ["18 months"], 0.0),
    ],
)
def test_exact_match(pred, answers, em):
    assert m.exact_match(pred, answers) == em


@pytest.mark.parametrize(
    "pred, answers, acc",
    [
        ("The battery warranty is 18 months [1].", ["18 months"], 1.0),
        ("It covers up to １，５００ ㎡ of lawn.", ["1,500 m²"], 1.0),
        ("The area is 1500 m2", ["1,500 m²"], 1.0),
        ("最大坡度为 40 %。", ["40%"], 1.0),
        ("隼鸟 M3 的主机保修期是 2 年", ["2年"], 1.0),
        ("The cutting height is adjusted in 5mm steps.", ["5"], 1.0),  # a unit after a number
        ("Call 400-820-1616.", ["400 820 1616"], 1.0),
        ("It costs $1,899.", ["1899"], 1.0),
        ("79.00 [3]", ["79"], 1.0),  # a price list's form
        # Not found: "2" inside another number or a model name, a word inside a longer word.
        ("The warranty is 24 months.", ["2"], 0.0),
        ("Use the M2 dock.", ["2"], 0.0),
        ("It lasts 2.5 hours", ["2"], 0.0),
        ("18 months", ["month"], 0.0),
        ("保修期是 12 个月", ["2个月"], 0.0),
        ("I don't know.", ["18 months"], 0.0),
    ],
)
def test_contains_answer(pred, answers, acc):
    assert m.contains_answer(pred, answers) == acc


def test_any_acceptable_answer_counts():
    assert m.contains_answer("It is eighteen months", ["18 months", "eighteen months"]) == 1.0
    assert m.f1("eighteen months", ["18 months", "eighteen months"]) == 1.0


def test_f1_word_level_english():
    # pred tokens: warranty, is, 18, months (article dropped); gold: 18, months → P=2/4, R=1
    assert m.f1("The warranty is 18 months", ["18 months"]) == pytest.approx(2 * 0.5 * 1 / 1.5)
    assert m.f1("nothing in common", ["18 months"]) == 0.0


def test_f1_character_level_chinese():
    # pred 保修期十八个月 (7 chars) vs gold 十八个月 (4): common 4 → P=4/7, R=1
    assert m.f1("保修期十八个月", ["十八个月"]) == pytest.approx(2 * (4 / 7) / (4 / 7 + 1))
    assert m.f1("两年", ["2年"]) == pytest.approx(2 * 0.5 * 0.5 / 1.0)  # shares 年 only


def test_repetition_catches_the_repeater():
    clean = "The battery warranty is 18 months from the date of purchase."
    looping = "The warranty is 18 months. " * 6
    assert m.repetition(clean) == 0.0
    assert m.repetition(looping) > 0.7
    assert m.repetition("两年两年两年两年两年两年") > 0.5
    assert m.repetition("18") == 0.0  # too short for a 3-gram
    # A loop of numbers (seen from smollm2 with a long context) is not one long "number".
    assert m.repetition("1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1.1") > 0.7


def test_answer_length_counts_chinese_characters_and_english_words():
    assert m.answer_length("The warranty is 18 months") == 5
    assert m.answer_length("保修期两年") == 5


def test_score_answer_record():
    s = m.score_answer("18 months", ["18 months"], refused=False)
    assert s == {"em": 1.0, "f1": 1.0, "accuracy": 1.0, "refused": 0.0, "repetition": 0.0, "length": 2}
    assert m.score_answer("I don't know", ["18 months"], refused=True)["refused"] == 1.0


def test_percentile_matches_numpy():
    np = pytest.importorskip("numpy")
    xs = [5.0, 1.0, 9.0, 3.0, 7.0, 2.0]
    for q in (0, 50, 95, 100):
        assert m.percentile(xs, q) == pytest.approx(float(np.percentile(xs, q)))
    assert m.percentile([], 50) is None


def test_bootstrap_ci_known_cases():
    assert m.bootstrap_ci([1.0] * 30) == (1.0, 1.0)
    assert m.bootstrap_ci([]) is None
    # 100 items, half right: the normal approximation gives 0.5 ± 1.96 * 0.05 = [0.402, 0.598].
    lo, hi = m.bootstrap_ci([0.0, 1.0] * 50)
    assert lo == pytest.approx(0.402, abs=0.02) and hi == pytest.approx(0.598, abs=0.02)
    assert lo < 0.5 < hi
    # Fixed seed: the same interval every time.
    assert m.bootstrap_ci([0.0, 1.0] * 50) == (lo, hi)


def test_paired_bootstrap_sees_a_consistent_gain_and_noise():
    a = [0.0] * 40 + [1.0] * 10
    b = [1.0] * 40 + [1.0] * 10  # b right on every item a missed
    res = m.paired_bootstrap(a, b)
    assert res["diff"] == 0.8 and res["n"] == 50 and res["significant"]
    assert res["ci95"][0] > 0.6
    # Same accuracy, different items: the difference is noise.
    a2 = [1.0, 0.0] * 25
    b2 = [0.0, 1.0] * 25
    res2 = m.paired_bootstrap(a2, b2)
    assert res2["diff"] == 0.0 and not res2["significant"] and res2["ci95"][0] < 0 < res2["ci95"][1]
    with pytest.raises(ValueError):
        m.paired_bootstrap([1.0], [1.0, 0.0])
