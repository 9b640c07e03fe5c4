"""REINFORCE (Williams, 1992) with a mean baseline.

The advantage of a response is its reward minus the mean reward of the batch; the loss is
``-mean_i A_i * sum_t log pi(token_it)``, the plain policy gradient of the expected reward.
"""

from __future__ import annotations

import torch

from rlntp.config import RLLoopPart
from rlntp.rl.rollout import Rollout, response_logprobs
from rlntp.train import optimizer_step


def reinforce_loss(logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor
                   ) -> torch.Tensor:
    """``-mean_i A_i * (sum of the response's token log-probs)``."""
    return -(advantages * (logprobs * mask).sum(-1)).mean()


def update(model: torch.nn.Module, opt: torch.optim.Optimizer, ro: Rollout, cfg: RLLoopPart,
           temperature: float, ref: torch.nn.Module | None, generator: torch.Generator
           ) -> dict[str, float]:
    """One gradient step on one rollout; returns the loss."""
    adv = ro.reward - ro.reward.mean()
    logp = response_logprobs(model, ro.prompts, ro.responses, temperature)
    loss = reinforce_loss(logp, adv, ro.mask)
    optimizer_step(model, opt, loss, cfg.max_grad_norm)
    return {"loss": loss.item()}
