"""End-to-end rewards: is the final answer of a completion correct? (1.0 or 0.0 for GRPO.)

- GSM8K: the first number after the last ``####``, else the last number in the text, compared
  numerically with the reference (commas, ``$`` and trailing zeros such as ``.00`` tolerated).
- MATH: the content of the last ``\\boxed{}``, compared with the reference by math-verify.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from decimal import Decimal, InvalidOperation

from rlntp.data.math_text import last_boxed

_NUMBER = re.compile(r"-?(?:\$\s*)?\d[\d,]*(?:\.\d+)?|-?\.\d+")


def parse_number(text: str) -> Decimal | None:
    """``"$1,234.00"`` -> ``Decimal("1234.00")``; None when ``text`` is not a number."""
    try:
        return Decimal(text.replace("$", "").replace(",", "").replace(" ", ""))
    except InvalidOperation:
        return None


def gsm8k_prediction(completion: str) -> str | None:
    """The predicted number: first after the last ``####``, else the last in the text."""
    if "####" in completion:
        found = _NUMBER.search(completion.rsplit("####", 1)[1])
        if found:
            return found.group()
    numbers = _NUMBER.findall(completion)
    return numbers[-1] if numbers else None


def gsm8k_correct(completion: str, reference: str) -> bool:
    pred, ref = gsm8k_prediction(completion), parse_number(reference)
    value = parse_number(pred) if pred is not None else None
    return value is not None and ref is not None and value == ref


def math_correct(completion: str, reference: str) -> bool:
    """The last ``\\boxed{}`` of ``completion`` equals ``reference`` (math-verify)."""
    from math_verify import parse, verify

    pred = last_boxed(completion)
    if pred is None:
        return False
    # math-verify times out with signal.alarm, which only works in the main thread
    timeout = 5 if threading.current_thread() is threading.main_thread() else None
    try:
        gold = parse(f"${reference}$", parsing_timeout=timeout)
        answer = parse(f"${pred}$", parsing_timeout=timeout)
        return bool(verify(gold, answer, timeout_seconds=timeout))
    except Exception:  # noqa: BLE001 - an unparsable answer is a wrong answer
        return False


# "words": the generated word problems of chapter 5 (rlntp.data.word_problems), in GSM8K's format
CORRECT: dict[str, Callable[[str, str], bool]] = {"gsm8k": gsm8k_correct, "math": math_correct,
                                                  "words": gsm8k_correct}


def correctness_reward(dataset: str) -> Callable[..., list[float]]:
    """A TRL reward function: 1.0 where the completion's final answer is correct, else 0.0."""
    correct = CORRECT[dataset]

    def reward(completions: list, answer: list[str], **_: object) -> list[float]:
        texts = [c if isinstance(c, str) else c[-1]["content"] for c in completions]
        return [float(correct(t, a)) for t, a in zip(texts, answer, strict=True)]

    reward.__name__ = f"{dataset}_correct"
    return reward
