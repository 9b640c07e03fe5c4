"""Named random streams: every random draw of a run comes from one of these, seeded from the
run's seed (and a step where a stream restarts per evaluation or per branch).

| stream             | draws                                        | seed             |
|--------------------|----------------------------------------------|------------------|
| ``model_init``     | the initial weights (torch's global RNG)     | seed             |
| ``train_data``     | next-token training batches                  | seed             |
| ``test_prompts``   | the fixed test prompts of every evaluation   | 10_000 + seed    |
| ``eval_sampling``  | temperature-1 samples of a pre-training eval | 20_000 + step    |
| ``rl_eval_sampling`` | the same during RL                         | 30_000 + step    |
| ``rl_data``        | RL prompts, STaR's shuffling                 | 1_000 * seed + branch step |
| ``rl_sampling``    | RL rollouts                                  | seed             |
| ``linear_threshold`` | chapter 3, experiment 1 (all of a job)     | seed             |
| ``linear_rl``      | chapter 3, experiment 2 (all of a job)       | 10_000 + seed    |
| ``linear_cost``    | chapter 3, experiment 3 at d (all of a job)  | 20_000 + 100 d + seed |

Test prompts depend on the seed only, so every evaluation of a run (pre-training and each of
its RL branches) measures the same prompts.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

STREAMS: dict[str, Callable[[int, int], int]] = {
    "model_init": lambda seed, step: seed,
    "train_data": lambda seed, step: seed,
    "test_prompts": lambda seed, step: 10_000 + seed,
    "eval_sampling": lambda seed, step: 20_000 + step,
    "rl_eval_sampling": lambda seed, step: 30_000 + step,
    "rl_data": lambda seed, step: 1_000 * seed + step,
    "rl_sampling": lambda seed, step: seed,
    "linear_threshold": lambda seed, step: seed,
    "linear_rl": lambda seed, step: 10_000 + seed,
    "linear_cost": lambda seed, d: 20_000 + 100 * d + seed,
}


def stream_seed(stream: str, seed: int, step: int = 0) -> int:
    """The integer seed of ``stream`` for a run's ``seed`` (and ``step``)."""
    return STREAMS[stream](seed, step)


def generator(stream: str, seed: int, step: int = 0, device: str | torch.device = "cpu"
              ) -> torch.Generator:
    """A fresh ``torch.Generator`` on ``device`` seeded for ``stream``."""
    return torch.Generator(device=device).manual_seed(stream_seed(stream, seed, step))


def init_model(seed: int) -> None:
    """Seed torch's global RNG, which initialises model weights."""
    torch.manual_seed(stream_seed("model_init", seed))


def test_prompts(task, n: int, seed: int, device: str | torch.device = "cpu") -> torch.Tensor:
    """The ``n`` fixed test prompts of ``seed`` for ``task`` (a :class:`rlntp.task.Task`), from
    its held-out test split (never trained on)."""
    return task.sample_prompts(n, generator("test_prompts", seed), device, split="test")
