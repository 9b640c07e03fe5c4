"""GSM8K and MATH as short/long mixtures for supervised fine-tuning (paper, Sec. 5 / Fig. 5 right).

A *long* demonstration is the dataset's worked solution; a *short* one gives the final answer
alone:

- GSM8K: long = the solution ending in ``#### <answer>`` (calculator annotations ``<<6*4=24>>``
  removed, ours); short = ``#### <answer>``.
- MATH: long = the solution, its final ``\\boxed{}`` kept; short = ``\\boxed{<answer>}``.

A seeded choice of ``round(p_cot * n)`` training problems keeps the long form. Problems come from
local JSON Lines files (``data_dir``; fields as in ``shared/data/gsm8k`` and ``shared/data/math``)
or, with ``data_dir="hub"``, from the Hugging Face hub.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
from dataclasses import dataclass
from pathlib import Path

from rlntp.config import REPO

DATASETS = ("gsm8k", "math")
HUB = "hub"
INSTRUCTIONS = {  # one prompt template per dataset (wrapped in the model's chat format if any)
    "gsm8k": "{question}\nGive the final answer after ####.",
    "math": "{question}\nPut the final answer in \\boxed{{}}.",
    "words": "{question}\nGive the final answer after ####.",  # rlntp.data.word_problems
}
SYSTEM = "Solve the math problem."
_CALCULATOR = re.compile(r"<<[^>]*>>")
FIELDS = {"gsm8k": "'question' and 'answer' (ending in '#### <answer>')",
          "math": "'problem' and 'solution' (with a \\boxed{} answer, or an 'answer' field)"}


@dataclass(frozen=True)
class Problem:
    """One problem: the question, its long and short demonstrations and the reference answer."""

    question: str
    long: str
    short: str
    answer: str


def data_root(data_dir: str | Path | None = None) -> Path:
    """``data_dir``, else ``$RLNTP_DATA_DIR``, else ``<repo>/../shared/data``; it must exist."""
    root = Path(data_dir or os.environ.get("RLNTP_DATA_DIR") or REPO.parent / "shared" / "data")
    if not root.is_dir():
        raise FileNotFoundError(
            f"parameter data_dir={str(root)!r} is not a folder: pass data_dir (or set "
            "RLNTP_DATA_DIR) to the folder holding gsm8k/ and math/, or data_dir='hub'")
    return root


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` (or ``\\fbox{...}``), braces matched; else None."""
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return None
    i = text.index("{", start) + 1
    depth = 1
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i:j]
    return None


class DataError(ValueError):
    """A data file is empty or malformed; the message names the file, the line and the field."""


def to_problem(dataset: str, record: dict, where: str = "record") -> Problem:
    """A :class:`Problem` from a GSM8K (question, answer) or MATH (problem, solution) record.

    ``where`` (``"FILE line N"``) names the record in errors: a missing field, a GSM8K answer
    without ``####``, a MATH solution with neither a ``\\boxed{}`` nor an ``answer`` field.
    """
    def field(name: str) -> str:
        value = record.get(name)
        if not isinstance(value, str) or not value.strip():
            raise DataError(f"{where}: field {name!r} is missing or empty ({dataset} records "
                            f"need {FIELDS[dataset]})")
        return value

    if dataset == "gsm8k":
        question, solution = field("question"), field("answer")
        answer = solution.rsplit("####", 1)[1].strip() if "####" in solution else ""
        if not answer:
            raise DataError(f"{where}: field 'answer' does not end in '#### <final answer>'")
        return Problem(question, _CALCULATOR.sub("", solution).strip(), f"#### {answer}", answer)
    question, solution = field("problem"), field("solution")
    answer = record.get("answer") or last_boxed(solution)  # "" for MATH's two empty boxes
    if answer is None:
        raise DataError(f"{where}: the solution has no \\boxed{{...}} and there is no 'answer' "
                        "field, so the final answer is unknown")
    return Problem(question, solution.strip(), f"\\boxed{{{answer}}}", str(answer))


def data_files(dataset: str, data_dir: str | Path | None = None, sample: bool = False
               ) -> list[Path]:
    """The local files (train, test) a run of ``dataset`` reads."""
    root = data_root(data_dir)
    return [root / dataset / f"{'sample_' if sample else ''}{split}.jsonl"
            for split in ("train", "test")]


def data_hash(dataset: str, data_dir: str | Path | None = None, sample: bool = False) -> str:
    """A short hash of the contents of the files a run reads (``"hub"`` for the hub's data), for
    cache keys: results computed from other data are never reused. ``dataset`` may name several
    joined by ``+`` (``"gsm8k+math"``)."""
    if data_dir == HUB:
        return HUB
    h = hashlib.sha1()
    for path in (f for name in dataset.split("+") for f in data_files(name, data_dir, sample)):
        h.update(path.name.encode())
        h.update(path.read_bytes() if path.is_file() else b"<missing>")
    return h.hexdigest()[:12]


def read_jsonl(path: Path) -> list[tuple[str, dict]]:
    """``("FILE line N", record)`` for every non-blank line; errors name the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path} line {number}"
        try:
            record = json.loads(line)
            json.dumps(record, ensure_ascii=False).encode("utf-8")  # every string valid Unicode
        except json.JSONDecodeError as e:
            raise DataError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
        except RecursionError:
            raise DataError(f"{where}: JSON nested too deeply (a record is one flat object)") from None
        except UnicodeEncodeError as e:
            raise DataError(f"{where}: a string holds the lone surrogate {e.object[e.start:e.end]!r}: "
                            "not valid Unicode text") from None
        if not isinstance(record, dict):
            raise DataError(f"{where}: not a JSON object")
        rows.append((where, record))
    if not rows:
        raise DataError(f"{path}: the file has no records (it is empty)")
    return rows


def _read_records(dataset: str, split: str, data_dir: str | Path | None, sample: bool
                  ) -> list[tuple[str, dict]]:
    """``(where, record)`` pairs, ``where`` naming the record in errors."""
    if data_dir == HUB:
        from rlntp.hub import hub_access

        hub_access(True)  # data_dir='hub' is the user's explicit choice
        import datasets

        if dataset == "gsm8k":
            rows = list(datasets.load_dataset("openai/gsm8k", "main", split=split))
        else:
            subjects = ("algebra", "counting_and_probability", "geometry", "intermediate_algebra",
                        "number_theory", "prealgebra", "precalculus")
            rows = [r for s in subjects
                    for r in datasets.load_dataset("EleutherAI/hendrycks_math", s, split=split)]
        return [(f"hub {dataset} {split} row {i}", r) for i, r in enumerate(rows)]
    path = data_files(dataset, data_dir, sample)[("train", "test").index(split)]
    if not path.exists():
        raise FileNotFoundError(f"parameter data_dir: {path} is missing")
    return read_jsonl(path)


def load_problems(dataset: str, split: str, n: int | None = None, seed: int = 0,
                  data_dir: str | Path | None = None, sample: bool = False) -> list[Problem]:
    """``n`` problems of ``split`` ("train" or "test"), a seeded random subset (all if n is None).

    ``sample=True`` reads the small ``sample_{split}.jsonl`` files (the smoke preset).
    """
    if dataset not in DATASETS:
        raise ValueError(f"parameter dataset={dataset!r} is not allowed: one of {DATASETS}")
    if split not in ("train", "test"):
        raise ValueError(f"parameter split={split!r} is not allowed: 'train' or 'test'")
    records = _read_records(dataset, split, data_dir, sample)
    if n is not None:
        if not 1 <= n <= len(records):
            raise ValueError(f"parameter {split}_size={n} is not allowed: 1..{len(records)} "
                             f"({dataset} {split}{' sample' if sample else ''})")
        records = [records[i] for i in sorted(random.Random(seed).sample(range(len(records)), n))]
    return [to_problem(dataset, r, where) for where, r in records]


def choose_long(n: int, p_cot: float, seed: int) -> list[bool]:
    """Which of ``n`` training problems keep the long form: ``round(p_cot * n)`` of them, seeded."""
    if not 0.0 <= p_cot <= 1.0:
        raise ValueError(f"parameter p_cot={p_cot!r} is not allowed: a number in [0, 1]")
    chosen = set(random.Random(seed).sample(range(n), round(p_cot * n)))
    return [i in chosen for i in range(n)]


def format_prompt(question: str, dataset: str, tokenizer=None) -> str:
    """The prompt text: the dataset's template, in the tokenizer's chat format when it has one."""
    text = INSTRUCTIONS[dataset].format(question=question)
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        return f"Question: {text}\nAnswer: "
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def strip_answer(response: str, dataset: str) -> str:
    """The response without its final answer (gsm8k, words: from the last ``####``; math: the
    last box)."""
    if dataset in ("gsm8k", "words"):
        return response.rsplit("####", 1)[0]
    start = max(response.rfind("\\boxed{"), response.rfind("\\fbox{"))
    return response[:start] if start >= 0 else response


def is_long(response: str, dataset: str) -> bool:
    """A response is *long* when a letter or digit remains once the final answer is removed.

    ``#### 72`` and ``$\\boxed{8+4i}$`` are short; any worked step (or any text without an answer
    marker) makes a response long.
    """
    return re.search(r"[A-Za-z0-9]", strip_answer(response, dataset)) is not None


def sft_records(problems: list[Problem], long: list[bool], dataset: str, tokenizer=None,
                ) -> list[dict[str, str]]:
    """Prompt-completion records for TRL's SFTTrainer (the mixture: long where ``long[i]``)."""
    return [{"prompt": format_prompt(p.question, dataset, tokenizer),
             "completion": p.long if is_l else p.short}
            for p, is_l in zip(problems, long, strict=True)]


def rl_records(problems: list[Problem], dataset: str, tokenizer=None) -> list[dict[str, str]]:
    """Prompt records with the reference ``answer`` column, for GRPO and evaluation."""
    return [{"prompt": format_prompt(p.question, dataset, tokenizer), "answer": p.answer}
            for p in problems]
