"""Chapters 1 and 2 at the paper's shape on one GPU, for as long as a time budget allows.

    python benchmarks/gpu_paper.py --out runs/gpu_paper                    # ~7 minutes on a GPU
    python benchmarks/gpu_paper.py --out runs/gpu_paper -p n_embd=256      # another width
    python benchmarks/gpu_paper.py --out /tmp/gpu_tiny --tiny              # the smoke preset, CPU, seconds

One seed of chapter 2's ``paper`` preset (d=50, p_cot=0.25, batch 256, 4 layers x 128, as
:class:`rlntp.experiments.parity_rl.ParityRLConfig` and chapter 1 share; ``-p KEY=VALUE`` changes
a field): next-token pre-training (:func:`rlntp.train.train_ntp`, the paper's cosine schedule over
its 50,000 iterations) for ``--pretrain-frac`` of the budget, then GRPO (:func:`rlntp.rl.train.train_rl`,
e2e reward, tau = 1) from the model where pre-training stopped, for the rest. Both stop at the
first evaluation past their share of the budget (evaluations: the preset's intervals, greedy and
sampled on ``eval_size`` test prompts, :func:`rlntp.evaluate.evaluate`).

Prints iterations/s, GPU memory, and the projected wall time of the full ``paper`` preset of
chapters 1 and 2 from the measured rates (an upper bound: every RL run to its last iteration,
no early stop; STaR's rounds priced as ``star_samples / rl_batch`` GRPO iterations). Writes
``metrics.csv`` (the repository's tidy format) and ``config.json`` (resolved config, device,
date, commit, wall time and the measurements under ``benchmark``) into ``--out``.
Needs torch (and pandas through rlntp); never imports papermill or trl.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from rlntp import seeds
from rlntp.config import ConfigError, PaperOnCPUWarning
from rlntp.evaluate import evaluate
from rlntp.experiments import parity_pretrain, parity_rl
from rlntp.experiments.runs import RLRun, new_model, pretrain_rows, rl_rows
from rlntp.models.gpt import generate
from rlntp.params import parse_param, resolve
from rlntp.results import device_name, write_metrics, write_run_info
from rlntp.rl import grpo
from rlntp.rl.rollout import Rollout, chosen_mask, response_logprobs
from rlntp.rl.train import train_rl
from rlntp.train import make_optimizer, train_ntp


class _Budget(Exception):
    """Raised from an evaluation callback when a phase has used its share of the budget."""


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class Phase:
    """An evaluation callback that times the training between evaluations and stops the phase
    (raises :class:`_Budget`) at the first evaluation after ``seconds``."""

    def __init__(self, task: Any, prompts: torch.Tensor, seed_of: Callable[[int], int], seconds: float,
                 return_lengths: bool = False) -> None:
        self.task, self.prompts, self.seed_of, self.seconds = task, prompts, seed_of, seconds
        self.return_lengths = return_lengths
        self.start = time.perf_counter()
        self.eval_s: list[float] = []
        self.steps: list[int] = []
        self.history: list[tuple[int, dict[str, Any]]] = []

    def __call__(self, model: torch.nn.Module, step: int) -> dict[str, Any]:
        sync()
        t = time.perf_counter()
        metrics = evaluate(model, self.task, self.prompts, self.seed_of(step), self.return_lengths)
        sync()
        self.eval_s.append(time.perf_counter() - t)
        self.steps.append(step)
        self.history.append((step, metrics))
        if time.perf_counter() - self.start > self.seconds:
            raise _Budget
        return metrics

    @property
    def wall_s(self) -> float:
        return time.perf_counter() - self.start

    def rate(self) -> float | None:
        """Training iterations per second, evaluations excluded."""
        train_s = self.wall_s - sum(self.eval_s)
        return self.steps[-1] / train_s if self.steps and self.steps[-1] > 0 and train_s > 0 else None

    def mean_eval_s(self) -> float:
        return sum(self.eval_s) / len(self.eval_s)


def full_width_iter_s(model: torch.nn.Module, task: Any, cfg: Any, reps: int = 3) -> float:
    """Seconds of a GRPO iteration whose responses all run to ``max_new_tokens`` (the cost once RL
    has made every response long): sampling with EOS disabled, log-probs, update, on a copy."""
    model = copy.deepcopy(model)
    opt = make_optimizer(model, cfg.learning_rate, cfg)
    gen = torch.Generator().manual_seed(0)
    device = next(model.parameters()).device
    times = []
    for _ in range(reps + 1):
        sync()
        t = time.perf_counter()
        x = task.sample_prompts(cfg.prompts_per_iter, gen, device).repeat_interleave(cfg.num_generations, 0)
        resp, lengths = generate(model, x, task.max_new_tokens, cfg.temperature, eos=-1)
        logp = response_logprobs(model, x, resp, cfg.temperature)
        reward = torch.randint(0, 2, (len(x),), generator=gen).float().to(device)
        ro = Rollout(x, resp, lengths, chosen_mask(lengths, resp.shape[1]), logp, reward)
        grpo.update(model, opt, ro, cfg, cfg.temperature, None, gen)
        sync()
        times.append(time.perf_counter() - t)
    return sorted(times[1:])[len(times[1:]) // 2]


def project(cfg1: Any, cfg2: Any, pre_step_s: float, pre_eval_s: float, rl_iter_s: float,
            rl_eval_s: float) -> dict[str, float]:
    """Wall seconds of the full preset of chapter 1 (``cfg1``) and chapter 2 (``cfg2``), one
    GPU, runs one after another, from per-iteration and per-evaluation seconds."""
    def pretrain(cfg: Any) -> float:
        evals = cfg.pretrain_iters // cfg.pretrain_eval_every + 1
        return cfg.pretrain_iters * pre_step_s + evals * pre_eval_s

    ch1_runs = len(parity_pretrain.stages(cfg1)[0].jobs)
    rl_jobs = parity_rl.rl_jobs(cfg2) + parity_rl.low_jobs(cfg2)
    rl_s = 0.0
    for run in rl_jobs:
        if run.method == "star":  # one round ~ star_samples responses sampled and trained on
            rl_s += cfg2.star_rounds * (cfg2.star_samples / cfg2.rl_batch * rl_iter_s + rl_eval_s)
        else:
            rl_s += cfg2.rl_iters * rl_iter_s + (cfg2.rl_iters // cfg2.eval_every + 1) * rl_eval_s
    ch1 = ch1_runs * pretrain(cfg1)
    ch2 = len(parity_rl.stages(cfg2)[0].jobs) * pretrain(cfg2) + rl_s
    return {"chapter1_s": round(ch1), "chapter2_s": round(ch2), "total_s": round(ch1 + ch2),
            "chapter1_runs": ch1_runs, "chapter2_rl_runs": len(rl_jobs)}


def memory() -> dict[str, float | None]:
    """Peak GPU memory (GiB) allocated and reserved by torch; None on the CPU."""
    if not torch.cuda.is_available():
        return {"max_allocated_gib": None, "max_reserved_gib": None}
    gib = 2**30
    return {"max_allocated_gib": round(torch.cuda.max_memory_allocated() / gib, 3),
            "max_reserved_gib": round(torch.cuda.max_memory_reserved() / gib, 3)}


def hms(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="folder for metrics.csv and config.json")
    ap.add_argument("--budget-s", type=float, default=420.0, help="seconds of training and evaluation")
    ap.add_argument("--pretrain-frac", type=float, default=0.6, help="share of the budget for chapter 1")
    ap.add_argument("--tiny", action="store_true", help="the smoke preset (CPU test, seconds)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep-checkpoints", action="store_true",
                    help="keep the checkpoints in OUT/pretrain and OUT/rl (default: a scratch folder)")
    ap.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config field, e.g. -p n_embd=256 -p n_head=8")
    args = ap.parse_args(argv)
    if not 0 < args.pretrain_frac < 1 or args.budget_s <= 0:
        ap.error("--budget-s must be > 0 and --pretrain-frac in (0, 1)")
    t_start = time.perf_counter()
    preset = "smoke" if args.tiny else "paper"
    try:
        params = dict(parse_param(p) for p in args.param)
        cfg = resolve(parity_rl.ParityRLConfig, preset=preset, seeds=[args.seed], out_dir=str(args.out),
                      **params)
        with warnings.catch_warnings():  # only counted, never run on the CPU
            warnings.simplefilter("ignore", PaperOnCPUWarning)
            paper2 = resolve(parity_rl.ParityRLConfig, preset="paper", **params)
            names = set(parity_pretrain.ParityPretrainConfig.field_names())
            paper1 = resolve(parity_pretrain.ParityPretrainConfig, preset="paper",
                             **{k: v for k, v in params.items() if k in names})
    except ConfigError as e:
        ap.error(str(e))
    device = cfg.torch_device
    out = cfg.prepare()
    ckpt_dir = out if args.keep_checkpoints else Path(tempfile.mkdtemp(prefix="rlntp-gpu-paper-"))
    task = cfg.task(cfg.p_cot)
    seed = args.seed
    print(f"device {device} ({device_name(device)}); d={cfg.d}, p_cot={cfg.p_cot}, batch "
          f"{cfg.pretrain_batch_size}, {cfg.n_layer} layers x {cfg.n_embd} ({cfg.n_head} heads); "
          f"budget {args.budget_s:g} s", flush=True)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    x = seeds.test_prompts(task, cfg.eval_size, seed, device)

    # chapter 1: next-token pre-training, the paper's schedule, stopped by the budget
    model = new_model(cfg, task, seed)
    pre = Phase(task, x, lambda s: seeds.stream_seed("eval_sampling", seed, s),
                args.budget_s * args.pretrain_frac)
    try:
        train_ntp(model, task, cfg, seed=seed, run_dir=ckpt_dir / "pretrain", evaluate=pre, desc="pretrain")
    except _Budget:
        pass
    sync()
    pre_wall, branch = pre.wall_s, pre.steps[-1]
    pre_rate = pre.rate()
    print(f"pre-training: {branch} iterations in {pre_wall:.0f} s, {pre_rate or 0:.1f} it/s "
          f"(evaluations excluded; {pre.mean_eval_s():.2f} s each), greedy acc "
          f"{pre.history[-1][1]['acc_greedy']:.3f}", flush=True)

    # chapter 2: GRPO from where pre-training stopped
    run = RLRun("grpo", "e2e", cfg.temperature, branch, seed)
    rl = Phase(task, x, lambda s: seeds.stream_seed("rl_eval_sampling", seed, s),
               max(0.0, args.budget_s - (time.perf_counter() - t_start)), return_lengths=True)
    try:
        train_rl(model, task, cfg, method="grpo", reward="e2e", temperature=cfg.temperature, seed=seed,
                 branch_step=branch, run_dir=ckpt_dir / "rl", evaluate=rl, desc="GRPO")
    except _Budget:
        pass
    sync()
    rl_rate = rl.rate()
    full_s = full_width_iter_s(model, task, cfg)
    print(f"GRPO: {rl.steps[-1]} iterations in {rl.wall_s:.0f} s, {rl_rate or 0:.2f} it/s "
          f"({full_s:.3f} s per iteration at full response width), greedy acc "
          f"{rl.history[-1][1]['acc_greedy']:.3f}", flush=True)

    # projection of the paper preset and the files
    pre_step = 1 / pre_rate if pre_rate else math.nan
    rl_iter = 1 / rl_rate if rl_rate else math.nan
    projected = project(paper1, paper2, pre_step, pre.mean_eval_s(), rl_iter, rl.mean_eval_s())
    projected_full = project(paper1, paper2, pre_step, pre.mean_eval_s(), full_s, rl.mean_eval_s())
    mem = memory()
    bench = {
        "budget_s": args.budget_s, "pretrain_iters_done": branch, "pretrain_it_per_s": pre_rate,
        "pretrain_eval_s": round(pre.mean_eval_s(), 3), "rl_iters_done": rl.steps[-1],
        "rl_it_per_s": rl_rate, "rl_eval_s": round(rl.mean_eval_s(), 3),
        "rl_iter_s_full_width": round(full_s, 4), "gpu_memory": mem,
        "projected_paper_preset": projected, "projected_paper_preset_full_width_rl": projected_full,
        "projection_notes": "one GPU, runs one after another; RL runs to their last iteration (no early "
                            "stop); STaR round ~ star_samples / rl_batch GRPO iterations",
    }
    rows = pretrain_rows(pre.history, cfg, task, seed, parity_rl.EXPERIMENT)
    rl_hist = [(it, it * cfg.rl_batch, m) for it, m in rl.history]
    rows += rl_rows({run: rl_hist}, cfg, task, parity_rl.EXPERIMENT)
    write_metrics(rows, out / "metrics.csv")
    wall = time.perf_counter() - t_start
    write_run_info(cfg, out, wall, benchmark=bench, script="benchmarks/gpu_paper.py")
    print(f"GPU memory: {json.dumps(mem)}")
    print(f"projected paper preset (one GPU): chapter 1 {hms(projected['chapter1_s'])} "
          f"({projected['chapter1_runs']} runs), chapter 2 {hms(projected['chapter2_s'])} "
          f"({projected['chapter2_rl_runs']} RL runs), total {hms(projected['total_s'])}; "
          f"with full-width RL responses {hms(projected_full['total_s'])}")
    print(f"wall {wall:.0f} s; written {out / 'metrics.csv'}, {out / 'config.json'}")
    if not args.keep_checkpoints:
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    return bench


if __name__ == "__main__":
    main()
