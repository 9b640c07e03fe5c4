"""STaR (Zelikman et al., 2022): sample, keep the correct responses, fine-tune on them (a round).

One round samples ``star_samples`` responses (one per fresh prompt) at temperature tau, keeps
those with reward 1 and trains on them with the next-token loss for ``star_epochs`` passes in
mini-batches (continuing from the current model, ours). If long responses are always correct and
short ones half the time, the long fraction of the kept set is ``2 p / (1 + p)`` for a long
fraction p of the samples: the recursion ``p_n = 2 p_{n-1} / (1 + p_{n-1})`` of the paper, when
the fine-tuned model samples long as often as its training set is long.
"""

from __future__ import annotations

import torch

from rlntp.config import RLLoopPart
from rlntp.rl.rollout import Rollout
from rlntp.train import ntp_loss, optimizer_step


def star_recursion(p0: float, rounds: int, shortfall: float = 0.0) -> list[float]:
    """``[p_0, p_1, ..., p_rounds]`` with ``p_n = 2 p_{n-1} / (1 + p_{n-1}) + shortfall`` (``p0``
    may be an array: element-wise)."""
    ps = [p0]
    for _ in range(rounds):
        ps.append(2 * ps[-1] / (1 + ps[-1]) + shortfall)
    return ps


def update(model: torch.nn.Module, opt: torch.optim.Optimizer, ro: Rollout, cfg: RLLoopPart,
           temperature: float, ref: torch.nn.Module | None, generator: torch.Generator
           ) -> dict[str, float]:
    """Fine-tune on the rewarded responses of ``ro``; returns the kept fraction and the loss."""
    keep = ro.reward > 0
    tokens, target_mask = ro.tokens[keep], ro.target_mask[keep]
    n, losses = len(tokens), []
    model.train()
    for _ in range(cfg.star_epochs):
        order = torch.randperm(n, generator=generator).to(tokens.device)
        for i in range(0, n, cfg.star_batch_size):
            idx = order[i:i + cfg.star_batch_size]
            loss = ntp_loss(model, tokens[idx], target_mask[idx])
            optimizer_step(model, opt, loss, cfg.max_grad_norm)
            losses.append(loss.item())
    return {"kept_frac": n / len(keep), "loss": sum(losses) / max(len(losses), 1)}
