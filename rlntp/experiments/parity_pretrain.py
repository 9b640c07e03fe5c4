"""Chapter 1: next-token pre-training on the parity mixture D(p_cot) (paper Fig. 2).

One *run* is one (p_cot, seed): a fresh GPT trained online on D(p_cot), evaluated every
``eval_every`` iterations on ``eval_size`` fixed test prompts (greedy and temperature 1), with
checkpoints every ``ckpt_every`` iterations that the RL chapter branches from. Runs are
resumable and cached under ``cfg.path / "runs"``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

import torch

from rlntp.config import ExperimentConfig, require
from rlntp.data.parity import VOCAB_SIZE, ParityTask, sample_batch, sample_prompts
from rlntp.evaluate import evaluate_parity
from rlntp.models.gpt import GPT, GPTConfig
from rlntp.parallel import run_jobs
from rlntp.results import metric_rows, source_hash
from rlntp.train import train_ntp

EXPERIMENT = "parity_pretrain"


@dataclasses.dataclass(frozen=True)
class ParityPretrainConfig(ExperimentConfig):
    """Next-token pre-training on D(p_cot). Defaults are the ``cpu`` preset."""

    CHAPTER: ClassVar[str] = "01_parity_pretraining"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": dict(d=8, p_cot_values=(0.1, 0.5), seeds=(0,), iters=60, batch_size=32,
                      eval_every=30, eval_size=64, ckpt_every=30, leap_p_cot_values=(0.25,),
                      workers=1),
        "cpu": {},
        "paper": dict(d=50, iters=50_000, batch_size=256, n_layer=4, n_embd=128, n_head=4,
                      eval_every=1000, eval_size=640, ckpt_every=1000,
                      p_cot_values=(0.05, 0.1, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6)),
    }

    d: int = 16                       # input bits
    p_cot_values: tuple[float, ...] = (0.05, 0.15, 0.25, 0.3, 0.4, 0.6)
    iters: int = 1500                 # pre-training iterations (fresh batch each)
    batch_size: int = 64
    lr: float = 1e-3                  # AdamW, linear warm-up then constant (ours)
    n_layer: int = 2
    n_embd: int = 64
    n_head: int = 2
    eval_every: int = 100
    eval_size: int = 512              # fixed test prompts per evaluation
    ckpt_every: int = 250             # checkpoints kept for RL to branch from
    chain_step: int = 1               # 1 = the plain chain; k = leap-k chain
    leap_step: int = 2                # the chain step of the leap-k side experiment
    leap_p_cot_values: tuple[float, ...] = (0.25,)  # p_cot below 1/3 for the leap run

    def validate(self) -> None:
        require(self.d >= 2, "d", self.d, "an integer >= 2")
        require(all(0 < p <= 1 for p in self.p_cot_values), "p_cot_values", self.p_cot_values,
                "values in (0, 1]")
        for name in ("iters", "batch_size", "n_layer", "n_embd", "n_head", "eval_every",
                     "eval_size", "ckpt_every"):
            require(getattr(self, name) >= 1, name, getattr(self, name), "an integer >= 1")
        require(self.lr > 0, "lr", self.lr, "a positive float")
        require(self.n_embd % self.n_head == 0, "n_head", self.n_head,
                f"a divisor of n_embd={self.n_embd}")
        require(1 <= self.chain_step <= self.d, "chain_step", self.chain_step, f"1..d (d={self.d})")
        require(1 <= self.leap_step <= self.d, "leap_step", self.leap_step, f"1..d (d={self.d})")
        require(all(0 < p <= 1 for p in self.leap_p_cot_values), "leap_p_cot_values",
                self.leap_p_cot_values, "values in (0, 1]")

    def model_config(self, task: ParityTask) -> GPTConfig:
        return GPTConfig(VOCAB_SIZE, task.seq_len, self.n_layer, self.n_head, self.n_embd)


def run_dir(cfg: ParityPretrainConfig, p_cot: float, seed: int, chain_step: int) -> Path:
    """Where one run keeps its checkpoints: keyed by the config and the code version."""
    key = cfg.key("p_cot_values", "seeds", "leap_p_cot_values", "chain_step")
    return cfg.path / "runs" / f"{key}-{source_hash()}" / f"p{p_cot:g}-k{chain_step}-s{seed}"


def pretrain_run(cfg: ParityPretrainConfig, p_cot: float, seed: int, chain_step: int | None = None
                 ) -> list[tuple[int, dict[str, float]]]:
    """Pre-train one model on D(p_cot); return its evaluation history ``[(step, metrics)]``."""
    chain_step = cfg.chain_step if chain_step is None else chain_step
    task = ParityTask(cfg.d, p_cot, chain_step)
    device = cfg.torch_device
    torch.manual_seed(seed)
    model = GPT(cfg.model_config(task)).to(device)
    x, parity = sample_prompts(task, cfg.eval_size, torch.Generator().manual_seed(10_000 + seed), device)

    def sample(g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        b = sample_batch(task, cfg.batch_size, g, device)
        return b.tokens, b.target_mask

    return train_ntp(
        model, sample, iters=cfg.iters, lr=cfg.lr, seed=seed,
        run_dir=run_dir(cfg, p_cot, seed, chain_step),
        evaluate=lambda m, step: evaluate_parity(m, task, x, parity, seed=20_000 + step),
        eval_every=cfg.eval_every, ckpt_every=cfg.ckpt_every,
        desc=f"p_cot={p_cot:g} seed={seed}",
    )


def history_rows(history: list[tuple[int, dict[str, float]]], cfg: ParityPretrainConfig,
                 p_cot: float, seed: int, experiment: str = EXPERIMENT) -> list[dict[str, Any]]:
    """Tidy metric rows of one run (sequences_seen = step x batch_size)."""
    rows: list[dict[str, Any]] = []
    for step, metrics in history:
        rows += metric_rows(metrics, experiment=experiment, phase="pretrain", p_cot=p_cot, d=cfg.d,
                            seed=seed, step=step, sequences_seen=step * cfg.batch_size)
    return rows


def run_all(cfg: ParityPretrainConfig) -> list[dict[str, Any]]:
    """Every (p_cot, seed) run of the main sweep and of the leap-k side experiment, as rows."""
    jobs = [(cfg, p, s, cfg.chain_step) for p in cfg.p_cot_values for s in cfg.seeds]
    jobs += [(cfg, p, s, cfg.leap_step) for p in cfg.leap_p_cot_values for s in cfg.seeds]
    histories = run_jobs(pretrain_run, jobs, cfg.n_workers, desc="pre-training runs")
    rows: list[dict[str, Any]] = []
    for (_, p, s, k), hist in zip(jobs, histories, strict=True):
        exp = EXPERIMENT if k == cfg.chain_step else f"{EXPERIMENT}_leap{k}"
        rows += history_rows(hist, cfg, p, s, exp)
    return rows
