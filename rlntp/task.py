"""The one interface between a task's data and everything above it (training, RL, evaluation).

A *task* is a prompt distribution with two demonstration formats: a long one (a chain of
thought) and a short one (the answer alone), mixed with probability ``p_cot``. Prompts of one
task all have the same length, responses end with EOS. Next-token training asks a task for
batches; RL and evaluation ask it for prompts, then to judge the responses a model wrote.

- :class:`Task`: what a task provides (``ParityTask`` and ``MultiplicationTask`` implement it).
- :class:`Batch`: a next-token training batch.
- :class:`MixtureTask`: the part every task shares, written once: batches, rewards, lengths. A task
  derives from it and writes its prompts, its two reference responses, ``correct`` and ``format``.
- :func:`assemble_batch`, :func:`matches_reference`: the batch layout and the ``cot`` check.
- :func:`final_token`, :func:`ended`, :func:`response_lengths`: helpers every task shares.
- :class:`TaskEntry`: a task as ``python -m rlntp.data`` offers it; a task module declares one as
  ``TASK`` and :data:`rlntp.data.TASKS` finds it.

Held out by construction: every prompt belongs to one split, ``train`` or ``test``, by a fixed
hash of its tokens (:func:`is_test`, one prompt in :data:`TEST_EVERY`). Training batches and RL
prompts are drawn from ``train`` only, evaluation prompts from ``test`` only, so no test prompt
is ever trained on, whatever the size of the prompt space.

Rewards (``REWARDS``), 1.0 or 0.0 per response, never for a truncated one (no EOS):

- ``e2e`` (end to end): the answer is right, whatever came before it.
- ``cot`` (chain of thought, ours): a long response is the exact chain and answer; a short one
  the exact answer.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import torch

REWARDS = ("e2e", "cot")
SPLITS = ("train", "test")
TEST_EVERY = 8  # one prompt in 8 is a test prompt (1/8: a large test set at d = 16, 8,192 prompts)
_PRIME = 2_147_483_647  # the prompt hash is a polynomial modulo this prime, then mixed


def is_test(prompts: torch.Tensor) -> torch.Tensor:
    """(N,) bool: the prompt (a row of token ids) is in the held-out test split. A fixed hash of
    its tokens, the same on every machine, run and seed; small integers only (no overflow)."""
    h = torch.zeros(len(prompts), dtype=torch.long, device=prompts.device)
    for column in prompts.long().T:
        h = (h * 1_000_003 + column + 1) % _PRIME
    return (h * 2_654_435_761 % 2**32) // (2**32 // TEST_EVERY) == 0


@dataclasses.dataclass
class Batch:
    """A next-token training batch."""

    tokens: torch.Tensor       # (B, T) int64: prompt, response, EOS, padding
    target_mask: torch.Tensor  # (B, T-1) bool: which next-token targets tokens[:, 1:] count
    is_long: torch.Tensor      # (B,) bool: a long (chain-of-thought) demonstration

    def to(self, device: str | torch.device) -> Batch:
        return Batch(self.tokens.to(device), self.target_mask.to(device), self.is_long.to(device))


@runtime_checkable
class Task(Protocol):
    """A long/short demonstration mixture, as the model and the RL loop see it."""

    vocab_size: int      # tokens 0..vocab_size-1
    eos: int             # ends every response
    prompt_len: int      # tokens of every prompt
    long_len: int        # tokens before EOS of a right long response
    short_len: int       # tokens before EOS of a right short response

    @property
    def size(self) -> int:
        """The task's size (parity: d bits; multiplication: n digits), the metrics' ``d`` column."""
        ...

    @property
    def label(self) -> str:
        """A short name of the task's parameters, for folder names and progress bars."""
        ...

    @property
    def max_new_tokens(self) -> int:
        """The generation budget: a long response and its EOS."""
        ...

    @property
    def seq_len(self) -> int:
        """Longest sequence: prompt, long response, EOS (the model's context)."""
        ...

    def sample_batch(self, n: int, generator: torch.Generator,
                     device: str | torch.device = "cpu", split: str = "train") -> Batch:
        """``n`` fresh demonstrations of ``split``, long with probability ``p_cot`` (CPU generator)."""
        ...

    def sample_prompts(self, n: int, generator: torch.Generator,
                       device: str | torch.device = "cpu", split: str = "train") -> torch.Tensor:
        """``n`` fresh prompts (n, prompt_len) int64 of ``split`` (CPU generator)."""
        ...

    def correct(self, prompts: torch.Tensor, responses: torch.Tensor, lengths: torch.Tensor
                ) -> torch.Tensor:
        """(N,) bool: the response's answer is right (truncation not checked)."""
        ...

    def reward(self, prompts: torch.Tensor, responses: torch.Tensor, lengths: torch.Tensor,
               kind: str) -> torch.Tensor:
        """(N,) float: the reward ``kind`` (one of ``REWARDS``) of each response."""
        ...

    def is_long(self, lengths: torch.Tensor) -> torch.Tensor:
        """(N,) bool: the response is in the long format (by its length)."""
        ...

    def format(self, tokens: torch.Tensor) -> str:
        """One sequence as text, for people (padding after the first EOS dropped)."""
        ...


def assemble_batch(prompts: torch.Tensor, long: torch.Tensor, short: torch.Tensor,
                   is_long: torch.Tensor, eos: int, pad: int) -> Batch:
    """Each prompt followed by its long or its short response, EOS, then ``pad`` to a common width.

    ``prompts`` (B, P), ``long`` (B, L) and ``short`` (B, S) hold token ids, S <= L; ``is_long``
    (B,) picks the response. Token layout (T = P + L + 1)::

        position   0 .. P-1 | P .. P+len-1 | P+len | P+len+1 .. T-1
        token      prompt   | response     | EOS   | pad (masked)

    ``target_mask[:, t]`` says whether ``tokens[:, t + 1]`` is a training target: the response
    tokens and the first EOS are; the prompt and the padding are not.
    """
    n, P = prompts.shape
    L, S = long.shape[1], short.shape[1]

    def with_eos(response: torch.Tensor) -> torch.Tensor:  # (B, L + 1): response, EOS, padding
        tail = torch.full((n, L + 1 - response.shape[1]), pad, dtype=torch.long, device=prompts.device)
        tail[:, 0] = eos
        return torch.cat([response, tail], 1)

    tokens = torch.cat([prompts, torch.where(is_long[:, None], with_eos(long), with_eos(short))], 1)
    resp_len = torch.where(is_long, L, S)
    t = torch.arange(P + L, device=prompts.device)
    target_mask = (t[None, :] >= P - 1) & (t[None, :] < P + resp_len[:, None])
    return Batch(tokens, target_mask, is_long)


def matches_reference(responses: torch.Tensor, lengths: torch.Tensor, long: torch.Tensor,
                      short: torch.Tensor) -> torch.Tensor:
    """(N,) bool: the tokens before EOS are exactly the long or exactly the short reference.

    ``responses`` (N, W) with ``lengths`` (N,) tokens before EOS; references (N, L) and (N, S).
    """
    ok = torch.zeros_like(lengths, dtype=torch.bool)
    for ref in (long, short):
        w = min(ref.shape[1], responses.shape[1])  # a wider reference can't match: lengths <= W
        ok |= (lengths == ref.shape[1]) & (responses[:, :w] == ref[:, :w]).all(1)
    return ok


class MixtureTask(abc.ABC):
    """What every :class:`Task` shares, written once; a task derives from it (a frozen dataclass).

    The task gives ``p_cot``, ``vocab_size``, ``eos``, ``pad`` (the token after EOS in a batch),
    ``prompt_len``, ``long_len``, ``short_len``, ``label``, :meth:`draw_prompts` (uniform over
    the whole prompt space), :meth:`references`, and the methods ``correct`` and ``format`` of
    :class:`Task`.
    """

    p_cot: float
    eos: int
    pad: int
    prompt_len: int
    long_len: int
    short_len: int

    @abc.abstractmethod
    def draw_prompts(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` prompts (n, prompt_len) int64 drawn from the whole prompt space, on the CPU."""

    @abc.abstractmethod
    def references(self, prompts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The right long (N, long_len) and short (N, short_len) responses (no EOS) to prompts."""

    def sample_prompts(self, n: int, generator: torch.Generator,
                       device: str | torch.device = "cpu", split: str = "train") -> torch.Tensor:
        """``n`` prompts of ``split`` (``train`` or ``test``, :func:`is_test`): draws of
        :meth:`draw_prompts`, the other split's left out, in order; moved to ``device``."""
        if split not in SPLITS:
            raise ValueError(f"split={split!r}: allowed {SPLITS}")
        kept, have, drawn = [], 0, 0
        while have < n:
            x = self.draw_prompts(2 * (n - have) + 16, generator)
            x = x[is_test(x) == (split == "test")]
            kept.append(x)
            have, drawn = have + len(x), drawn + 2 * (n - have) + 16
            if have == 0 and drawn > 100_000:
                raise ValueError(f"{self.label}: no {split} prompt in {drawn:,} draws (the prompt "
                                 "space is too small to split)")
        return torch.cat(kept)[:n].to(device)

    @property
    def max_new_tokens(self) -> int:
        return self.long_len + 1

    @property
    def seq_len(self) -> int:
        return self.prompt_len + self.long_len + 1

    def sample_batch(self, n: int, generator: torch.Generator,
                     device: str | torch.device = "cpu", split: str = "train") -> Batch:
        """``n`` fresh demonstrations of ``split``, long with probability ``p_cot``: drawn on the
        CPU generator (the prompts, then which are long), moved to ``device``."""
        prompts = self.sample_prompts(n, generator, split=split)
        is_long = torch.rand(n, generator=generator) < self.p_cot
        return assemble_batch(prompts, *self.references(prompts), is_long, self.eos, self.pad).to(device)

    def reward(self, prompts: torch.Tensor, responses: torch.Tensor, lengths: torch.Tensor,
               kind: str) -> torch.Tensor:
        """(N,) float: ``e2e`` = ``correct``; ``cot`` = exactly the long or the short reference.
        Either way the response must have ended: a truncated one earns 0."""
        check_reward_kind(kind)
        if kind == "e2e":
            ok = self.correct(prompts, responses, lengths)
        else:
            ok = matches_reference(responses, lengths, *self.references(prompts))
        return (ok & ended(responses, lengths)).float()

    def is_long(self, lengths: torch.Tensor) -> torch.Tensor:
        """(N,) bool: longer than a short response."""
        return lengths > self.short_len


def final_token(responses: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The token before EOS of each response (-1 for an empty one)."""
    idx = (lengths - 1).clamp_min(0)
    last = responses.gather(1, idx[:, None]).squeeze(1)
    return torch.where(lengths > 0, last, torch.full_like(last, -1))


def ended(responses: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(N,) bool: the response has an EOS within its width (it was not truncated)."""
    return lengths < responses.shape[1]


def response_lengths(responses: torch.Tensor, eos: int) -> torch.Tensor:
    """Tokens before the first EOS of each row (the row's width when it has none)."""
    is_eos = responses == eos
    return torch.where(is_eos.any(1), is_eos.float().argmax(1), responses.shape[1])


def check_reward_kind(kind: str) -> None:
    if kind not in REWARDS:
        raise ValueError(f"reward={kind!r}: allowed {REWARDS}")


def check_p_cot(p_cot: float) -> None:
    if not 0.0 <= p_cot <= 1.0:
        raise ValueError(f"p_cot={p_cot}: need 0 <= p_cot <= 1")


@dataclasses.dataclass(frozen=True)
class Param:
    """One argument of a task's constructor, as the command line offers it (``--NAME``)."""

    type: Callable[[str], Any]
    default: Any
    help: str


@dataclasses.dataclass(frozen=True)
class TaskEntry:
    """A synthetic task as ``python -m rlntp.data NAME`` offers it: its name, its constructor,
    what it is, and its arguments by name."""

    name: str
    make: Callable[..., Task]
    help: str
    params: dict[str, Param]

    def build(self, **values: Any) -> Task:
        """The task with these arguments, the others at their defaults."""
        return self.make(**{name: p.default for name, p in self.params.items()} | values)


P_COT = Param(float, 0.5, "fraction of long demonstrations")
