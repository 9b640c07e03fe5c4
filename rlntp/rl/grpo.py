"""GRPO (Shao et al., 2024): group-normalised advantages and the clipped surrogate, as in TRL.

For each prompt, G = ``num_generations`` responses are sampled; a response's advantage is its
reward minus the group mean, divided by the group standard deviation (+1e-4; a group with equal
rewards gives 0). The loss (TRL's ``loss_type="grpo"``) averages the per-token clipped surrogate
over each response, then over responses::

    ratio = exp(logp - logp_old)
    per_token = -min(ratio * A, clip(ratio, 1 - eps, 1 + eps) * A) + beta * KL(ref || model)

The batch is reused ``num_iterations`` times (PPO-style): the ratio and its clipping only matter
from the second update on. With ``beta > 0`` the k3 estimator of the KL to the reference model
(the starting checkpoint) is added per token.
"""

from __future__ import annotations

import torch

from rlntp.config import RLLoopPart
from rlntp.rl.rollout import Rollout, response_logprobs
from rlntp.train import optimizer_step


def group_advantages(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """(reward - group mean) / (group std + 1e-4), for consecutive groups of ``group_size``."""
    r = rewards.view(-1, group_size)
    return ((r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True) + 1e-4)).flatten()


def grpo_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
              mask: torch.Tensor, epsilon: float = 0.2, beta: float = 0.0,
              ref_logprobs: torch.Tensor | None = None) -> torch.Tensor:
    """The clipped GRPO loss: per-token terms (N, W) averaged per response, then over responses."""
    ratio = torch.exp(logprobs - old_logprobs)
    adv = advantages[:, None]
    per_token = -torch.min(ratio * adv, torch.clamp(ratio, 1 - epsilon, 1 + epsilon) * adv)
    if beta != 0.0:
        delta = ref_logprobs - logprobs
        per_token = per_token + beta * (torch.exp(delta) - delta - 1)
    m = mask.float()
    return ((per_token * m).sum(-1) / m.sum(-1).clamp(min=1.0)).mean()


def update(model: torch.nn.Module, opt: torch.optim.Optimizer, ro: Rollout, cfg: RLLoopPart,
           temperature: float, ref: torch.nn.Module | None, generator: torch.Generator
           ) -> dict[str, float]:
    """``num_iterations`` gradient steps on one rollout; returns the last loss."""
    adv = group_advantages(ro.reward, cfg.num_generations)
    ref_logp = None
    if cfg.beta != 0.0:
        with torch.no_grad():
            ref_logp = response_logprobs(ref, ro.prompts, ro.responses, temperature)
    for _ in range(cfg.num_iterations):
        logp = response_logprobs(model, ro.prompts, ro.responses, temperature)
        loss = grpo_loss(logp, ro.logprobs, adv, ro.mask, cfg.epsilon, cfg.beta, ref_logp)
        optimizer_step(model, opt, loss, cfg.max_grad_norm)
    return {"loss": loss.item()}
