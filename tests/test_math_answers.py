"""Boxed-answer extraction and math-answer normalisation on tricky answers."""

import pytest

from sss.evaluation.answers import INVALID
from sss.evaluation.math_answers import boxed_answers, extract_math_answer, last_boxed, normalize_math, same_answer


@pytest.mark.parametrize(
    "text, expected",
    [
        (r"so $\boxed{\frac{1}{2}}$", r"\frac{1}{2}"),  # nested braces
        (r"first \boxed{3}, then \boxed{5}", "5"),  # several boxes: the last
        (r"\boxed{\sqrt{\frac{a}{b}}} and \boxed{7", r"\sqrt{\frac{a}{b}}"),  # the last one is cut off
        (r"\fbox{12}", "12"),
        (r"\boxed 5$ done", "5"),
        (r"\boxedsomething{4}", None),  # not a \boxed command
        ("no box here", None),
    ],
)
def test_last_boxed(text, expected):
    assert last_boxed(text) == expected


def test_boxed_answers_in_order():
    assert boxed_answers(r"\boxed{1} x \boxed{{2}} y \boxed{3") == ["1", "{2}"]


@pytest.mark.parametrize(
    "response, expected",
    [
        (r"The total is \boxed{033}.", "33"),
        (r"\boxed{ 204 }", "204"),
        (r"Hence $\boxed{70}$.", "70"),
        (r"$\boxed{\dfrac{3}{4}}$", r"\frac{3}{4}"),
        (r"\boxed{\tfrac12}", r"\frac{1}{2}"),
        (r"\boxed{\frac1{2}}", r"\frac{1}{2}"),
        (r"\boxed{\sqrt2}", r"\sqrt{2}"),
        (r"\boxed{1,000}", "1000"),
        (r"\boxed{1{,}000}", "1000"),
        (r"\boxed{\$1,234}", "1234"),
        (r"\boxed{45^\circ}", "45"),
        (r"\boxed{45^{\circ}}", "45"),
        (r"\boxed{12\%}", "12"),
        (r"\boxed{\text{(C)}}", "(C)"),
        (r"\boxed{\textbf{\text{17}}}", "17"),
        (r"\boxed{x = 5}", "5"),
        (r"\boxed{\left( 3, 4 \right)}", "(3,4)"),
        (r"\boxed{5.}", "5"),
        (r"\boxed{5.0}", "5"),
        (r"\boxed{0.50}", "0.5"),
        (r"\boxed{-0}", "0"),
        (r"\boxed{+7}", "7"),
        (r"\boxed{\!10\,}", "10"),
        (r"\boxed{{42}}", "42"),
        (r"\boxed{}", INVALID),  # an empty box is no answer
        # without a box: the sentence after the first "the answer is"
        ("So the answer is 204.", "204"),
        ("The answer is $33$. Next we check it.", "33"),
        ("The answer is: **12**", "12"),
        ("The answer is 1.5 exactly", "1.5exactly"),  # no unit stripping: stays wrong
        ("I could not solve it.", INVALID),
        ("", INVALID),
    ],
)
def test_extract_math_answer(response, expected):
    assert extract_math_answer(response) == expected


def test_a_box_wins_over_the_answer_is_sentence():
    assert extract_math_answer(r"The answer is 3. Correction: \boxed{4}") == "4"


@pytest.mark.parametrize("a, b", [("033", "33"), ("33", "033"), ("-5", "-005"), ("0", "000")])
def test_integers_compare_by_value(a, b):
    assert same_answer(a, b)


@pytest.mark.parametrize(
    "a, b",
    [
        ("33", "34"),
        (r"\frac{1}{2}", "0.5"),
        (INVALID, INVALID),
        (INVALID, "33"),
        ("2/4", r"\frac{1}{2}"),
    ],
)
def test_different_answers_differ(a, b):
    assert not same_answer(a, b)


def test_normalisation_is_idempotent():
    for text in [r"\boxed{\dfrac12}", r"$1{,}000$", r"x=\left(1,2\right)", r"45^\circ", "033"]:
        once = normalize_math(text)
        assert normalize_math(once) == once
