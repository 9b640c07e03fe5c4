"""Parity evaluation on fresh test inputs, greedy and at temperature 1.

A response is correct when its final token (the one before EOS) equals the parity; an empty
response is wrong. Its length is the number of tokens before EOS; a *long* response is one
with more than one token.
"""

from __future__ import annotations

import torch

from rlntp.data.parity import EOS, ParityTask
from rlntp.models.gpt import generate


def final_token(responses: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The token before EOS of each response (-1 for an empty one)."""
    idx = (lengths - 1).clamp_min(0)
    last = responses.gather(1, idx[:, None]).squeeze(1)
    return torch.where(lengths > 0, last, torch.full_like(last, -1))


def response_metrics(responses: torch.Tensor, lengths: torch.Tensor, parity: torch.Tensor,
                     chain_len: int, mode: str) -> dict[str, float]:
    """acc, length statistics and long/short split for one decoding ``mode`` ("greedy"/"sample")."""
    correct = (final_token(responses, lengths) == parity).float()
    long = lengths > 1
    lf = lengths.float()
    m = {
        f"acc_{mode}": correct.mean().item(),
        f"len_median_{mode}": lf.median().item(),
        f"len_mean_{mode}": lf.mean().item(),
        f"frac_len_d_{mode}": (lengths == chain_len).float().mean().item(),
        f"frac_long_{mode}": long.float().mean().item(),
    }
    if long.any():
        m[f"acc_{mode}_long"] = correct[long].mean().item()
    if (~long).any():
        m[f"acc_{mode}_short"] = correct[~long].mean().item()
    return m


def evaluate_parity(model: torch.nn.Module, task: ParityTask, x: torch.Tensor, parity: torch.Tensor,
                    seed: int, return_lengths: bool = False) -> dict[str, float]:
    """Metrics on test prompts ``x``: greedy and temperature-1 sampling (seeded by ``seed``).

    With ``return_lengths`` the sampled lengths are included (key ``"lengths_sample"``, a list),
    for length histograms.
    """
    max_new = task.chain_len + 1
    gen = torch.Generator(device=x.device).manual_seed(seed)
    out: dict = {}
    for mode, temp in (("greedy", 0.0), ("sample", 1.0)):
        resp, lengths = generate(model, x, max_new, temp, EOS, gen)
        out.update(response_metrics(resp, lengths, parity, task.chain_len, mode))
    if return_lengths:
        out["lengths_sample"] = lengths.tolist()
    return out
