"""The paper's answer extraction and grading: lm-eval 0.4's regex filter and exact match.

The paper scored with lm-eval filters: a regex keeps the first match of each response
(or "[invalid]"), `majority_vote` picks the most frequent of those raw strings (ties to
the one seen first), and `exact_match` compares the result with the target after
removing `regexes_to_ignore`, lower-casing and dropping punctuation as the task says.
sss computes the same from samples.parquet (sss/evaluation/metrics.py `paper_*`); the
tests check every step against lm-eval's own filter classes and metric.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field

from .answers import INVALID

_PUNCTUATION = str.maketrans("", "", string.punctuation)


@dataclass(frozen=True)
class PaperRules:
    """One task's extraction regex and exact-match settings as the paper's task YAML set them."""

    regex: str
    ignore_case: bool = False
    ignore_punctuation: bool = False
    regexes_to_ignore: tuple[str, ...] = ()
    compiled: re.Pattern = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "compiled", re.compile(self.regex))

    def extract(self, response: str) -> str:
        """The first match of the regex (its first non-empty group, if it has groups),
        stripped; "[invalid]" without one."""
        found = self.compiled.findall(response if isinstance(response, str) else "")
        if not found:
            return INVALID
        first = found[0]
        if isinstance(first, tuple):
            first = next((group for group in first if group), INVALID)
        return first.strip()

    def comparable(self, text: str) -> str:
        """What exact match compares: the string without the ignored patterns, case and punctuation."""
        for pattern in self.regexes_to_ignore:
            text = re.sub(pattern, "", text)
        if self.ignore_case:
            text = text.lower()
        if self.ignore_punctuation:
            text = text.translate(_PUNCTUATION)
        return text

    def matches(self, extracted: str, reference: str) -> bool:
        return self.comparable(extracted) == self.comparable(reference)
