"""Answer extraction and normalisation shared by the tasks (one implementation per idea)."""

from __future__ import annotations

import re

INVALID = "[invalid]"

_ANSWER_IS = re.compile(r"[Tt]he answer is\s*:?[ \t]*(.+)")
_NUMBER = re.compile(r"-?\$?\s*\d[\d,]*(?:\.\d+)?|-?\$?\s*\.\d+")


def normalize_number(text: str) -> str | None:
    """'$1,234.' -> '1234', '3.50' -> '3.5', '-5' -> '-5', '7.0' -> '7'; None if no number."""
    match = _NUMBER.search(text)
    if match is None:
        return None
    raw = match.group(0).replace("$", "").replace(",", "").replace(" ", "")
    negative = raw.startswith("-")
    raw = raw.lstrip("-")
    if "." in raw:
        raw = raw.rstrip("0").rstrip(".") or "0"
    whole, _, fraction = raw.partition(".")
    raw = (whole.lstrip("0") or "0") + ("." + fraction if fraction else "")
    return ("-" + raw) if negative and raw != "0" else raw


def after_answer_is(text: str) -> str | None:
    """The rest of the line after the first "The answer is" in a chain of thought, or None."""
    match = _ANSWER_IS.search(text)
    return None if match is None else match.group(1).strip()


def number_after_answer_is(text: str) -> str:
    """The number that follows the first "The answer is" in a chain of thought, normalised."""
    rest = after_answer_is(text)
    return INVALID if rest is None else normalize_number(rest) or INVALID
