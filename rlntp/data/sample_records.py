"""A few GSM8K- and MATH-format records, for the tests and the paper-shape run (a user's clone has
no ../shared, and nothing is downloaded at run time).

Generated arithmetic: GSM8K records ``{"question", "answer"}`` whose answer ends in ``#### N``
with calculator annotations ``<<a+b=c>>``; MATH records ``{"problem", "solution", "answer", ...}``
whose solution ends in ``\\boxed{N}``. The sizes are those of the ``sample_*`` files the smoke
preset reads (64 train, 32 test).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SIZES = {"train": 64, "test": 32}
NAMES = ("Ann", "Ben", "Cleo", "Dev", "Eli", "Fay")


def gsm8k_record(rng: random.Random) -> dict[str, str]:
    name, a, b = rng.choice(NAMES), rng.randint(2, 60), rng.randint(2, 40)
    return {"question": f"{name} has {a} apples and buys {b} more. How many apples does {name} have?",
            "answer": f"{name} has {a}+{b} = <<{a}+{b}={a + b}>>{a + b} apples.\n#### {a + b}"}


def math_record(rng: random.Random, i: int) -> dict[str, str]:
    a, b = rng.randint(2, 12), rng.randint(2, 12)
    return {"problem": f"Compute ${a} \\times {b}$.", "level": "Level 1", "type": "Prealgebra",
            "solution": f"We multiply: ${a} \\times {b} = \\boxed{{{a * b}}}$.", "answer": str(a * b),
            "subject": "prealgebra", "unique_id": f"test/prealgebra/{i}.json"}


def write_sample_data(root: Path, sizes: dict[str, int] | None = None) -> Path:
    """``root/{gsm8k,math}/{,sample_}{train,test}.jsonl`` with ``sizes`` records per split
    (default :data:`SIZES`); returns ``root``."""
    rng = random.Random(0)
    for dataset in ("gsm8k", "math"):
        (root / dataset).mkdir(parents=True, exist_ok=True)
        for split, n in (sizes or SIZES).items():
            records = [gsm8k_record(rng) if dataset == "gsm8k" else math_record(rng, i) for i in range(n)]
            text = "".join(json.dumps(r) + "\n" for r in records)
            for prefix in ("", "sample_"):
                (root / dataset / f"{prefix}{split}.jsonl").write_text(text)
    return root
