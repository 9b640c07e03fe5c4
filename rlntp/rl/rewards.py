"""Parity rewards on sampled responses: 1.0 for a correct response, 0.0 otherwise.

- ``e2e`` (end-to-end): the final token (the one before EOS) is the parity.
- ``cot`` (chain of thought, ours): a long response must be the whole chain, every token
  correct; a short one (one token) must be the parity. Any other length earns 0.

A truncated response (no EOS within ``chain_len + 1`` tokens) earns 0 under both rewards.
Worked example, d = 3, x = 1 1 0 (chain 1 0 0, parity 0)::

    response        e2e   cot
    1 0 0 <eos>     1     1
    0 1 0 <eos>     1     0     (right answer, wrong chain)
    0 <eos>         1     1
    1 <eos>         0     0
    <eos>           0     0     (empty)
"""

from __future__ import annotations

import torch

from rlntp.data.parity import ParityTask, prefix_parities
from rlntp.evaluate import final_token

REWARDS = ("e2e", "cot")


def e2e_reward(responses: torch.Tensor, lengths: torch.Tensor, parity: torch.Tensor
               ) -> torch.Tensor:
    """1.0 where the token before EOS equals ``parity`` (empty or truncated responses: 0.0)."""
    ended = lengths < responses.shape[1]
    return ((final_token(responses, lengths) == parity) & ended).float()


def cot_reward(task: ParityTask, prompts: torch.Tensor, responses: torch.Tensor,
               lengths: torch.Tensor) -> torch.Tensor:
    """1.0 for the exact chain (then EOS) or the exact one-token answer (then EOS), else 0.0."""
    L = task.chain_len
    chain = prefix_parities(prompts)[:, task.chain_positions]             # (B, L)
    W = min(L, responses.shape[1])
    long_ok = (lengths == L) & (responses[:, :W] == chain[:, :W]).all(1)
    short_ok = (lengths == 1) & (responses[:, 0] == chain[:, -1])
    ended = lengths < responses.shape[1]
    return ((long_ok | short_ok) & ended).float()

def reward(name: str, task: ParityTask, prompts: torch.Tensor, responses: torch.Tensor,
           lengths: torch.Tensor) -> torch.Tensor:
    """The reward ``name`` ("e2e" or "cot") of each response, shape (B,)."""
    if name == "e2e":
        return e2e_reward(responses, lengths, prefix_parities(prompts)[:, -1])
    if name == "cot":
        return cot_reward(task, prompts, responses, lengths)
    raise ValueError(f"reward={name!r}: allowed {REWARDS}")
