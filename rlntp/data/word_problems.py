"""Arithmetic word problems with ``k`` steps in varied English: chapter 5's stand-in for GSM8K.

A problem is a *chain*: a start value and ``k`` operations (add or subtract a number from 2 to
``max_operand``, or multiply by a digit from 2 to 4), every running value between 1 and
``max_value``. Its English wording (a name, an object, one clause per step, each drawn from
several phrasings) is drawn from the same seeded stream; its answer is the last value.

- long: one step per clause with its running result, then ``#### <answer>``
- short: ``#### <answer>``

Worked example (``steps=3``; any seed that draws this chain)::

    question: Mia has 7 shells. She finds 5 more. Then she gives away 3. After that the number
              of shells triples. How many shells does Mia have now?
    long:     7 + 5 = 12. 12 - 3 = 9. 9 * 3 = 27. #### 27
    short:    #### 27

Splits are disjoint by construction: a chain's split is a function of its arithmetic alone (a
hash of the start value and the operations, not of the wording), so no test chain occurs, in any
wording, among the SFT or GRPO problems. :data:`SPLITS` gives each split its share of the hash
buckets: ``sft`` (supervised fine-tuning and the SFT-alone control), ``rl`` (GRPO's prompts,
never seen in SFT) and ``test``. The reward and the long/short test are GSM8K's
(:mod:`rlntp.llm.rewards`, :func:`rlntp.data.math_text.is_long`).
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from rlntp.data.math_text import Problem

SPLITS = {"sft": range(0, 60), "rl": range(60, 85), "test": range(85, 100)}  # hash buckets of 100
NAMES = ("Mia", "Leo", "Ava", "Sam", "Zoe", "Max", "Ivy", "Tom", "Nia", "Ben", "Eva", "Raj")
PRONOUNS = {"Mia": "she", "Ava": "she", "Zoe": "she", "Ivy": "she", "Nia": "she", "Eva": "she"}
THINGS = ("shells", "apples", "stickers", "marbles", "coins", "books", "cards", "stamps",
          "pencils", "eggs")
START = ("{name} has {n} {things}.", "{name} starts with {n} {things}.",
         "There are {n} {things} in {name}'s box.", "{name} owns {n} {things}.")
ADD = ("{Pron} finds {n} more.", "{Pron} buys {n} more {things}.",
       "A friend gives {obj} {n} more.", "Then {pron} gets {n} more {things}.",
       "After that, {n} more {things} are added.")
SUB = ("Then {pron} gives away {n}.", "Then {pron} loses {n} of them.", "{Pron} uses {n} {things}.",
       "After that, {n} {things} are taken away.", "{Pron} sells {n} of them.")
MUL = ("After that the number of {things} {times}.", "Then the number of {things} {times}.",
       "{Pron} ends up with {m} times as many {things}.")
TIMES = {2: "doubles", 3: "triples", 4: "becomes four times as large"}
QUESTION = ("How many {things} does {name} have now?", "How many {things} are there at the end?",
            "How many {things} does {name} end with?")
MUL_RATE = 1 / 3  # a step multiplies with this probability (when the result stays in range)
SYMBOL = {"add": "+", "sub": "-", "mul": "*"}


def apply(value: int, op: tuple[str, int]) -> int:
    kind, n = op
    return value + n if kind == "add" else value - n if kind == "sub" else value * n


@dataclass(frozen=True)
class Chain:
    """The arithmetic of a problem: a start value and ``(op, operand)`` steps."""

    start: int
    ops: tuple[tuple[str, int], ...]

    def values(self) -> list[int]:
        """The running values, start first."""
        out = [self.start]
        for op in self.ops:
            out.append(apply(out[-1], op))
        return out

    @property
    def bucket(self) -> int:
        """0..99, from the arithmetic alone: which split the chain belongs to."""
        key = f"{self.start}|" + ",".join(f"{op}{n}" for op, n in self.ops)
        return int(hashlib.sha1(key.encode()).hexdigest(), 16) % 100

    @property
    def split(self) -> str:
        return next(name for name, buckets in SPLITS.items() if self.bucket in buckets)

    def long(self) -> str:
        """One clause per step with its running result, then the answer."""
        v = self.values()
        steps = [f"{a} {SYMBOL[op]} {n} = {b}."
                 for a, (op, n), b in zip(v[:-1], self.ops, v[1:], strict=True)]
        return " ".join([*steps, f"#### {v[-1]}"])


def draw_chain(rng: random.Random, steps: int, max_value: int, max_operand: int) -> Chain:
    """A random chain of ``steps`` operations whose running values stay in 1..max_value."""
    value = rng.randint(2, max_value // 2)
    start, ops = value, []
    while len(ops) < steps:
        options = [("add", n) for n in range(2, max_operand + 1) if value + n <= max_value]
        options += [("sub", n) for n in range(2, max_operand + 1) if value - n >= 1]
        muls = [("mul", m) for m in (2, 3, 4) if value * m <= max_value]
        op = rng.choice(muls if muls and (not options or rng.random() < MUL_RATE) else options)
        ops.append(op)
        value = apply(value, op)
    return Chain(start, tuple(ops))


def render(chain: Chain, rng: random.Random) -> str:
    """The chain in English: a name, an object, one sentence per step, drawn from ``rng``."""
    name, things = rng.choice(NAMES), rng.choice(THINGS)
    pron = PRONOUNS.get(name, "he")
    words = dict(name=name, things=things, pron=pron, Pron=pron.capitalize(),
                 obj="her" if pron == "she" else "him")
    parts = [rng.choice(START).format(n=chain.start, **words)]
    for op, n in chain.ops:
        template = rng.choice({"add": ADD, "sub": SUB, "mul": MUL}[op])
        parts.append(template.format(n=n, m=n, times=TIMES.get(n, ""), **words))
    parts.append(rng.choice(QUESTION).format(**words))
    return " ".join(parts)


def problems(split: str, n: int, seed: int, steps: int, max_value: int = 99,
             max_operand: int = 20) -> list[Problem]:
    """``n`` distinct problems (distinct chains) of ``split``, drawn from the stream ``seed``."""
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is not allowed: one of {tuple(SPLITS)}")
    rng = random.Random(f"words|{split}|{seed}|{steps}|{max_value}|{max_operand}")
    seen: set[Chain] = set()
    out = []
    while len(out) < n:
        chain = draw_chain(rng, steps, max_value, max_operand)
        if chain.split != split or chain in seen:
            continue
        seen.add(chain)
        answer = str(chain.values()[-1])
        out.append(Problem(render(chain, rng), chain.long(), f"#### {answer}", answer))
    return out
