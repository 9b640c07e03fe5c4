"""Chapter 2: RL after next-token pre-training on parity: GRPO, REINFORCE, STaR (paper Figs. 1, 3).

A pre-training run on D(p_cot) (chapter 1's :func:`pretrain_run`, cached under this chapter's
folder) leaves checkpoints; an *RL run* starts from one of them and trains with one method, one
reward and one sampling temperature tau. It is evaluated every ``eval_every`` iterations (STaR:
every round) on fixed test prompts, greedy and at temperature 1. Sequences seen: pre-training
counts step x batch size, RL counts every generated response (GRPO/REINFORCE: prompts_per_iter
x group_size per iteration, STaR: ``star_samples`` per round).

A run may stop early once greedy accuracy has been >= ``stop_acc`` at ``stop_after``
consecutive evaluations (its history says so: metric ``stopped`` = 1 at the last row).
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import torch

from rlntp.config import ExperimentConfig, require
from rlntp.data.parity import ParityTask, sample_prompts
from rlntp.evaluate import evaluate_parity
from rlntp.experiments.parity_pretrain import (
    ParityPretrainConfig,
    history_rows,
    pretrain_run,
    run_dir,
)
from rlntp.models.gpt import GPT
from rlntp.parallel import run_jobs
from rlntp.results import cached, metric_rows, source_hash
from rlntp.rl.grpo import grpo_step
from rlntp.rl.reinforce import reinforce_step
from rlntp.rl.rewards import REWARDS
from rlntp.rl.rollout import rollout
from rlntp.rl.star import star_step
from rlntp.train import checkpoint_path, make_optimizer

EXPERIMENT = "parity_rl"
METHODS = ("grpo", "reinforce", "star")


@dataclasses.dataclass(frozen=True)
class ParityRLConfig(ExperimentConfig):
    """Pre-training on D(p_cot), then RL from its checkpoints. Defaults are the ``cpu`` preset."""

    CHAPTER: ClassVar[str] = "02_parity_rl"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": dict(d=6, p_cot=0.25, seeds=(0,), pretrain_iters=40, pretrain_batch_size=32,
                      ckpt_every=10, branch_steps=(10, 20, 30), rl_branch=30, rl_iters=4,
                      temperatures=(1.0,), star_rounds=2, star_samples=64, eval_every=2, eval_size=32,
                      pretrain_eval_every=10, grid_seeds=(0,), workers=1),
        "cpu": {},
        "paper": dict(d=50, p_cot=0.25, pretrain_iters=50_000, pretrain_batch_size=256,
                      n_layer=4, n_embd=128, n_head=4, ckpt_every=1000,
                      branch_steps=(5000, 10_000, 20_000, 30_000, 40_000), rl_branch=20_000,
                      rl_iters=1000, star_rounds=10, eval_every=20, eval_size=640,
                      pretrain_eval_every=1000, grid_seeds=None),
    }

    d: int = 16                          # input bits
    p_cot: float = 0.1                   # long-demonstration fraction (below 1/3)
    # pre-training (chapter 1's loop; ours: AdamW, warm-up then constant lr)
    pretrain_iters: int = 700
    pretrain_batch_size: int = 256
    pretrain_lr: float = 1e-3
    pretrain_eval_every: int = 50
    n_layer: int = 1                     # one layer learns the chain fastest on cpu (ours)
    n_embd: int = 64
    n_head: int = 2
    ckpt_every: int = 50
    # RL
    branch_steps: tuple[int, ...] = (150, 300, 600)  # Fig. 1: GRPO from these checkpoints
    rl_branch: int = 600                 # Fig. 3 and STaR start here (a chain-learned checkpoint)
    methods: tuple[str, ...] = METHODS
    rewards: tuple[str, ...] = REWARDS
    temperatures: tuple[float, ...] = (0.75, 1.0, 1.5)
    grid_seeds: tuple[int, ...] | None = (0,)  # seeds of the Fig. 3 grid (None = all seeds)
    rl_iters: int = 400                  # GRPO / REINFORCE iterations
    group_size: int = 8                  # responses per prompt (n = prompts x group = 64)
    prompts_per_iter: int = 8
    lr: float = 1e-4                     # GRPO / REINFORCE learning rate (ours)
    clip_eps: float = 0.2                # GRPO clipping epsilon
    beta: float = 0.0                    # GRPO KL penalty to the starting checkpoint
    updates_per_batch: int = 1           # GRPO gradient steps per rollout (> 1: PPO reuse)
    star_rounds: int = 10
    star_samples: int = 3200             # responses per STaR round (one per fresh prompt)
    star_epochs: int = 2                 # passes over the kept responses per round (ours)
    star_batch_size: int = 64
    star_lr: float = 2.5e-4              # STaR fine-tuning learning rate (ours)
    eval_every: int = 10                 # RL iterations between evaluations
    eval_size: int = 640                 # test prompts (paper: 640 for the length histograms)
    stop_acc: float = 0.95               # early stop: greedy accuracy at least this ...
    stop_after: int = 3                  # ... at this many evaluations in a row (0 = never stop)

    def validate(self) -> None:
        require(self.d >= 2, "d", self.d, "an integer >= 2")
        require(0 < self.p_cot <= 1, "p_cot", self.p_cot, "a float in (0, 1]")
        for name in ("pretrain_iters", "pretrain_batch_size", "pretrain_eval_every", "n_layer",
                     "n_embd", "n_head", "ckpt_every", "rl_iters", "group_size",
                     "prompts_per_iter", "updates_per_batch", "star_rounds", "star_samples",
                     "star_epochs", "star_batch_size", "eval_every", "eval_size"):
            require(getattr(self, name) >= 1, name, getattr(self, name), "an integer >= 1")
        require(self.group_size >= 2, "group_size", self.group_size, "an integer >= 2")
        for name in ("pretrain_lr", "lr", "star_lr", "clip_eps"):
            require(getattr(self, name) > 0, name, getattr(self, name), "a positive float")
        require(self.beta >= 0, "beta", self.beta, "a float >= 0")
        require(self.n_embd % self.n_head == 0, "n_head", self.n_head,
                f"a divisor of n_embd={self.n_embd}")
        steps_ok = all(0 <= s <= self.pretrain_iters and s % self.ckpt_every == 0
                       and s % self.pretrain_eval_every == 0 for s in self.branch_steps)
        require(len(self.branch_steps) > 0 and steps_ok, "branch_steps", self.branch_steps,
                f"multiples of ckpt_every={self.ckpt_every} and pretrain_eval_every="
                f"{self.pretrain_eval_every} in 0..pretrain_iters={self.pretrain_iters}")
        require(self.rl_branch in self.branch_steps, "rl_branch", self.rl_branch,
                f"one of branch_steps={self.branch_steps}")
        require(len(self.methods) > 0 and set(self.methods) <= set(METHODS), "methods",
                self.methods, f"a non-empty subset of {METHODS}")
        require(len(self.rewards) > 0 and set(self.rewards) <= set(REWARDS), "rewards",
                self.rewards, f"a non-empty subset of {REWARDS}")
        require(len(self.temperatures) > 0 and all(t > 0 for t in self.temperatures),
                "temperatures", self.temperatures, "a non-empty list of positive floats")
        require(self.grid_seeds is None or set(self.grid_seeds) <= set(self.seeds), "grid_seeds",
                self.grid_seeds, f"None or a subset of seeds={self.seeds}")
        require(0 < self.stop_acc <= 1, "stop_acc", self.stop_acc, "a float in (0, 1]")
        require(self.stop_after >= 0, "stop_after", self.stop_after, "an integer >= 0")

    @property
    def task(self) -> ParityTask:
        return ParityTask(self.d, self.p_cot)

    @property
    def rl_batch(self) -> int:
        """Responses generated per GRPO / REINFORCE iteration."""
        return self.prompts_per_iter * self.group_size

    def pretrain_config(self) -> ParityPretrainConfig:
        """Chapter 1's config for the one pre-training run per seed this chapter branches from."""
        return ParityPretrainConfig(
            preset=self.preset, device=self.device, out_dir=str(self.path), seeds=self.seeds,
            workers=self.workers, d=self.d, p_cot_values=(self.p_cot,), iters=self.pretrain_iters,
            batch_size=self.pretrain_batch_size, lr=self.pretrain_lr, n_layer=self.n_layer,
            n_embd=self.n_embd, n_head=self.n_head, eval_every=self.pretrain_eval_every,
            eval_size=self.eval_size, ckpt_every=self.ckpt_every,
        )


@dataclasses.dataclass(frozen=True)
class RLRun:
    """One RL run: ``method`` with ``reward`` at temperature ``temperature`` from a checkpoint."""

    method: str
    reward: str
    temperature: float
    branch_step: int
    seed: int

    @property
    def name(self) -> str:
        return (f"{self.method}-{self.reward}-t{self.temperature:g}-b{self.branch_step}"
                f"-s{self.seed}")


MAIN_RUNS = (("grpo", "e2e"), ("reinforce", "e2e"), ("star", "cot"))  # at tau = 1, every seed


def rl_jobs(cfg: ParityRLConfig) -> list[RLRun]:
    """Fig. 1 (GRPO, e2e, tau = 1 from every branch step, every seed); at ``rl_branch`` the runs
    the checks need (:data:`MAIN_RUNS`, every seed) and the Fig. 3 grid (``grid_seeds``)."""
    runs = [RLRun("grpo", "e2e", 1.0, b, s) for b in cfg.branch_steps for s in cfg.seeds]
    runs += [RLRun(m, r, 1.0, cfg.rl_branch, s) for m, r in MAIN_RUNS if m in cfg.methods
             and r in cfg.rewards and 1.0 in cfg.temperatures for s in cfg.seeds]
    for s in cfg.seeds if cfg.grid_seeds is None else cfg.grid_seeds:
        runs += [RLRun(m, r, t, cfg.rl_branch, s) for m in cfg.methods for r in cfg.rewards
                 for t in cfg.temperatures]
    return list(dict.fromkeys(runs))  # drop duplicates, keep the order


def load_checkpoint(cfg: ParityRLConfig, ckpt_dir: Path, step: int, seed: int) -> GPT:
    """The pre-trained model of ``seed`` after ``step`` iterations (step 0: the initial one)."""
    torch.manual_seed(seed)  # step 0: the same initialisation as pretrain_run
    model = GPT(cfg.pretrain_config().model_config(cfg.task)).to(cfg.torch_device)
    if step > 0:
        path = checkpoint_path(ckpt_dir, step)
        model.load_state_dict(torch.load(path, map_location=cfg.torch_device))
    return model


RLHistory = list[tuple[int, int, dict[str, Any]]]  # (iteration or round, sequences, metrics)


def train_rl(cfg: ParityRLConfig, run: RLRun, model: GPT) -> RLHistory:
    """Train ``model`` (the run's checkpoint) with ``run``'s method; evaluate every
    ``eval_every`` iterations (STaR: every round)."""
    task, device = cfg.task, cfg.torch_device
    star = run.method == "star"
    opt = make_optimizer(model, cfg.star_lr if star else cfg.lr)
    ref = copy.deepcopy(model).eval() if cfg.beta > 0 else None
    gen = torch.Generator().manual_seed(1_000 * run.seed + run.branch_step)
    sample_gen = torch.Generator(device=device).manual_seed(run.seed)
    x_test, parity = sample_prompts(task, cfg.eval_size, torch.Generator().manual_seed(
        10_000 + run.seed), device)
    total = cfg.star_rounds if star else cfg.rl_iters
    every = 1 if star else cfg.eval_every
    per_iter = cfg.star_samples if star else cfg.rl_batch

    def evaluate(it: int, extra: dict[str, float]) -> dict[str, Any]:
        m = evaluate_parity(model, task, x_test, parity, seed=30_000 + it, return_lengths=True)
        return {**m, **extra}

    history: RLHistory = [(0, 0, evaluate(0, {}))]
    streak = 0
    for it in range(1, total + 1):
        n_prompts = cfg.star_samples if star else cfg.prompts_per_iter
        prompts, _ = sample_prompts(task, n_prompts, gen, device)
        ro = rollout(model, task, prompts, 1 if star else cfg.group_size, run.temperature,
                     run.reward, sample_gen)
        stats = {"reward_mean": ro.reward.mean().item(),
                 "frac_long_rollout": (ro.lengths > 1).float().mean().item()}
        if star:
            stats |= star_step(model, opt, ro, cfg.star_epochs, cfg.star_batch_size, gen)
        elif run.method == "grpo":
            stats |= grpo_step(model, opt, ro, cfg.group_size, run.temperature,
                               cfg.updates_per_batch, cfg.clip_eps, cfg.beta, ref)
        else:
            stats |= reinforce_step(model, opt, ro, run.temperature)
        if it % every == 0 or it == total:
            m = evaluate(it, stats)
            streak = streak + 1 if m["acc_greedy"] >= cfg.stop_acc else 0
            stop = cfg.stop_after > 0 and streak >= cfg.stop_after and it < total
            history.append((it, it * per_iter, {**m, "stopped": float(stop)}))
            if stop:
                break
    return history


def rl_path(cfg: ParityRLConfig, run: RLRun) -> Path:
    """Where a finished RL run is cached: keyed by the config and the code version."""
    key = cfg.key("seeds", "grid_seeds", "branch_steps", "methods", "rewards", "temperatures")
    return cfg.path / "rl" / f"{key}-{source_hash()}" / f"{run.name}.pt"


def rl_run(cfg: ParityRLConfig, run: RLRun, ckpt_dir: Path) -> RLHistory:
    """:func:`train_rl` from the checkpoints in ``ckpt_dir``, cached (a finished run is loaded)."""
    return cached(rl_path(cfg, run), lambda: train_rl(
        cfg, run, load_checkpoint(cfg, ckpt_dir, run.branch_step, run.seed)))


def pretrain_all(cfg: ParityRLConfig) -> tuple[dict[int, list], dict[int, Path]]:
    """One pre-training run per seed (cached and resumable): ``{seed: history}`` and
    ``{seed: checkpoint folder}``."""
    pcfg = cfg.pretrain_config()
    out = run_jobs(_pretrain, [(pcfg, cfg.p_cot, s) for s in cfg.seeds], cfg.n_workers,
                   desc="pre-training")
    for s, (_, path) in zip(cfg.seeds, out, strict=True):
        if not checkpoint_path(path, cfg.pretrain_iters).exists():
            raise FileNotFoundError(f"no checkpoints of seed {s} in {path}: were the rlntp "
                                    "sources edited as pre-training started? Run again.")
    return ({s: h for s, (h, _) in zip(cfg.seeds, out, strict=True)},
            {s: p for s, (_, p) in zip(cfg.seeds, out, strict=True)})


def _pretrain(pcfg: ParityPretrainConfig, p_cot: float, seed: int) -> tuple[list, Path]:
    """:func:`pretrain_run` and its checkpoint folder (keyed by the code version as it starts)."""
    path = run_dir(pcfg, p_cot, seed, 1)
    return pretrain_run(pcfg, p_cot, seed, 1), path


def rl_all(cfg: ParityRLConfig, ckpt_dirs: dict[int, Path]) -> dict[RLRun, RLHistory]:
    """Every RL run of :func:`rl_jobs`, from the pre-training checkpoints ``ckpt_dirs``."""
    runs = sorted(rl_jobs(cfg), key=lambda r: r.method != "star")  # the longest runs first
    hists = run_jobs(rl_run, [(cfg, r, ckpt_dirs[r.seed]) for r in runs], cfg.n_workers,
                     desc="RL runs")
    return dict(zip(runs, hists, strict=True))


def pretrain_rows(cfg: ParityRLConfig, hists: dict[int, list]) -> list[dict[str, Any]]:
    """Tidy rows of the pre-training runs."""
    pcfg = cfg.pretrain_config()
    rows: list[dict[str, Any]] = []
    for seed, hist in hists.items():
        rows += history_rows(hist, pcfg, cfg.p_cot, seed, experiment=EXPERIMENT)
    return rows


def rl_rows(cfg: ParityRLConfig, hists: dict[RLRun, RLHistory]) -> list[dict[str, Any]]:
    """Tidy rows of the RL runs; sequences_seen counts the pre-training sequences too."""
    rows: list[dict[str, Any]] = []
    for run, hist in hists.items():
        base = run.branch_step * cfg.pretrain_batch_size
        for it, seqs, metrics in hist:
            scalars = {k: v for k, v in metrics.items() if not isinstance(v, list)}
            rows += metric_rows(scalars, experiment=EXPERIMENT, phase="rl", method=run.method,
                                reward=run.reward, temperature=run.temperature, p_cot=cfg.p_cot,
                                d=cfg.d, seed=run.seed, branch_step=run.branch_step, step=it,
                                sequences_seen=base + seqs)
    return rows


def carry_forward(rl: pd.DataFrame) -> pd.DataFrame:
    """RL rows where every early-stopped run is extended, at its last values, to the last step of
    the same (method, reward, temperature, branch) over seeds; column ``filled`` marks them."""
    out = [rl.assign(filled=False)]
    for _, group in rl.groupby(["method", "reward", "temperature", "branch_step"]):
        seqs = group.drop_duplicates("step").set_index("step").sequences_seen.sort_index()
        for _, run in group.groupby("seed"):
            last = run[run.step == run.step.max()]
            out += [last.assign(step=step, sequences_seen=seqs[step], filled=True)
                    for step in seqs.index[seqs.index > run.step.max()]]
    return pd.concat(out, ignore_index=True)
