"""Arithmetic word problems, generated deterministically so the default task needs no download.

Each problem chains one or two small steps (add, take away, groups of, share)
and carries a worked chain of thought ending "The answer is N.", in the style
of the GSM8K few-shot prompts. The same (split, seed, count) always gives the
same file, byte for byte.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
from pathlib import Path

GENERATOR_VERSION = 1
SPLIT_SEEDS = {"train": 1_000, "test": 2_000}
SPLIT_SIZES = {"train": 32, "test": 200}

NAMES = [
    "Ava",
    "Ben",
    "Chloe",
    "Dev",
    "Emma",
    "Farid",
    "Grace",
    "Hugo",
    "Iris",
    "Jonas",
    "Kira",
    "Liam",
    "Maya",
    "Noah",
    "Olga",
    "Pablo",
    "Quinn",
    "Rosa",
    "Sami",
    "Tara",
]
THINGS = [
    "apples",
    "marbles",
    "stickers",
    "books",
    "pencils",
    "cookies",
    "stamps",
    "shells",
    "cards",
    "coins",
    "eggs",
    "balloons",
]
CONTAINERS = ["bags", "boxes", "jars", "baskets", "packs"]


def _problem(rng: random.Random) -> dict:
    name, friend = rng.sample(NAMES, 2)
    thing = rng.choice(THINGS)
    start = rng.randint(2, 20)
    text = [f"{name} has {start} {thing}."]
    steps = [f"{name} starts with {start} {thing}."]
    value = start
    for _ in range(rng.randint(1, 2)):
        kind = rng.choice(["add", "sub", "groups", "double"])
        if kind == "add":
            n = rng.randint(2, 12)
            text.append(f"{friend} gives {name} {n} more {thing}.")
            steps.append(f"After getting {n} more, {name} has {value} + {n} = {value + n}.")
            value += n
        elif kind == "sub" and value > 2:
            n = rng.randint(1, value - 1)
            text.append(f"{name} gives {n} {thing} to {friend}.")
            steps.append(f"After giving away {n}, {name} has {value} - {n} = {value - n}.")
            value -= n
        elif kind == "groups":
            count, size = rng.randint(2, 5), rng.randint(2, 6)
            box = rng.choice(CONTAINERS)
            text.append(f"Then {name} buys {count} {box} with {size} {thing} in each.")
            steps.append(
                f"The {box} hold {count} * {size} = {count * size} {thing}, "
                f"so {name} has {value} + {count * size} = {value + count * size}."
            )
            value += count * size
        else:
            text.append(f"Then the number of {thing} {name} has doubles.")
            steps.append(f"Doubling gives {value} * 2 = {value * 2}.")
            value *= 2
    text.append(f"How many {thing} does {name} have now?")
    steps.append(f"The answer is {value}.")
    return {"question": " ".join(text), "rationale": " ".join(steps), "target": str(value)}


def generate(split: str, count: int | None = None) -> list[dict]:
    rng = random.Random(SPLIT_SEEDS[split])
    count = SPLIT_SIZES[split] if count is None else count
    return [{"id": f"{split}-{i}", **_problem(rng)} for i in range(count)]


def data_files(cache_dir: Path) -> dict[str, str]:
    """Write (once) and return {"train": path, "test": path} for lm-eval's json loader."""
    folder = Path(cache_dir) / "data" / f"arith-v{GENERATOR_VERSION}"
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split in SPLIT_SEEDS:
        path = folder / f"{split}.jsonl"
        if not path.is_file():
            fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
            with os.fdopen(fd, "w") as fh:
                for row in generate(split):
                    fh.write(json.dumps(row) + "\n")
            os.replace(tmp, path)
        out[split] = str(path)
    return out
