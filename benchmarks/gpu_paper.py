"""Chapters 1 (with chapter 2's GRPO) and 4 at the paper's shapes on one GPU, within a time budget.

    python benchmarks/gpu_paper.py --out results/paper                     # ~7.5 minutes on a GPU
    python benchmarks/gpu_paper.py --out runs/gpu_paper --chapters 4 --budget-s 240
    python benchmarks/gpu_paper.py --out runs/gpu_paper -p 1:n_embd=256    # another parity width
    python benchmarks/gpu_paper.py --out /tmp/gpu_tiny --tiny              # the smoke preset, CPU, seconds
    python benchmarks/gpu_paper.py --out runs/probe --probe-only --probe-warmup 40 --probe-steps 20

Per chapter, one seed of its ``paper`` preset at every true shape (model, sequence lengths,
vocabulary, batch, evaluation size), only the counts cut by the clock:

- **1** (``01_parity_pretraining``): d = 50, p_cot = ``--p-cot``, batch 256, 4 layers x 128;
  next-token pre-training (:func:`rlntp.train.train_ntp`, the paper's cosine schedule over its
  50,000 iterations), then GRPO (:func:`rlntp.rl.train.train_rl`, e2e reward, chapter 2's
  ``paper`` RL settings, tau = 1) from the model where pre-training stopped.
- **4** (``04_multiplication``): 5 x 5 digits, GPT 12 layers x 768, batch 256, lr 3e-4, warm-up
  1,000 of 100,000 iterations; pre-training, then GRPO (16 prompts x 8 responses) the same way.
  Evaluated every 500 pre-training iterations (the preset: 2,000) so the clock can stop it.

Pre-training gets ``--pretrain-frac`` of a chapter's share of ``--budget-s``, GRPO the rest; each
phase stops at the first evaluation past its share (a hard stop, at a batch draw, ``--grace-s``
later). Evaluations: the preset's size, greedy and sampled (:func:`rlntp.evaluate.evaluate`).
Precision: ``--precision`` (default ``tf32``: fp32 weights, TF32 matmuls on CUDA; the repository's
training code has no precision option, so its notebooks run plain fp32); afterwards one pre-training
step is timed at each of :data:`PRECISIONS` on a copy of the model, and the gemm ceilings.
``--probe-only`` times only that step, on a fresh model per chapter, at every :data:`PROBES`
(``OUT/<chapter>/precision_probe.json``); give it a long ``--probe-warmup`` on a GPU, since cuDNN
attention builds a plan for every new batch shape and ``group_by_length`` makes new shapes.

Prints per chapter the measured rate against the projected one (the FLOPs of a step, counted as in
:mod:`flops`, at ``--assumed-mfu`` of the precision's datasheet peak) and the projected wall time of
the full ``paper`` preset from the measured rates (an upper bound: every RL run to its last
iteration; STaR's rounds priced as ``star_samples / rl_batch`` GRPO iterations). Writes
``OUT/<chapter>/metrics.csv`` (the repository's tidy format) and ``OUT/<chapter>/config.json``
(resolved config, device, date, commit, torch version, wall time, and the measurements and
projections under ``benchmark``), after pre-training and again at the end. A chapter that fails
records its error in its config.json and the next one still runs (exit status 1).
Needs torch (and pandas through rlntp); never imports papermill or trl.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from flops import (
    FLOP_FORMULA,
    mean_step_flops,
    nonembedding_params,
    rl_iter_flops_full_width,
)

import rlntp.train as rlntp_train
from rlntp import seeds
from rlntp.config import ConfigError, PaperOnCPUWarning
from rlntp.evaluate import evaluate
from rlntp.experiments import multiplication, parity_pretrain, parity_rl
from rlntp.experiments.runs import RLRun, new_model, pretrain_rows, rl_rows
from rlntp.models.gpt import generate
from rlntp.params import parse_param, resolve
from rlntp.results import (
    device_name,
    git_commit,
    git_modified,
    load_checkpoint_file,
    write_metrics,
    write_run_info,
)
from rlntp.rl import grpo
from rlntp.rl.rollout import Rollout, chosen_mask, response_logprobs
from rlntp.rl.train import train_rl
from rlntp.train import make_optimizer, ntp_loss, optimizer_step, train_ntp

CHAPTERS = {"1": parity_pretrain.ParityPretrainConfig.CHAPTER,
            "4": multiplication.MultiplicationConfig.CHAPTER}
# dense (no sparsity) tensor-core peaks of the H100/H200 SXM datasheet, TFLOP/s; the H200 has the
# H100's arithmetic (the "named GPU" of every FLOP-based projection here)
PEAK_TFLOPS = {"bf16": 989.4, "tf32": 494.7, "fp32": 66.9}
PEAK_SOURCE = "NVIDIA H100/H200 SXM datasheet, dense tensor-core (fp32: no tensor cores)"
PRECISIONS = ("fp32", "tf32", "bf16", "bf16_no_cudnn_attention")
# what --probe-only times per chapter: the precisions, bf16 with autocast's weight cache (the
# first run's probe), and bf16 with group_by_length off (one batch shape every step)
PROBES = ("fp32", "tf32", "bf16", "bf16_no_cudnn_attention", "bf16_weight_cache", "bf16_fixed_shapes")
CH4_EVAL_EVERY = 500  # chapter 4's pre-training evaluations in this benchmark (the preset: 2000)


class _Budget(Exception):
    """Raised (by :class:`Deadline`) when a phase has used its share of the budget."""


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


@contextlib.contextmanager
def precision(name: str, device: str) -> Iterator[None]:
    """A precision (:data:`PRECISIONS`, :data:`PROBES`) for the block: ``fp32`` (plain), ``tf32``
    (TF32 matmuls, CUDA), ``bf16`` (autocast to bf16, fp32 weights and optimizer);
    ``bf16_no_cudnn_attention``: bf16 with cuDNN's attention kernel left out of SDPA's choice;
    ``bf16_weight_cache``: bf16 with autocast's weight cache (wrong around a training loop).

    The block may hold a whole training loop, so autocast runs without its weight cache: the
    cache keeps each weight's bf16 copy until the outermost autocast exits, and a loop inside
    it would keep computing with the weights of its first step (seen: losses that drift from
    the per-step recipe's). Without it every forward casts the current weights.
    """
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high" if name == "tf32" and device.startswith("cuda")
                                       else "highest")
    with contextlib.ExitStack() as stack:
        if name.startswith("bf16"):
            stack.enter_context(torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16,
                                               cache_enabled=name == "bf16_weight_cache"))
        if name == "bf16_no_cudnn_attention":
            from torch.nn.attention import SDPBackend, sdpa_kernel

            stack.enter_context(sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
                                             SDPBackend.MATH]))
        try:
            yield
        finally:
            torch.set_float32_matmul_precision(before)


class Phase:
    """An evaluation callback that times the training between evaluations and marks the phase
    ``over`` at the first evaluation after step 0 and ``seconds`` (:class:`Deadline` then stops
    the loop)."""

    def __init__(self, task: Any, prompts: torch.Tensor, seed_of: Callable[[int], int], seconds: float,
                 return_lengths: bool = False, on_eval: Callable[[], None] | None = None,
                 loss: LossRecorder | None = None) -> None:
        self.task, self.prompts, self.seed_of, self.seconds = task, prompts, seed_of, seconds
        self.return_lengths, self.on_eval, self.loss = return_lengths, on_eval, loss
        self.start = time.perf_counter()
        self.over = False
        self.eval_s: list[float] = []
        self.train_s: list[float] = []  # training seconds before each evaluation (evaluations excluded)
        self.steps: list[int] = []
        self.history: list[tuple[int, dict[str, Any]]] = []

    def __call__(self, model: torch.nn.Module, step: int) -> dict[str, Any]:
        sync()
        t = time.perf_counter()
        self.train_s.append(t - self.start - sum(self.eval_s))
        metrics = evaluate(model, self.task, self.prompts, self.seed_of(step), self.return_lengths)
        sync()
        self.eval_s.append(time.perf_counter() - t)
        self.steps.append(step)
        logged = metrics
        if self.loss is not None and step > 0 and self.loss.last is not None:
            logged = {"loss": self.loss.last.item(), **metrics}  # as train_ntp's history has it
        self.history.append((step, logged))
        if self.on_eval is not None:
            self.on_eval()
        self.over = step > 0 and time.perf_counter() - self.start > self.seconds
        return metrics

    @property
    def wall_s(self) -> float:
        return time.perf_counter() - self.start

    def rate(self, steady: bool = True) -> float | None:
        """Training iterations per second, evaluations excluded; ``steady``: between the first
        evaluation after step 0 and the last (no warm-up), where there are three or more."""
        if len(self.steps) < 2 or self.steps[-1] == 0:
            return None
        i = 1 if steady and len(self.steps) >= 3 else 0
        dt = self.train_s[-1] - self.train_s[i]
        return (self.steps[-1] - self.steps[i]) / dt if dt > 0 else None

    def mean_eval_s(self) -> float:
        return sum(self.eval_s) / len(self.eval_s) if self.eval_s else math.nan


class Deadline:
    """``task`` whose batch and prompt draws raise :class:`_Budget` once ``phase`` has used its
    share (after the evaluation that found it so, whose metrics the loop has then recorded) or
    ``at`` (perf_counter) is past: the hard stop between two evaluations."""

    def __init__(self, task: Any, phase: Phase, at: float) -> None:
        self._task, self._phase, self._at = task, phase, at

    def __getattr__(self, name: str) -> Any:
        return getattr(self._task, name)

    def _check(self) -> None:
        if self._phase.over or time.perf_counter() > self._at:
            raise _Budget

    def sample_batch(self, *args: Any, **kwargs: Any) -> Any:
        self._check()
        return self._task.sample_batch(*args, **kwargs)

    def sample_prompts(self, *args: Any, **kwargs: Any) -> Any:
        self._check()
        return self._task.sample_prompts(*args, **kwargs)


class LossRecorder:
    """While :meth:`recording`, keeps the last loss :func:`rlntp.train.ntp_loss` returned inside
    train_ntp (the value its history logs at an evaluation, which a stopped run would lose)."""

    def __init__(self) -> None:
        self.last: torch.Tensor | None = None

    @contextlib.contextmanager
    def recording(self) -> Iterator[None]:
        orig = rlntp_train.ntp_loss

        def wrapped(*args: Any, **kwargs: Any) -> torch.Tensor:
            loss = orig(*args, **kwargs)
            self.last = loss.detach()
            return loss

        rlntp_train.ntp_loss = wrapped
        try:
            yield
        finally:
            rlntp_train.ntp_loss = orig


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
    del model, opt
    return sorted(times[1:])[len(times[1:]) // 2]


def precision_probe(model: torch.nn.Module, task: Any, cfg: Any, names: tuple[str, ...],
                    step_flops: float, warmup: int = 3, steps: int = 10) -> dict[str, Any]:
    """Per precision (``bf16_fixed_shapes``: bf16 with ``group_by_length`` off, so one batch
    shape every step): the median seconds of a pre-training step (train_ntp's body: batch,
    ntp_loss, optimizer_step) after ``warmup`` steps on a copy of ``model``, its TFLOP/s, its
    last loss, and the median of the first warm-up steps (new shapes)."""
    device = str(next(model.parameters()).device)
    out: dict[str, Any] = {}
    for name in names:
        fixed = name == "bf16_fixed_shapes"
        flops_per_step = mean_step_flops(dataclasses.replace(cfg, group_by_length=False), task, model) \
            if fixed else step_flops
        m = copy.deepcopy(model).train()
        opt = make_optimizer(m, cfg.pretrain_learning_rate, cfg)
        gen = torch.Generator().manual_seed(1)
        times = []
        warmup = max(1, warmup)
        with precision("bf16" if fixed else name, device):
            for _ in range(warmup + steps):
                sync()
                t = time.perf_counter()
                batch = task.sample_batch(cfg.pretrain_batch_size, gen, device)
                loss = ntp_loss(m, batch.tokens, batch.target_mask,
                                batch.is_long if cfg.group_by_length and not fixed else None)
                optimizer_step(m, opt, loss, cfg.max_grad_norm)
                sync()
                times.append(time.perf_counter() - t)
        step_s = statistics.median(times[warmup:])
        out[name] = {"step_s": round(step_s, 5), "it_per_s": round(1 / step_s, 2),
                     "tflops": round(flops_per_step / step_s / 1e12, 2), "loss": round(loss.item(), 4),
                     "first_steps_s": round(statistics.median(times[:min(5, warmup)]), 5),
                     "warmup": warmup, "steps": steps}
        del m, opt
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return out


def gemm_tflops(names: tuple[str, ...], n: int = 8192, reps: int = 10) -> dict[str, float]:
    """TFLOP/s of an n x n x n matmul per precision (bf16: bf16 inputs), CUDA only: the ceiling the
    model's rate is read against on this card (mean of ``reps`` after 3 warm-ups)."""
    if not torch.cuda.is_available():
        return {}
    out = {}
    for name in names:
        dtype = torch.bfloat16 if name == "bf16" else torch.float32
        a, b = (torch.randn(n, n, device="cuda", dtype=dtype) for _ in range(2))
        with precision("tf32" if name == "tf32" else "fp32", "cuda"):
            for _ in range(3):
                a @ b
            sync()
            t = time.perf_counter()
            for _ in range(reps):
                a @ b
            sync()
        out[name] = round(2 * n**3 * reps / (time.perf_counter() - t) / 1e12, 1)
        del a, b
    torch.cuda.empty_cache()
    return out


def memory() -> dict[str, float | None]:
    """Peak GPU memory (GiB) allocated and reserved by torch since the last reset; None on the CPU."""
    if not torch.cuda.is_available():
        return {"max_allocated_gib": None, "max_reserved_gib": None}
    gib = 2**30
    return {"max_allocated_gib": round(torch.cuda.max_memory_allocated() / gib, 3),
            "max_reserved_gib": round(torch.cuda.max_memory_reserved() / gib, 3)}


def reset_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def hms(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "n/a"
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def _pretrain_s(cfg: Any, step_s: float, eval_s: float) -> float:
    return cfg.pretrain_iters * step_s + (cfg.pretrain_iters // cfg.pretrain_eval_every + 1) * eval_s


def _rl_s(cfg: Any, jobs: list[RLRun], iter_s: float, eval_s: float) -> float:
    total = 0.0
    for run in jobs:
        if run.method == "star":  # one round ~ star_samples responses sampled and trained on
            total += cfg.star_rounds * (cfg.star_samples / cfg.rl_batch * iter_s + eval_s)
        else:
            total += cfg.rl_iters * iter_s + (cfg.rl_iters // cfg.eval_every + 1) * eval_s
    return total


def project_parity(cfg1: Any, cfg2: Any, pre_step_s: float, pre_eval_s: float, rl_iter_s: float,
                   rl_eval_s: float) -> dict[str, float]:
    """Wall seconds of the full preset of chapter 1 (``cfg1``) and chapter 2 (``cfg2``), one
    GPU, runs one after another, from per-iteration and per-evaluation seconds."""
    ch1_runs = len(parity_pretrain.stages(cfg1)[0].jobs)
    rl_jobs = parity_rl.rl_jobs(cfg2) + parity_rl.low_jobs(cfg2)
    ch1 = ch1_runs * _pretrain_s(cfg1, pre_step_s, pre_eval_s)
    ch2 = (len(parity_rl.stages(cfg2)[0].jobs) * _pretrain_s(cfg2, pre_step_s, pre_eval_s)
           + _rl_s(cfg2, rl_jobs, rl_iter_s, rl_eval_s))
    return {"chapter1_s": round(ch1), "chapter2_s": round(ch2), "total_s": round(ch1 + ch2),
            "chapter1_runs": ch1_runs, "chapter2_rl_runs": len(rl_jobs)}


def project_mult(cfg4: Any, pre_step_s: float, pre_eval_s: float, rl_iter_s: float,
                 rl_eval_s: float) -> dict[str, float]:
    """Wall seconds of chapter 4's full preset (``cfg4``), one GPU, runs one after another."""
    jobs = multiplication.rl_jobs(cfg4)
    pre = len(cfg4.seeds) * _pretrain_s(cfg4, pre_step_s, pre_eval_s)
    rl = _rl_s(cfg4, jobs, rl_iter_s, rl_eval_s)
    return {"pretrain_s": round(pre), "rl_s": round(rl), "total_s": round(pre + rl),
            "pretrain_runs": len(cfg4.seeds), "rl_runs": len(jobs)}


def _round(x: float | None, nd: int = 3) -> float | None:
    return None if x is None or not math.isfinite(x) else round(x, nd)


@dataclasses.dataclass
class Chapter:
    """One chapter of the benchmark: the configs it runs, and the paper ones it projects."""

    key: str
    cfg: Any              # pre-training config as run (OUT/<chapter>)
    rl_cfg: Any           # RL config as run (the same model)
    paper: tuple[Any, ...]  # the unmodified paper configs the projection prices
    pre_experiment: str
    rl_experiment: str
    d: int                # the ``d`` column of the rows (parity: d, multiplication: digits)
    pretrain_runs: int    # pre-training runs of the full preset (for the FLOP-based projection)

    @property
    def task(self) -> Any:
        cfg = self.cfg
        return cfg.task(cfg.p_cot_values[0]) if self.key == "1" else cfg.task

    def project(self, pre_step_s: float, pre_eval_s: float, rl_iter_s: float, rl_eval_s: float
                ) -> dict[str, float]:
        if self.key == "1":
            return project_parity(*self.paper, pre_step_s, pre_eval_s, rl_iter_s, rl_eval_s)
        return project_mult(*self.paper, pre_step_s, pre_eval_s, rl_iter_s, rl_eval_s)


def split_params(texts: list[str]) -> dict[str, dict[str, Any]]:
    """``-p KEY=VALUE`` (every chapter that has KEY) and ``-p 1:KEY=VALUE`` / ``-p 4:KEY=VALUE``
    (that chapter only) -> {"all": ..., "1": ..., "4": ...}."""
    out: dict[str, dict[str, Any]] = {"all": {}, "1": {}, "4": {}}
    for text in texts:
        where, _, rest = text.partition(":") if text[:2] in ("1:", "4:") else ("all", "", text)
        k, v = parse_param(rest)
        out[where][k] = v
    return out


def _fields(cls: type, params: dict[str, Any]) -> dict[str, Any]:
    names = set(cls.field_names())
    return {k: v for k, v in params.items() if k in names}


def build_chapters(keys: list[str], preset: str, seed: int, p_cot: float, out: Path,
                   texts: list[str]) -> list[Chapter]:
    """The configs of each chapter in ``keys`` (``-p`` overrides applied; ConfigError if one is
    bad or known to no chapter)."""
    params = split_params(texts)
    P1, P2 = parity_pretrain.ParityPretrainConfig, parity_rl.ParityRLConfig
    P4 = multiplication.MultiplicationConfig
    known = set(P1.field_names()) | set(P2.field_names()) | set(P4.field_names())
    for k in params["all"]:
        if k not in known:
            raise ConfigError(f"unknown parameter {k!r}: no chapter takes it")
    run = dict(preset=preset, seeds=[seed])
    chapters = []
    with warnings.catch_warnings():  # the paper configs are only counted, never run on the CPU
        warnings.simplefilter("ignore", PaperOnCPUWarning)
        if "1" in keys:
            p1 = {**params["all"], **params["1"]}
            cfg = resolve(P1, **run, out_dir=str(out / CHAPTERS["1"]), p_cot_values=[p_cot],
                          **_fields(P1, p1))  # only the main sweep's one p_cot runs here
            # chapter 2's RL settings on chapter 1's model and pre-training (the same at paper)
            shared = {k: getattr(cfg, k) for k in P1.field_names()
                      if k in P2.field_names() and k not in ("out_dir", "preset")}
            rl_cfg = resolve(P2, **{**shared, **_fields(P2, p1)}, p_cot=p_cot,
                             branch_steps=[cfg.pretrain_iters], rl_branch=cfg.pretrain_iters,
                             out_dir=str(out / CHAPTERS["1"]), preset=preset)
            paper = (resolve(P1, preset="paper", **_fields(P1, p1)),
                     resolve(P2, preset="paper", **_fields(P2, p1)))
            chapters.append(Chapter("1", cfg, rl_cfg, paper, parity_pretrain.EXPERIMENT,
                                    parity_rl.EXPERIMENT, cfg.d, len(parity_pretrain.stages(paper[0])[0].jobs)
                                    + len(parity_rl.stages(paper[1])[0].jobs)))
        if "4" in keys:
            p4 = _fields(P4, {**params["all"], **params["4"]})
            bench = {"pretrain_eval_every": CH4_EVAL_EVERY} if preset == "paper" else {}
            cfg = resolve(P4, **run, out_dir=str(out / CHAPTERS["4"]), p_cot=p_cot, **{**bench, **p4})
            paper = (resolve(P4, preset="paper", p_cot=p_cot, **p4),)
            chapters.append(Chapter("4", cfg, cfg, paper, multiplication.EXPERIMENT,
                                    multiplication.EXPERIMENT, cfg.digits, len(paper[0].seeds)))
    return chapters


def run_chapter(ch: Chapter, args: argparse.Namespace, seconds: float, grace_s: float,
                prec: str) -> dict[str, Any]:
    """Pre-training, then GRPO, of one chapter within ``seconds``; writes its metrics.csv and
    config.json (after pre-training and at the end) and returns the ``benchmark`` entry."""
    t0 = time.perf_counter()
    cfg, rl_cfg, task = ch.cfg, ch.rl_cfg, ch.task
    device, seed, out = cfg.torch_device, args.seed, cfg.prepare()
    ckpt_dir = out if args.keep_checkpoints else Path(tempfile.mkdtemp(prefix=f"rlntp-gpu-paper-{ch.key}-"))
    reset_memory()
    model = new_model(cfg, task, seed)
    n_params = nonembedding_params(model)
    step_flops = mean_step_flops(cfg, task, model)
    peak = PEAK_TFLOPS[prec] * 1e12
    projected_rate = args.assumed_mfu * peak / step_flops
    bench: dict[str, Any] = {
        "chapter": CHAPTERS[ch.key], "status": "running", "budget_s": round(seconds, 1),
        "precision": prec, "float32_matmul_precision": "high (TF32)" if prec == "tf32" and
        device.startswith("cuda") else "highest", "autocast": "bf16" if prec == "bf16" else None,
        "shape": {"n_layer": cfg.n_layer, "n_head": cfg.n_head, "n_embd": cfg.n_embd,
                  "batch": cfg.pretrain_batch_size, "task": task.label, "seq_len": task.seq_len,
                  "vocab_size": task.vocab_size, "eval_size": cfg.eval_size,
                  "nonembedding_params": n_params,
                  "params": sum(p.numel() for p in model.parameters()),
                  "rl_batch": rl_cfg.prompts_per_iter * rl_cfg.num_generations},
        "pretrain_flops_per_step": round(step_flops), "flop_formula": FLOP_FORMULA,
        "peak_tflops_datasheet": PEAK_TFLOPS, "peak_source": PEAK_SOURCE,
        "assumed_mfu": args.assumed_mfu,
        "projected_pretrain_it_per_s": round(projected_rate, 2),
        "projected_pretrain_it_per_s_note": f"PROJECTION: the step's FLOPs at assumed_mfu of the "
                                            f"{prec} datasheet peak",
    }
    rows: list[dict[str, Any]] = []

    def save(wall: float | None = None) -> None:
        write_metrics(rows, out / "metrics.csv")
        write_run_info(cfg, out, time.perf_counter() - t0 if wall is None else wall, benchmark=bench,
                       rl_config=rl_cfg.to_dict() if rl_cfg is not cfg else None,
                       script="benchmarks/gpu_paper.py", command=" ".join(sys.argv),
                       git_commit=args.commit or git_commit(),
                       git_modified=None if args.commit else git_modified())

    label = CHAPTERS[ch.key]
    print(f"\n== {label}: {task.label}, {cfg.n_layer} layers x {cfg.n_embd} ({cfg.n_head} heads), "
          f"{n_params / 1e6:.2f}M non-embedding parameters, batch {cfg.pretrain_batch_size}, seq "
          f"{task.seq_len}, eval {cfg.eval_size}; {prec}; budget {seconds:.0f} s", flush=True)
    x = seeds.test_prompts(task, cfg.eval_size, seed, device)

    # next-token pre-training, the paper's schedule, stopped by the clock
    pre_share = seconds * args.pretrain_frac

    def pre_progress() -> None:
        rows[:] = pretrain_rows(pre.history, cfg, task, seed, ch.pre_experiment)
        step, m = pre.history[-1]
        print(f"  pretrain step {step}: greedy acc {m['acc_greedy']:.3f}, loss "
              f"{m.get('loss', math.nan):.4f}, {pre.wall_s:.0f} s", flush=True)

    recorder = LossRecorder()
    pre = Phase(task, x, lambda s: seeds.stream_seed("eval_sampling", seed, s), pre_share,
                on_eval=pre_progress, loss=recorder)
    try:
        with precision(prec, device), recorder.recording():
            train_ntp(model, Deadline(task, pre, pre.start + pre_share + grace_s), cfg, seed=seed,
                      run_dir=ckpt_dir / "pretrain", evaluate=pre, desc="pretrain")
    except _Budget:
        pass
    sync()
    branch, rate, rate_all = pre.steps[-1], pre.rate(), pre.rate(steady=False)
    mem_pre = memory()
    achieved = step_flops * rate / 1e12 if rate else None
    bench.update({
        "pretrain_iters_done": branch, "pretrain_wall_s": round(pre.wall_s, 1),
        "pretrain_it_per_s": _round(rate, 2), "pretrain_it_per_s_incl_warmup": _round(rate_all, 2),
        "pretrain_tokens_per_s": _round(rate * cfg.pretrain_batch_size * (task.seq_len - 1), 0)
        if rate else None,
        "pretrain_tokens_per_s_note": "batch x (seq_len - 1) positions per step, padding included",
        "pretrain_achieved_tflops": _round(achieved, 2),
        "pretrain_fraction_of_peak": _round(achieved * 1e12 / peak, 4) if achieved else None,
        "pretrain_eval_s": _round(pre.mean_eval_s(), 3), "pretrain_evals": len(pre.steps),
        "gpu_memory_pretrain": mem_pre,
    })
    save()
    print(f"pre-training: {branch} iterations in {pre.wall_s:.0f} s; measured {rate or 0:.2f} it/s "
          f"(evaluations excluded, after warm-up; {pre.mean_eval_s():.2f} s per evaluation), "
          f"{achieved or 0:.1f} TFLOP/s = {100 * (achieved or 0) * 1e12 / peak:.1f}% of the {prec} "
          f"peak; projected {projected_rate:.2f} it/s at {args.assumed_mfu:.0%} of it; "
          f"memory {json.dumps(mem_pre)}", flush=True)

    # GRPO from where pre-training stopped
    # the rest of the chapter's share, but at least half of what GRPO was meant to get
    rl_share = max(0.5 * seconds * (1 - args.pretrain_frac), seconds - (time.perf_counter() - t0))
    run = RLRun("grpo", "e2e", rl_cfg.temperature, branch, seed)
    pre_rows = list(rows)

    def rl_progress() -> None:
        hist = [(it, it * rl_cfg.rl_batch, m) for it, m in rl.history]
        rows[:] = pre_rows + rl_rows({run: hist}, rl_cfg, task, ch.rl_experiment)

    rl = Phase(task, x, lambda s: seeds.stream_seed("rl_eval_sampling", seed, s), rl_share,
               return_lengths=True, on_eval=rl_progress)
    reset_memory()
    try:
        with precision(prec, device):
            train_rl(model, Deadline(task, rl, rl.start + rl_share + grace_s), rl_cfg, method="grpo",
                     reward="e2e", temperature=rl_cfg.temperature, seed=seed, branch_step=branch,
                     run_dir=ckpt_dir / "rl", evaluate=rl, n_eval=len(x), desc="GRPO")
    except _Budget:
        pass
    sync()
    rl_rate, mem_rl = rl.rate(), memory()
    state = ckpt_dir / "rl" / "rl_state.pt"  # train_rl's own history: the rollout stats besides
    if state.exists():
        hist = [h for h in load_checkpoint_file(state, map_location="cpu")["history"] if h[0] <= rl.steps[-1]]
        rows[:] = pre_rows + rl_rows({run: hist}, rl_cfg, task, ch.rl_experiment)
    with precision(prec, device):
        full_s = full_width_iter_s(model, task, rl_cfg)
    rl_full_flops = rl_iter_flops_full_width(rl_cfg, task, model)
    last = rl.history[-1][1]
    bench.update({
        "rl_iters_done": rl.steps[-1], "rl_wall_s": round(rl.wall_s, 1), "rl_it_per_s": _round(rl_rate, 3),
        "rl_eval_s": _round(rl.mean_eval_s(), 3), "rl_iter_s_full_width": round(full_s, 4),
        "rl_flops_per_iter_full_width": round(rl_full_flops),
        "rl_achieved_tflops_full_width": round(rl_full_flops / full_s / 1e12, 2),
        "rl_tokens_per_s_full_width": round(rl_cfg.rl_batch * task.max_new_tokens / full_s),
        "rl_mean_len_sample_last_eval": _round(last.get("len_mean_sample"), 2),
        "gpu_memory_rl": mem_rl,
    })
    save()
    print(f"GRPO: {rl.steps[-1]} iterations in {rl.wall_s:.0f} s, {rl_rate or 0:.2f} it/s; at full "
          f"response width {full_s:.3f} s per iteration ({bench['rl_tokens_per_s_full_width']} "
          f"generated tokens/s, {bench['rl_achieved_tflops_full_width']} TFLOP/s); greedy acc "
          f"{last['acc_greedy']:.3f}; memory {json.dumps(mem_rl)}", flush=True)

    # one pre-training step at each precision, on a copy; the projection
    names = PRECISIONS if device.startswith("cuda") else ("fp32", "bf16")
    probe = precision_probe(model, task, cfg, names, step_flops, args.probe_warmup, args.probe_steps)
    bench["precision_probe"] = probe
    bench["precision_probe_note"] = ("median of one pre-training step (batch, ntp_loss, optimizer "
                                     "step) per precision on a copy of the model; bf16 = autocast "
                                     "around the repository's fp32 code")
    pre_step = 1 / rate if rate else math.nan
    rl_iter = 1 / rl_rate if rl_rate else math.nan
    pre_eval, rl_eval = pre.mean_eval_s(), rl.mean_eval_s()
    projected = ch.project(pre_step, pre_eval, rl_iter, rl_eval)
    projected_full = ch.project(pre_step, pre_eval, full_s, rl_eval)
    per_prec = {p: ch.project(v["step_s"], pre_eval, rl_iter, rl_eval)["total_s"]
                for p, v in probe.items()}
    paper_iters = ch.paper[0].pretrain_iters
    paper_step_flops = mean_step_flops(ch.paper[0], task, model)  # the preset's batch
    bf16_rate = args.assumed_mfu * PEAK_TFLOPS["bf16"] * 1e12
    flop_hours = ch.pretrain_runs * paper_iters * paper_step_flops / bf16_rate / 3600
    bench.update({
        "status": "done",
        "PROJECTION_paper_preset_s": projected,
        "PROJECTION_paper_preset_s_full_width_rl": projected_full,
        "PROJECTION_paper_preset_total_s_by_precision": per_prec,
        "PROJECTION_paper_preset_gpu_hours": round(projected["total_s"] / 3600, 2),
        "PROJECTION_pretraining_gpu_hours_at_assumed_mfu_of_bf16_peak": round(flop_hours, 3),
        "paper_pretrain_flops_per_step": round(paper_step_flops),
        "projection_notes": "PROJECTIONS, not measurements: one GPU, runs one after another, from the "
                            "rates measured here (pre-training steps, evaluations, GRPO iterations at "
                            "the response lengths seen here; '_full_width_rl': every response at "
                            "max_new_tokens); RL runs to their last iteration (no early stop); STaR "
                            "round ~ star_samples / rl_batch GRPO iterations; '_by_precision': the "
                            "pre-training step at each probed precision, RL and evaluations at the "
                            "run's; '_at_assumed_mfu_of_bf16_peak': the full preset's pre-training "
                            "FLOPs only (no evaluations, no RL) at assumed_mfu of the bf16 datasheet peak",
        "gemm_tflops": args.gemm,
    })
    wall = time.perf_counter() - t0
    save(wall)
    parts = ", ".join(f"{k} {hms(v)}" for k, v in projected.items() if k.endswith("_s"))
    print(f"measured vs projected ({label}, {prec}): pre-training {rate or 0:.2f} it/s measured, "
          f"{projected_rate:.2f} it/s projected at {args.assumed_mfu:.0%} of the datasheet peak "
          f"(ratio {(rate or 0) / projected_rate:.2f}); probe "
          + ", ".join(f"{p} {v['it_per_s']} it/s ({v['tflops']} TFLOP/s)" for p, v in probe.items()))
    print(f"PROJECTION, full paper preset on one GPU from the measured rates: {parts} "
          f"({projected['total_s'] / 3600:.2f} GPU hours; with full-width RL responses "
          f"{hms(projected_full['total_s'])}); by pre-training precision "
          + ", ".join(f"{p} {hms(s)}" for p, s in per_prec.items())
          + f"; pre-training FLOPs alone at {args.assumed_mfu:.0%} of the bf16 peak {flop_hours:.3f} h",
          flush=True)
    print(f"{label}: wall {wall:.0f} s; written {out / 'metrics.csv'}, {out / 'config.json'}", flush=True)
    if not args.keep_checkpoints:
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    del model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return bench


def probe_only(ch: Chapter, args: argparse.Namespace) -> dict[str, Any]:
    """:func:`precision_probe` of a fresh model of the chapter at every :data:`PROBES` (a step's
    cost does not depend on what the weights learned); writes OUT/<chapter>/precision_probe.json."""
    cfg, task = ch.cfg, ch.task
    device = cfg.torch_device
    model = new_model(cfg, task, args.seed)
    step_flops = mean_step_flops(cfg, task, model)
    names = PROBES if device.startswith("cuda") else tuple(p for p in PROBES if p != "tf32")
    print(f"\n== {CHAPTERS[ch.key]} probe: {task.label}, {cfg.n_layer} x {cfg.n_embd}, batch "
          f"{cfg.pretrain_batch_size}; {args.probe_warmup} + {args.probe_steps} steps each", flush=True)
    probe = precision_probe(model, task, cfg, names, step_flops, args.probe_warmup, args.probe_steps)
    runs, iters = ch.pretrain_runs, ch.paper[0].pretrain_iters
    hours = {name: round(runs * iters * v["step_s"] / 3600, 2) for name, v in probe.items()}
    for name, v in probe.items():
        print(f"  {name}: {v['step_s'] * 1e3:.1f} ms per step ({v['it_per_s']} it/s, {v['tflops']} "
              f"TFLOP/s; first steps {v['first_steps_s'] * 1e3:.1f} ms), loss {v['loss']}; "
              f"PROJECTION: the full preset's {runs} x {iters} pre-training steps {hours[name]} h",
              flush=True)
    info = {
        "chapter": CHAPTERS[ch.key], "device": device, "device_name": device_name(device),
        "torch_version": torch.__version__, "git_commit": args.commit or git_commit(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": " ".join(sys.argv),
        "shape": {"n_layer": cfg.n_layer, "n_head": cfg.n_head, "n_embd": cfg.n_embd,
                  "batch": cfg.pretrain_batch_size, "task": task.label, "seq_len": task.seq_len,
                  "group_by_length": cfg.group_by_length},
        "pretrain_flops_per_step": round(step_flops), "flop_formula": FLOP_FORMULA,
        "gemm_tflops": args.gemm, "peak_tflops_datasheet": PEAK_TFLOPS,
        "precision_probe": probe,
        "PROJECTION_pretraining_gpu_hours": hours,
        "notes": "a fresh model's pre-training step (batch, ntp_loss, optimizer step), median after "
                 "the warm-up; bf16 = autocast (no weight cache) around the repository's fp32 code; "
                 "bf16_weight_cache = with autocast's weight cache (stale weights across steps); "
                 "bf16_fixed_shapes = group_by_length off (its own FLOPs); the projection is the "
                 f"preset's pre-training steps alone ({runs} runs x {iters}), no evaluations, no RL",
    }
    path = cfg.prepare() / "precision_probe.json"
    path.write_text(json.dumps(info, indent=2) + "\n")
    print(f"written {path}", flush=True)
    return info


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True,
                    help="folder for <chapter>/metrics.csv and config.json")
    ap.add_argument("--chapters", nargs="+", default=["1", "4"], choices=sorted(CHAPTERS))
    ap.add_argument("--budget-s", type=float, default=390.0,
                    help="seconds of training and evaluation, all chapters")
    ap.add_argument("--ch4-share", type=float, default=0.6,
                    help="share of the budget for chapter 4 when both run")
    ap.add_argument("--pretrain-frac", type=float, default=0.7,
                    help="share of a chapter's budget for pre-training")
    ap.add_argument("--grace-s", type=float, default=None,
                    help="hard stop this long after a phase's share (default: a quarter of it, >= 20 s)")
    ap.add_argument("--precision", choices=PRECISIONS, default="tf32",
                    help="of the runs (CPU: always fp32): fp32, tf32 (TF32 matmuls) or bf16 (autocast)")
    ap.add_argument("--assumed-mfu", type=float, default=0.4,
                    help="fraction of the datasheet peak the projected rate assumes")
    ap.add_argument("--probe-steps", type=int, default=10, help="timed steps per precision of the probe")
    ap.add_argument("--probe-warmup", type=int, default=3, help="untimed steps before them")
    ap.add_argument("--probe-only", action="store_true",
                    help=f"only time pre-training steps of a fresh model per chapter at {', '.join(PROBES)}; "
                         "writes OUT/<chapter>/precision_probe.json")
    ap.add_argument("--p-cot", type=float, default=0.25, help="p_cot of both chapters")
    ap.add_argument("--tiny", action="store_true", help="the smoke preset (CPU test, seconds)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--commit", default=None, help="the git commit to record (default: git rev-parse HEAD)")
    ap.add_argument("--keep-checkpoints", action="store_true",
                    help="keep the checkpoints in OUT/<chapter>/pretrain and rl (default: a scratch folder)")
    ap.add_argument("-p", "--param", action="append", default=[], metavar="[1:|4:]KEY=VALUE",
                    help="override a config field of every chapter that has it, or of chapter 1 "
                         "(and its GRPO) or 4 only, e.g. -p 1:n_embd=256 -p eval_size=64")
    args = ap.parse_args(argv)
    if not 0 < args.pretrain_frac < 1 or args.budget_s <= 0 or not 0 < args.ch4_share < 1:
        ap.error("--budget-s must be > 0, --pretrain-frac and --ch4-share in (0, 1)")
    t_start = time.perf_counter()
    preset = "smoke" if args.tiny else "paper"
    keys = [k for k in CHAPTERS if k in args.chapters]
    try:
        chapters = build_chapters(keys, preset, args.seed, args.p_cot, args.out, args.param)
    except ConfigError as e:
        ap.error(str(e))
    device = chapters[0].cfg.torch_device
    prec = args.precision if device.startswith("cuda") else "fp32"
    print(f"device {device} ({device_name(device)}), torch {torch.__version__}; chapters {keys}; "
          f"budget {args.budget_s:g} s; precision {prec}", flush=True)
    args.gemm = gemm_tflops(("fp32", "tf32", "bf16")) if device.startswith("cuda") else {}
    if args.gemm:
        print(f"gemm 8192^3 TFLOP/s: {json.dumps(args.gemm)} (datasheet {json.dumps(PEAK_TFLOPS)})",
              flush=True)

    if args.probe_only:
        return {ch.key: probe_only(ch, args) for ch in chapters}
    results: dict[str, Any] = {}
    failed = []
    for ch in chapters:
        left = args.budget_s - (time.perf_counter() - t_start)
        share = (1 - args.ch4_share) * args.budget_s if ch.key == "1" and len(chapters) > 1 else left
        seconds = max(5.0, min(share, left))
        grace = args.grace_s if args.grace_s is not None else max(20.0, seconds / 4)
        try:
            results[ch.key] = run_chapter(ch, args, seconds, grace, prec)
        except Exception as e:  # record it, run the next chapter
            failed.append(ch.key)
            tb = traceback.format_exc()
            print(f"{CHAPTERS[ch.key]} FAILED:\n{tb}", flush=True)
            info = ch.cfg.prepare() / "config.json"
            try:
                data = json.loads(info.read_text()) if info.exists() else {"config": ch.cfg.to_dict()}
                data.setdefault("benchmark", {})["status"] = "failed"
                data["error"] = f"{type(e).__name__}: {e}\n{tb[-4000:]}"
                info.write_text(json.dumps(data, indent=2, default=str) + "\n")
            except Exception:  # noqa: BLE001 - the report above is what matters
                pass
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    print(f"\nwall {time.perf_counter() - t_start:.0f} s; chapters done {sorted(results)}"
          + (f", FAILED {failed}" if failed else ""), flush=True)
    if failed:
        raise SystemExit(1)
    return results


if __name__ == "__main__":
    main()
