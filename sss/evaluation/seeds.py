"""Per-sample seeds derived from the run seed: reproducible, and different for every repeat."""

from __future__ import annotations

import hashlib


def sample_seed(run_seed: int, task: str, doc_id: int, repeat: int) -> int:
    """A stable 63-bit seed for one (task, document, repeat) of a run.

    Hashing (rather than run_seed + offset) keeps seeds of neighbouring runs,
    documents and repeats unrelated.
    """
    key = f"{run_seed}/{task}/{doc_id}/{repeat}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little") >> 1
