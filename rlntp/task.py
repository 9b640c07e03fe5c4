"""The one interface between a task's data and everything above it (training, RL, evaluation).

A *task* is a prompt distribution with two demonstration formats: a long one (a chain of
thought) and a short one (the answer alone), mixed with probability ``p_cot``. Prompts of one
task all have the same length, responses end with EOS. Next-token training asks a task for
batches; RL and evaluation ask it for prompts, then to judge the responses a model wrote.

- :class:`Task`: what a task provides (``ParityTask`` and ``MultiplicationTask`` implement it).
- :class:`Batch`: a next-token training batch.
- :func:`final_token`, :func:`ended`, :func:`response_lengths`: helpers every task shares.

Rewards (``REWARDS``), 1.0 or 0.0 per response, never for a truncated one (no EOS):

- ``e2e`` (end to end): the answer is right, whatever came before it.
- ``cot`` (chain of thought, ours): a long response is the exact chain and answer; a short one
  the exact answer.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol, runtime_checkable

import torch

REWARDS = ("e2e", "cot")


@dataclasses.dataclass
class Batch:
    """A next-token training batch."""

    tokens: torch.Tensor       # (B, T) int64: prompt, response, EOS, padding
    target_mask: torch.Tensor  # (B, T-1) bool: which next-token targets tokens[:, 1:] count
    is_long: torch.Tensor      # (B,) bool: a long (chain-of-thought) demonstration


@runtime_checkable
class Task(Protocol):
    """A long/short demonstration mixture, as the model and the RL loop see it."""

    vocab_size: int      # tokens 0..vocab_size-1
    eos: int             # ends every response
    prompt_len: int      # tokens of every prompt
    long_len: int        # tokens before EOS of a right long response
    short_len: int       # tokens before EOS of a right short response

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
                     device: str | torch.device = "cpu") -> Batch:
        """``n`` fresh demonstrations, long with probability ``p_cot`` (CPU generator)."""
        ...

    def sample_prompts(self, n: int, generator: torch.Generator,
                       device: str | torch.device = "cpu") -> torch.Tensor:
        """``n`` fresh prompts (n, prompt_len) int64 (CPU generator)."""
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
