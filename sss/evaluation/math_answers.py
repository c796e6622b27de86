"""Final answers of competition-math solutions: extraction and a canonical form.

A solution states its answer in the last complete \\boxed{...}; without one, the
sentence after "the answer is" counts. `normalize_math` rewrites an answer so that
notational variants of one value compare equal and vote together in maj@k:
"$\\boxed{033}$" and "33", "\\dfrac12" and "\\frac{1}{2}", "1{,}000" and "1000".
It is deliberately conservative: it never evaluates expressions, so "2/4" and
"\\frac{1}{2}" stay different answers.
"""

from __future__ import annotations

import re

from .answers import INVALID, after_answer_is

_BOX = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
# \text{...} and friends only wrap words; their content is the answer
_TEXT = re.compile(r"\\(?:text|textbf|textit|textrm|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
_DROP = re.compile(
    r"\\displaystyle|\\left(?![A-Za-z])|\\right(?![A-Za-z])"  # sizing of brackets
    r"|\^\s*\{?\s*\\circ\s*\}?|\\circ|°"  # degrees
    r"|\\?%|\\?\$"  # percent and dollar signs
    r"|\\[!,;: ]|\\q?quad(?![A-Za-z])|~"  # LaTeX spacing
)
_FRAC_DIGITS = re.compile(r"\\frac(\d)(\d)")  # \frac12 -> \frac{1}{2}
_FRAC_FIRST = re.compile(r"\\frac(\d)\{")  # \frac1{2} -> \frac{1}{2}
_FRAC_SECOND = re.compile(r"\\frac\{([^{}]*)\}(\d)")  # \frac{1}2 -> \frac{1}{2}
_SQRT_SHORT = re.compile(r"\\sqrt(\w)")  # \sqrt2 -> \sqrt{2}
# "x=5", "n = 5": a short name on the left is not part of the value
_NAME_EQUALS = re.compile(r"^[A-Za-z]\w{0,2}=(?!=)(.+)$")
_THOUSANDS = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_INTEGER = re.compile(r"-?\d+")
# a sentence ends at a full stop followed by a space or the end (not at a decimal point)
_SENTENCE_END = re.compile(r"\.(?:\s|$)")


def _braced(text: str, start: int) -> tuple[str, int] | None:
    """The content of the brace group opening at text[start], and the index after it."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i], i + 1
    return None  # unbalanced: a truncated generation


def boxed_answers(text: str) -> list[str]:
    """The contents of every complete \\boxed{...} (or \\fbox) in order; `\\boxed 5` counts too."""
    found = []
    for match in _BOX.finditer(text):
        i = match.end()
        while i < len(text) and text[i] == " ":
            i += 1
        if i < len(text) and text[i] == "{":
            group = _braced(text, i)
            if group is not None:
                found.append(group[0])
        elif i > match.end():  # "\boxed 5": up to the next space or $
            word = re.match(r"[^\s$]+", text[i:])
            if word:
                found.append(word.group(0))
    return found


def last_boxed(text: str) -> str | None:
    """The last complete box: a final answer is boxed last, and a box cut off by the token
    limit cannot be read, so the one before it is the model's latest complete statement."""
    boxes = boxed_answers(text)
    return boxes[-1] if boxes else None


def _strip_outer_braces(text: str) -> str:
    while text.startswith("{"):
        group = _braced(text, 0)
        if group is None or group[1] != len(text):
            break
        text = group[0]
    return text


def _canonical_number(text: str) -> str:
    """'033' -> '33', '+5' -> '5', '5.0' -> '5', '0.50' -> '0.5', '.5' -> '0.5', '-0' -> '0'."""
    negative = text.startswith("-")
    whole, _, fraction = text.lstrip("+-").partition(".")
    fraction = fraction.rstrip("0")
    number = (whole.lstrip("0") or "0") + ("." + fraction if fraction else "")
    return "-" + number if negative and number != "0" else number


def normalize_math(answer: str) -> str:
    """A canonical string for a math answer (see the module docstring); '' if nothing is left."""
    text = answer.replace("{,}", ",")  # LaTeX's thousands separator 1{,}000
    previous = None
    while previous != text:  # nested wrappers: \text{\textbf{5}}
        previous, text = text, _TEXT.sub(r"\1", text)
    text = _DROP.sub("", text)
    text = text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    text = "".join(text.split())
    text = text.rstrip(".,;")
    text = _strip_outer_braces(text)
    name = _NAME_EQUALS.match(text)
    if name:
        text = name.group(1)
    text = _FRAC_DIGITS.sub(r"\\frac{\1}{\2}", text)
    text = _FRAC_FIRST.sub(r"\\frac{\1}{", text)
    text = _FRAC_SECOND.sub(r"\\frac{\1}{\2}", text)
    text = _SQRT_SHORT.sub(r"\\sqrt{\1}", text)
    if _THOUSANDS.fullmatch(text):
        text = text.replace(",", "")
    if _DECIMAL.fullmatch(text):
        text = _canonical_number(text)
    return text


def extract_math_answer(response: str) -> str:
    """The normalised final answer of a solution, or INVALID.

    The last complete \\boxed{...}; otherwise the sentence after the first "the answer is"
    (the answers module's rule), up to its full stop.
    """
    boxed = last_boxed(response)
    if boxed is not None:
        return normalize_math(boxed) or INVALID
    rest = after_answer_is(response)
    if rest is None:
        return INVALID
    sentence = _SENTENCE_END.split(rest, maxsplit=1)[0].strip().strip("*")
    return normalize_math(sentence) or INVALID


def same_answer(answer: str, target: str) -> bool:
    """Equal normalised answers; integers compare by value ('033' is 33)."""
    if answer == INVALID or target == INVALID:
        return False
    if _INTEGER.fullmatch(answer) and _INTEGER.fullmatch(target):
        return int(answer) == int(target)
    return answer == target
