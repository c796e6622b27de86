"""Batches of token sequences, longest first (less padding; the first batch shows the peak memory)."""

from __future__ import annotations

from collections.abc import Iterator

from .data import Sequence


def batches(sequences: list[Sequence], batch_size: int) -> Iterator[list[Sequence]]:
    ordered = sorted(sequences, key=lambda s: (-len(s.input_ids), s.doc_id))
    for start in range(0, len(ordered), batch_size):
        yield ordered[start : start + batch_size]


def progress(total: int, desc: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="tok", mininterval=2.0)
