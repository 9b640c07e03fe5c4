"""The rollout every RL method shares: sample responses with KV caching, score them.

A rollout of P prompts with group size G holds N = P * G responses (each prompt's G responses
are consecutive rows), padded with EOS to ``W = task.max_new_tokens`` tokens, their lengths, the
per-token log-probabilities under the sampling policy (the model's logits divided by the
temperature, as in TRL; recorded while sampling, no second pass), which tokens the policy chose
(``mask``: the response and its EOS) and the reward of each response (the task's ``reward`` of
the run's kind).
"""

from __future__ import annotations

import dataclasses

import torch

from rlntp.models.gpt import generate
from rlntp.task import Task


@dataclasses.dataclass
class Rollout:
    prompts: torch.Tensor    # (N, P) int64
    responses: torch.Tensor  # (N, W) int64, EOS after the first EOS
    lengths: torch.Tensor    # (N,) tokens before EOS (W when truncated)
    mask: torch.Tensor       # (N, W) bool: the tokens the policy chose (response + first EOS)
    logprobs: torch.Tensor   # (N, W) log-probs of the chosen tokens (meaningless where ~mask)
    reward: torch.Tensor     # (N,) float

    @property
    def tokens(self) -> torch.Tensor:
        """Prompt and response, (N, P + W)."""
        return torch.cat([self.prompts, self.responses], dim=1)

    @property
    def target_mask(self) -> torch.Tensor:
        """The mask of :func:`rlntp.train.ntp_loss` for ``tokens``: predict the response + EOS."""
        prompt = torch.zeros(self.mask.shape[0], self.prompts.shape[1] - 1, dtype=torch.bool,
                             device=self.mask.device)
        return torch.cat([prompt, self.mask], dim=1)


def response_logprobs(model: torch.nn.Module, prompts: torch.Tensor, responses: torch.Tensor,
                      temperature: float) -> torch.Tensor:
    """Log-probs (N, W) of each response token under softmax(logits / temperature), one pass."""
    logits, _ = model(torch.cat([prompts, responses], dim=1)[:, :-1])
    logits = logits[:, prompts.shape[1] - 1:].float() / temperature
    return torch.log_softmax(logits, dim=-1).gather(-1, responses[..., None]).squeeze(-1)


def chosen_mask(lengths: torch.Tensor, width: int) -> torch.Tensor:
    """(N, W) bool: positions up to and including the first EOS (all W when truncated)."""
    return torch.arange(width, device=lengths.device)[None, :] <= lengths[:, None]


@torch.no_grad()
def rollout(model: torch.nn.Module, task: Task, prompts: torch.Tensor, group_size: int,
            temperature: float, reward_kind: str, generator: torch.Generator) -> Rollout:
    """Sample ``group_size`` responses per prompt at ``temperature`` (> 0) and score them."""
    x = prompts.repeat_interleave(group_size, dim=0)
    responses, lengths, logprobs = generate(model, x, task.max_new_tokens, temperature, task.eos,
                                            generator, with_logprobs=True)
    return Rollout(x, responses, lengths, chosen_mask(lengths, responses.shape[1]), logprobs,
                   task.reward(x, responses, lengths, reward_kind))
