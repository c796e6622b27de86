"""Answer extraction and numeric normalisation on tricky answers."""

import pytest

from sss.evaluation.answers import INVALID, normalize_number, number_after_answer_is


@pytest.mark.parametrize(
    "text, expected",
    [
        ("$1,234.", "1234"),
        ("-5", "-5"),
        ("3.50", "3.5"),
        ("3.5", "3.5"),
        ("7.0", "7"),
        ("0.5", "0.5"),
        (".5", "0.5"),
        ("007", "7"),
        ("-0", "0"),
        ("100", "100"),
        ("1,000,000", "1000000"),
        ("$ 12", "12"),
        ("12 apples", "12"),
        ("about -3.25 m", "-3.25"),
    ],
)
def test_normalize_number(text, expected):
    assert normalize_number(text) == expected


def test_no_number():
    assert normalize_number("none") is None


@pytest.mark.parametrize(
    "text, expected",
    [
        ("3 + 4 = 7. The answer is 7.", "7"),
        ("So the answer is $1,234.", "1234"),
        ("The answer is: 18", "18"),
        ("the answer is 3.50 dollars.", "3.5"),
        ("First 2. The answer is 5. The answer is 6.", "5"),  # the first statement counts
        ("I think it is 12.", INVALID),
        ("The answer is unknown.", INVALID),
        ("So she pays $1,234. The answer is $1,234.", "1234"),
        ("The answer is -5.", "-5"),
        ("The answer is 0.", "0"),
        ("The answer is 1,000,000", "1000000"),
        ("The answer is 007.", "7"),
        ("There is no answer here 42", INVALID),
    ],
)
def test_number_after_answer_is(text, expected):
    assert number_after_answer_is(text) == expected
