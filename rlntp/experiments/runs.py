"""The runs every GPT chapter is made of, for any task (:class:`rlntp.task.Task`).

- A *pre-training run*: a fresh GPT trained with next-token prediction on one task (one p_cot)
  and one seed, with checkpoints (:func:`pretrain_run`, resumable, cached).
- An *RL run* (:class:`RLRun`): one method, reward and temperature, from one checkpoint of a
  pre-training run (:func:`rl_run`, resumable, cached).

Both are evaluated on the seed's fixed test prompts (:func:`rlntp.seeds.test_prompts`), and
both become tidy metric rows (:func:`pretrain_rows`, :func:`rl_rows`). Folders are keyed by
everything the result depends on: the config fields of its parts, the task and the code version.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pandas as pd

from rlntp import seeds
from rlntp.config import (
    ExperimentConfig,
    ModelPart,
    NTPPart,
    OptimizerPart,
    RLLoopPart,
    RLPart,
    require_list,
)
from rlntp.evaluate import evaluate
from rlntp.models.gpt import GPT, GPTConfig
from rlntp.results import CheckpointError, cached, load_checkpoint_file, metric_rows, source_hash
from rlntp.rl.train import RLHistory, train_rl
from rlntp.task import Task
from rlntp.train import History, checkpoint_path, train_ntp


class PretrainConfig(NTPPart, ModelPart, ExperimentConfig):
    """The type of a chapter config that pre-trains a GPT (any dataclass with these parts)."""


class RLConfig(RLLoopPart, PretrainConfig):
    """The type of a chapter config that also runs RL."""


def new_model(cfg: PretrainConfig, task: Task, seed: int) -> GPT:
    """A fresh GPT for ``task``, initialised from ``seed``, on the config's device."""
    seeds.init_model(seed)
    return GPT(GPTConfig(task.vocab_size, task.seq_len, cfg.n_layer, cfg.n_head, cfg.n_embd,
                         bf16_matmuls=cfg.bf16_matmuls)).to(cfg.torch_device)


def pretrain_dir(cfg: PretrainConfig, task: Task, seed: int) -> Path:
    """Where one pre-training run keeps its checkpoints."""
    key = cfg.key(only=cfg.field_names(ModelPart, NTPPart, OptimizerPart))
    return cfg.path / "runs" / f"{key}-{source_hash()}" / f"{task.label}-s{seed}"


def pretrain_run(cfg: PretrainConfig, task: Task, seed: int) -> History:
    """Pre-train one model on ``task``; return its evaluation history ``[(step, metrics)]``."""
    model = new_model(cfg, task, seed)
    x = seeds.test_prompts(task, cfg.eval_size, seed, cfg.torch_device)
    return train_ntp(
        model, task, cfg, seed=seed, run_dir=pretrain_dir(cfg, task, seed),
        evaluate=lambda m, step: evaluate(m, task, x, seeds.stream_seed("eval_sampling", seed, step)),
        desc=f"{task.label} seed={seed}",
    )


def require_branch_steps(cfg: Any) -> None:
    """``cfg.branch_steps``: distinct pre-training steps that have a checkpoint and an evaluation."""
    require_list(cfg, "branch_steps", f"multiples of ckpt_every={cfg.ckpt_every} and "
                 f"pretrain_eval_every={cfg.pretrain_eval_every} in 0..pretrain_iters="
                 f"{cfg.pretrain_iters}", lambda s: 0 <= s <= cfg.pretrain_iters
                 and s % cfg.ckpt_every == 0 and s % cfg.pretrain_eval_every == 0)


def load_checkpoint(cfg: PretrainConfig, task: Task, step: int, seed: int) -> GPT:
    """The model of the pre-training run (task, seed) after ``step`` iterations (0: initial);
    a checkpoint of another model is a :class:`CheckpointError` naming its file."""
    model = new_model(cfg, task, seed)
    if step > 0:
        path = checkpoint_path(pretrain_dir(cfg, task, seed), step)
        if not path.exists():
            raise FileNotFoundError(f"no checkpoint of step {step}, seed {seed} at {path}: were the "
                                    "rlntp sources edited as pre-training ran? Run again.")
        try:
            model.load_state_dict(load_checkpoint_file(path, map_location=cfg.torch_device))
        except (RuntimeError, AttributeError, TypeError) as e:
            if isinstance(e, CheckpointError):
                raise
            raise CheckpointError(f"{path}: not a checkpoint of this model ({task.label}, GPT "
                                  f"{cfg.n_layer} x {cfg.n_embd}): {str(e).splitlines()[-1].strip()}; "
                                  "delete it and run again") from None
    return model


@dataclasses.dataclass(frozen=True)
class RLRun:
    """One RL run: ``method`` with ``reward`` at ``temperature`` from a checkpoint."""

    method: str
    reward: str
    temperature: float
    branch_step: int
    seed: int

    @property
    def name(self) -> str:
        return (f"{self.method}-{self.reward}-t{self.temperature:g}-b{self.branch_step}"
                f"-s{self.seed}")


def rl_path(cfg: RLConfig, task: Task, run: RLRun) -> Path:
    """Where a finished RL run is cached (its resume state: the folder of the same name)."""
    parts = cfg.field_names(ModelPart, NTPPart, OptimizerPart, RLPart, RLLoopPart)
    key = cfg.key(only=[n for n in parts if n != "temperature"])  # the run names its own
    return cfg.path / "rl" / f"{key}-{source_hash()}" / task.label / f"{run.name}.pt"


def rl_run(cfg: RLConfig, task: Task, run: RLRun) -> RLHistory:
    """:func:`train_rl` from the run's checkpoint, cached (a finished run is loaded; an
    interrupted one resumes). Pre-training must have saved the checkpoint."""
    path = rl_path(cfg, task, run)
    x = seeds.test_prompts(task, cfg.eval_size, run.seed, cfg.torch_device)

    def train() -> RLHistory:
        return train_rl(
            load_checkpoint(cfg, task, run.branch_step, run.seed), task, cfg,
            method=run.method, reward=run.reward, temperature=run.temperature, seed=run.seed,
            branch_step=run.branch_step, run_dir=path.with_suffix(""), desc=run.name,
            evaluate=lambda m, it: evaluate(
                m, task, x, seeds.stream_seed("rl_eval_sampling", run.seed, it), return_lengths=True),
            n_eval=len(x))

    return cached(path, train)


def pretrain_rows(history: History, cfg: PretrainConfig, task: Task, seed: int, experiment: str
                  ) -> list[dict[str, Any]]:
    """Tidy metric rows of one pre-training run (sequences_seen = step x batch size)."""
    rows: list[dict[str, Any]] = []
    for step, metrics in history:
        rows += metric_rows(metrics, experiment=experiment, phase="pretrain", p_cot=task.p_cot,
                            d=task.size, seed=seed, step=step,
                            sequences_seen=step * cfg.pretrain_batch_size)
    return rows


def rl_rows(hists: dict[RLRun, RLHistory], cfg: PretrainConfig, task: Task, experiment: str
            ) -> list[dict[str, Any]]:
    """Tidy rows of RL runs; sequences_seen counts the pre-training sequences too."""
    rows: list[dict[str, Any]] = []
    for run, hist in hists.items():
        base = run.branch_step * cfg.pretrain_batch_size
        for it, seqs, metrics in hist:
            scalars = {k: v for k, v in metrics.items() if not isinstance(v, list)}
            rows += metric_rows(scalars, experiment=experiment, phase="rl", method=run.method,
                                reward=run.reward, temperature=run.temperature, p_cot=task.p_cot,
                                d=task.size, seed=run.seed, branch_step=run.branch_step, step=it,
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
