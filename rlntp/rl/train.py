"""One resumable RL loop for every task and method (the shape of :func:`rlntp.train.train_ntp`).

Each iteration samples fresh prompts, rolls the policy out on them (:func:`rollout`), scores the
responses with the task's reward, and lets the method update the model. The method comes from
:data:`METHODS`: its update (one file each: :mod:`grpo`, :mod:`reinforce`, :mod:`star`) and its
plan (iterations, prompts and responses per prompt, learning rate, evaluation interval).

The run is evaluated at the start and every ``eval_every`` iterations (STaR: every round);
after each evaluation its state (model, optimizer, random streams, history) is saved in
``run_dir``, and a run started again in the same folder continues from there with the same
numbers. It stops early once greedy accuracy has been learned at ``stop_after`` consecutive
evaluations: the 95% Wilson interval of its accuracy on the ``n_eval`` test prompts lies above
``stop_acc``, the rule the chapters' claims call "learned" (metric ``stopped`` = 1 at its last row).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from rlntp.claims import interval_above
from rlntp.config import RLLoopPart
from rlntp.results import atomic_torch_save, resume
from rlntp.rl import grpo, reinforce, star
from rlntp.rl.rollout import rollout
from rlntp.seeds import generator
from rlntp.task import Task
from rlntp.train import make_optimizer

RLHistory = list[tuple[int, int, dict[str, Any]]]  # (iteration or round, RL sequences, metrics)


@dataclasses.dataclass(frozen=True)
class Plan:
    """How a method spends its run."""

    iters: int          # iterations (STaR: rounds)
    prompts: int        # fresh prompts per iteration
    group_size: int     # responses per prompt
    learning_rate: float
    eval_every: int

    @property
    def sequences_per_iter(self) -> int:
        return self.prompts * self.group_size


def policy_gradient_plan(cfg: RLLoopPart) -> Plan:
    return Plan(cfg.rl_iters, cfg.prompts_per_iter, cfg.num_generations, cfg.learning_rate,
                cfg.eval_every)


def star_plan(cfg: RLLoopPart) -> Plan:
    return Plan(cfg.star_rounds, cfg.star_samples, 1, cfg.star_learning_rate, 1)


Update = Callable[..., dict[str, float]]
METHODS: dict[str, tuple[Update, Callable[[RLLoopPart], Plan]]] = {
    "grpo": (grpo.update, policy_gradient_plan),
    "reinforce": (reinforce.update, policy_gradient_plan),
    "star": (star.update, star_plan),
}


STATE_KEYS = ("model", "opt", "gen", "sample_gen", "history", "streak")  # of rl_state.pt


def train_rl(model: torch.nn.Module, task: Task, cfg: RLLoopPart, *, method: str, reward: str,
             temperature: float, seed: int, branch_step: int, run_dir: str | Path,
             evaluate: Callable[[torch.nn.Module, int], dict[str, Any]], n_eval: int,
             desc: str = "RL") -> RLHistory:
    """Train ``model`` (a checkpoint taken after ``branch_step`` pre-training steps) on ``task``
    with ``method`` and the ``reward`` kind, sampling at ``temperature``; ``evaluate(model, it)``
    returns metrics on ``n_eval`` test prompts. Returns ``[(iteration, RL sequences so far,
    metrics)]``, iteration 0 first."""
    update, plan_of = METHODS[method]
    plan = plan_of(cfg)
    device = next(model.parameters()).device
    ref = copy.deepcopy(model).eval() if cfg.beta > 0 else None
    initial = {k: v.clone() for k, v in model.state_dict().items()}

    def fresh() -> tuple[torch.optim.AdamW, torch.Generator, torch.Generator]:
        model.load_state_dict(initial)
        return (make_optimizer(model, plan.learning_rate, cfg), generator("rl_data", seed, branch_step),
                generator("rl_sampling", seed, device=device))

    opt, gen, sample_gen = fresh()

    def restore(st: dict[str, Any]) -> None:
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        gen.set_state(st["gen"])
        sample_gen.set_state(st["sample_gen"].to(sample_gen.get_state().device))
        if ref is not None:
            ref.load_state_dict(st["ref"])

    state_file = Path(run_dir) / "rl_state.pt"
    st = resume(state_file, STATE_KEYS, restore, map_location=device)
    if st is None:
        opt, gen, sample_gen = fresh()  # nothing to resume, or a damaged state set aside
        history, streak = [(0, 0, evaluate(model, 0))], 0
    else:
        history, streak = st["history"], st["streak"]
    start = history[-1][0]
    if history[-1][2].get("stopped"):
        return history
    for it in tqdm(range(start + 1, plan.iters + 1), desc=desc, initial=start, total=plan.iters,
                   leave=False, mininterval=2.0):
        prompts = task.sample_prompts(plan.prompts, gen, device)
        ro = rollout(model, task, prompts, plan.group_size, temperature, reward, sample_gen)
        long = task.is_long(ro.lengths).float()
        stats = {"reward_mean": ro.reward.mean().item(), "frac_long_rollout": long.mean().item(),
                 # the long fraction of the rewarded responses (STaR's training set)
                 "frac_long_rewarded": long[ro.reward > 0].mean().nan_to_num().item()}
        stats |= update(model, opt, ro, cfg, temperature, ref, gen)
        if it % plan.eval_every == 0 or it == plan.iters:
            m = {**evaluate(model, it), **stats}
            streak = streak + 1 if interval_above(m["acc_greedy"], n_eval, cfg.stop_acc) else 0
            stop = cfg.stop_after > 0 and streak >= cfg.stop_after and it < plan.iters
            history.append((it, it * plan.sequences_per_iter, {**m, "stopped": float(stop)}))
            state = {"model": model.state_dict(), "opt": opt.state_dict(), "gen": gen.get_state(),
                     "sample_gen": sample_gen.get_state(), "history": history, "streak": streak,
                     **({"ref": ref.state_dict()} if ref is not None else {})}
            atomic_torch_save(state, state_file)
            if stop:
                break
    return history
