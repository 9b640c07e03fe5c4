"""Evaluation of a model on a task's fixed test prompts, greedy and at temperature 1.

A response is correct when the task says so (parity: its final token, the one before EOS, is
the parity; an empty response is wrong). Its length is the number of tokens before EOS; the task
says which lengths are *long* (chain of thought) and which length is the full chain.
"""

from __future__ import annotations

import torch

from rlntp.models.gpt import generate
from rlntp.task import Task


def response_metrics(task: Task, prompts: torch.Tensor, responses: torch.Tensor,
                     lengths: torch.Tensor, mode: str) -> dict[str, float]:
    """acc, length statistics and long/short split for one decoding ``mode`` ("greedy"/"sample").

    ``frac_len_d``: the fraction with exactly the long format's length (d for parity).
    """
    correct = task.correct(prompts, responses, lengths).float()
    long = task.is_long(lengths)
    lf = lengths.float()
    m = {
        f"acc_{mode}": correct.mean().item(),
        f"len_median_{mode}": lf.median().item(),
        f"len_mean_{mode}": lf.mean().item(),
        f"frac_len_d_{mode}": (lengths == task.long_len).float().mean().item(),
        f"frac_long_{mode}": long.float().mean().item(),
    }
    if long.any():
        m[f"acc_{mode}_long"] = correct[long].mean().item()
    if (~long).any():
        m[f"acc_{mode}_short"] = correct[~long].mean().item()
    return m


def evaluate(model: torch.nn.Module, task: Task, prompts: torch.Tensor, seed: int,
             return_lengths: bool = False) -> dict[str, float]:
    """Metrics on test ``prompts``: greedy and temperature-1 sampling (seeded by ``seed``).

    With ``return_lengths`` the sampled lengths are included (key ``"lengths_sample"``, a list),
    for length histograms.
    """
    gen = torch.Generator(device=prompts.device).manual_seed(seed)
    out: dict = {}
    for mode, temp in (("greedy", 0.0), ("sample", 1.0)):
        resp, lengths = generate(model, prompts, task.max_new_tokens, temp, task.eos, gen)
        out.update(response_metrics(task, prompts, resp, lengths, mode))
    if return_lengths:
        out["lengths_sample"] = lengths.tolist()
    return out
