"""Reference answers to teacher-force, and their token sequences.

Sources (`calibration.data`):
- `gsm8k`: GSM8K train (`openai/gsm8k`, config `main`), or `calibration.data_files=<jsonl>` with
  its `question`/`answer` fields; the answers are GSM8K's rationales (calculator annotations and
  the `#### N` line included), as in the paper's calibration;
- `arith`: sss's own generated arithmetic word problems (the default task's generator, train
  split seed; `limit` problems, 1000 by default), each answer its worked chain of thought ending
  "The answer is N." — offline, no file needed;
- `jsonl`: any JSONL file (`calibration.data_files`) with `prompt` and `answer` fields.

A sequence is the prompt's tokens followed by the answer's tokens; only the answer's tokens are
traced. The two parts are tokenized separately and concatenated, so the boundary is exact and
every engine sees the very same ids.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SOURCES = {"gsm8k": ("question", "answer"), "arith": ("question", "rationale"), "jsonl": ("prompt", "answer")}
GSM8K_HUB = ("openai/gsm8k", "main", "train")
# The plain prompt when no chat template is applied.
PLAIN_PROMPT = "Question: {prompt}\nAnswer: "


class CalibrationDataError(ValueError):
    """The reference data is missing, unreadable or lacks a field."""


@dataclass(frozen=True)
class Example:
    doc_id: int
    prompt: str
    answer: str


@dataclass(frozen=True)
class Sequence:
    doc_id: int
    input_ids: list[int]
    answer_start: int  # index of the first answer token in input_ids

    @property
    def n_answer(self) -> int:
        return len(self.input_ids) - self.answer_start


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _records_from_file(path: Path) -> list[dict[str, Any]]:
    import pandas as pd

    try:
        frame = pd.read_json(path, lines=True, dtype=False)
    except ValueError as exc:
        raise CalibrationDataError(
            f"calibration.data_files = {str(path)!r} is not readable as JSONL (one JSON object per line): {exc}"
        ) from exc
    return frame.to_dict("records")


def _records_from_hub() -> list[dict[str, Any]]:
    import datasets

    name, config, split = GSM8K_HUB
    return list(datasets.load_dataset(name, config, split=split))


def load_examples(options: dict[str, Any]) -> list[Example]:
    """The first `calibration.limit` examples of the source, in file order (doc_id = line index)."""
    source = options["data"]
    prompt_key, answer_key = SOURCES[source]
    files = options.get("data_files")
    limit = options.get("limit")
    if source == "arith":
        from sss.evaluation.tasks.arith.generate import SPLIT_SIZES, generate

        records = generate("train", count=limit or SPLIT_SIZES["train"])
    else:
        records = _records_from_file(Path(files).expanduser()) if files else _records_from_hub()
    records = records[:limit] if limit else records
    if not records:
        raise CalibrationDataError(f"calibration.data_files = {files!r} holds no examples")
    examples = []
    for index, record in enumerate(records):
        for key in (prompt_key, answer_key):
            value = record.get(key)
            if not isinstance(value, str) or not value.strip():
                raise CalibrationDataError(
                    f"calibration.data_files = {files!r}: line {index + 1} has no text field "
                    f"{key!r} (calibration.data={source} expects {prompt_key!r} and {answer_key!r})"
                )
        examples.append(Example(index, record[prompt_key], record[answer_key]))
    return examples


def prompt_ids(tokenizer, prompt: str, chat_template: bool) -> list[int]:
    if chat_template:
        ids = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=True, add_generation_prompt=True
        )
        if isinstance(ids, dict) or hasattr(ids, "keys"):  # transformers 5 may return a BatchEncoding
            ids = ids["input_ids"]
        return [int(i) for i in ids]
    return tokenizer(PLAIN_PROMPT.format(prompt=prompt), add_special_tokens=False)["input_ids"]


def encode(examples: list[Example], tokenizer, chat_template: bool, max_length: int | None = None) -> list[Sequence]:
    """Token sequences, answers cut so that a sequence fits in `max_length` tokens."""
    out = []
    for example in examples:
        head = prompt_ids(tokenizer, example.prompt, chat_template)
        tail = tokenizer(example.answer, add_special_tokens=False)["input_ids"]
        ids = head + list(tail)
        if max_length is not None:
            ids = ids[:max_length]
        if len(ids) > len(head):
            out.append(Sequence(example.doc_id, [int(i) for i in ids], len(head)))
    return out
