"""n x n digit multiplication with a long (partial products) or short (answer only) response.

The format of Deng et al. (2023)'s public 4x4/5x5 "implicit chain of thought" data. Digits are
written least significant first. A prompt is ``a * b||`` (n digits each, leading digit non-zero);
the long response lists the partial products a * b_k (k shift zeros, then n + 1 digits), after
each middle term k = 1..n-2 the running sum in parentheses (n + k + 1 digits), then ``####`` and
the product (2n digits); the short response is ``####`` and the product alone. Worked example,
n = 4, 5431 x 3918 = 21278658 (one line each, the long one wrapped here; ``||`` is glued to its
neighbours, all else is space separated)::

    long:   1 3 4 5 * 8 1 9 3||8 4 4 3 4 + 0 1 3 4 5 0 ( 8 5 7 7 9 0 ) + 0 0 9 7 8 8 4
            ( 8 5 6 5 8 9 4 ) + 0 0 0 3 9 2 6 1 #### 8 5 6 8 7 2 1 2
    short:  1 3 4 5 * 8 1 9 3||#### 8 5 6 8 7 2 1 2

Vocabulary: digits 0..9 are tokens 0..9, then ``*`` ``||`` ``+`` ``(`` ``)`` ``####`` EOS PAD
= 10..17. Token layout of a batch (:func:`rlntp.task.assemble_batch`; P = 2n + 2, L = long_len,
S = short_len = 2n + 1)::

    position  0 .. n-1    n   n+1 .. 2n    2n+1   P .. P+len-1   P+len   P+len+1 .. P+L
    token     a reversed  *   b reversed   ||     response       EOS     PAD padding (masked)

``target_mask[:, t]`` says whether the model is trained to predict ``tokens[:, t + 1]``: only
response tokens and the first EOS count (the prompt and the padding are masked).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import torch

from rlntp.task import P_COT, MixtureTask, Param, TaskEntry, check_p_cot

MUL, SEP, PLUS, LPAR, RPAR, ANS, EOS, PAD = range(10, 18)
VOCAB_SIZE = 18
MAX_DIGITS = 9  # products of two 9-digit numbers fit int64
SYMBOLS = [*"0123456789", "*", "||", "+", "(", ")", "####", "<eos>", "<pad>"]


def _digits(x: torch.Tensor, width: int) -> torch.Tensor:
    """(N,) non-negative ints -> (N, width) digits, least significant first."""
    powers = torch.tensor([10**i for i in range(width)], device=x.device)
    return x[:, None] // powers % 10


def _value(digits: torch.Tensor) -> torch.Tensor:
    """(N, width) digits, least significant first -> (N,) ints."""
    return (digits * torch.tensor([10**i for i in range(digits.shape[1])], device=digits.device)).sum(1)


def _fill(value: int, like: torch.Tensor, width: int = 1) -> torch.Tensor:
    """(len(like), width) copies of token ``value``."""
    return torch.full((len(like), width), value, dtype=torch.long, device=like.device)


def _prompt(a: torch.Tensor, b: torch.Tensor, n: int) -> torch.Tensor:
    """(N, 2n + 2) prompts ``a * b||`` for operands a, b (N,)."""
    return torch.cat([_digits(a, n), _fill(MUL, a), _digits(b, n), _fill(SEP, a)], 1)


def _long(a: torch.Tensor, b: torch.Tensor, n: int) -> torch.Tensor:
    """(N, long_len) reference long responses for operands a, b (N,)."""
    parts, total = [], torch.zeros_like(a)
    for k, bk in enumerate(_digits(b, n).unbind(1)):
        total = total + a * bk * 10**k
        parts += [_fill(0, a, k), _digits(a * bk, n + 1)]  # k shift zeros, then n + 1 digits
        if 1 <= k <= n - 2:
            parts += [_fill(LPAR, a), _digits(total, n + k + 1), _fill(RPAR, a)]
        if k < n - 1:
            parts.append(_fill(PLUS, a))
    return torch.cat([*parts, _short(a, b, n)], dim=1)


def _short(a: torch.Tensor, b: torch.Tensor, n: int) -> torch.Tensor:
    """(N, 2n + 1) reference short responses: ``####`` and the product."""
    return torch.cat([_fill(ANS, a), _digits(a * b, 2 * n)], dim=1)


def long_response(a: int, b: int, digits: int) -> list[int]:
    """The long response (tokens before EOS) for ``a * b``."""
    return _long(torch.tensor([a]), torch.tensor([b]), digits)[0].tolist()


def short_response(a: int, b: int, digits: int) -> list[int]:
    """The short response (tokens before EOS) for ``a * b``."""
    return _short(torch.tensor([a]), torch.tensor([b]), digits)[0].tolist()


def prompt(a: int, b: int, digits: int) -> list[int]:
    """The prompt ``a * b||`` for ``a * b``."""
    return _prompt(torch.tensor([a]), torch.tensor([b]), digits)[0].tolist()


def encode(text: str) -> list[int]:
    """Text in the format above -> token ids."""
    return [SYMBOLS.index(s) for s in text.replace("||", " || ").split()]


class LongParse(NamedTuple):
    partials: list[int]  # a * b_k * 10**k, k = 0..n-1
    sums: list[int]      # running sums after terms 1..n-2
    product: int


def parse_long(line: str | list[int] | torch.Tensor) -> LongParse:
    """The numbers in a long response (or a whole line: the part after ``||``)."""
    toks = encode(line) if isinstance(line, str) else [int(t) for t in line]
    toks = toks[: next((i for i, t in enumerate(toks) if t in (EOS, PAD)), len(toks))]
    toks = toks[toks.index(SEP) + 1:] if SEP in toks else toks
    chain, product = toks[: toks.index(ANS)], toks[toks.index(ANS) + 1:]

    def num(ds: list[int]) -> int:
        return sum(d * 10**i for i, d in enumerate(ds))

    partials, sums, term = [], [], []
    for t in [*chain, PLUS]:
        if t in (PLUS, LPAR, RPAR):
            if term:  # a term ends at + or (, a running sum at ); nothing lies between ) and +
                (sums if t == RPAR else partials).append(num(term))
            term = []
        else:
            term.append(t)
    return LongParse(partials, sums, num(product))


@dataclasses.dataclass(frozen=True)
class MultiplicationTask(MixtureTask):
    """``digits`` x ``digits`` multiplication with long-demonstration fraction ``p_cot``.

    Implements :class:`rlntp.task.Task`.
    """

    digits: int
    p_cot: float

    vocab_size = VOCAB_SIZE
    eos = EOS
    pad = PAD

    def __post_init__(self) -> None:
        if not 1 <= self.digits <= MAX_DIGITS:
            raise ValueError(f"digits={self.digits}: need 1 <= digits <= {MAX_DIGITS}")
        check_p_cot(self.p_cot)

    @property
    def prompt_len(self) -> int:
        return 2 * self.digits + 2

    @property
    def size(self) -> int:
        """The metrics' ``d`` column: the operand digits n."""
        return self.digits

    @property
    def label(self) -> str:
        return f"n{self.digits}-p{self.p_cot:g}"

    @property
    def long_len(self) -> int:
        n = self.digits
        terms = sum(k + n + 1 for k in range(n)) + n - 1  # the partial products and the + between them
        sums = sum(n + k + 3 for k in range(1, n - 1))     # ( running sum ) after terms 1..n-2
        return terms + sums + 1 + 2 * n                    # #### product

    @property
    def short_len(self) -> int:
        return 2 * self.digits + 1

    def operands(self, prompts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The operands a, b (N,) of prompts (N, prompt_len)."""
        n = self.digits
        return _value(prompts[:, :n]), _value(prompts[:, n + 1: 2 * n + 1])

    def draw_prompts(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` prompts (n, prompt_len), operands uniform over n-digit numbers, any split."""
        a, b = torch.randint(10 ** (self.digits - 1), 10**self.digits, (2, n), generator=generator)
        return _prompt(a, b, self.digits)

    def references(self, prompts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The long (N, long_len) and short (N, short_len) responses to prompts (N, prompt_len)."""
        a, b = self.operands(prompts)
        return _long(a, b, self.digits), _short(a, b, self.digits)

    def correct(self, prompts: torch.Tensor, responses: torch.Tensor, lengths: torch.Tensor
                ) -> torch.Tensor:
        """(N,) bool: the first ``####`` comes before EOS and is followed by exactly the product."""
        a, b = self.operands(prompts)
        W, m = responses.shape[1], 2 * self.digits
        is_ans = responses == ANS
        pos = torch.where(is_ans.any(1), is_ans.float().argmax(1), W)  # first ####
        idx = (pos[:, None] + 1 + torch.arange(m, device=responses.device)).clamp_max(W - 1)
        digits_ok = (responses.gather(1, idx) == _digits(a * b, m)).all(1)
        return (pos < lengths) & (lengths - pos - 1 == m) & digits_ok

    def format(self, tokens: torch.Tensor) -> str:
        """One sequence (prompt + response) as text, stopping at the first EOS or PAD."""
        out = ""
        for t in tokens.tolist():
            if t in (EOS, PAD):
                break
            s = SYMBOLS[t]
            out += s if not out or s == "||" or out.endswith("||") else " " + s
        return out


TASK = TaskEntry("mult", MultiplicationTask,
                 "n x n digit multiplication (Deng et al. format), one per line", {
    "digits": Param(int, 4, f"digits per operand (1..{MAX_DIGITS})"),
    "p_cot": P_COT,
})
