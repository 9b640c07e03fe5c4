"""Chapter 5: a pretrained language model, SFT on a short/long mixture, then GRPO against an
SFT-alone control (paper Sec. 6, Fig. 5 right).

Each dataset of ``datasets`` runs on its own, in three stages, every job cached under
``cfg.path / "runs"``:

1. *SFT run* per (dataset, seed): TRL's ``SFTTrainer`` on ``train_size`` problems, a fraction
   ``p_cot`` of them with the worked solution, saving checkpoints at the epochs
   ``sft_checkpoints``.
2. *Checkpoint measurement* per (dataset, seed, checkpoint): on ``test_size`` held-out problems,
   greedy accuracy, length, long and truncated fractions, and ``sample_k`` responses per problem
   at temperature 1: how often they are long, and how often long and short ones are right.
3. *Branches* from the gated checkpoint (the last one), per (dataset, seed): GRPO (TRL's
   ``GRPOTrainer``, correctness reward, ``rl_iters`` steps of ``prompts_per_iter`` fresh prompts x
   ``num_generations`` samples) and the *control*, SFT continued on the mixture over the same
   number of sequences; greedy test metrics every ``eval_every`` GRPO steps (or the same number
   of sequences).

``words`` (the ``cpu`` book) are generated arithmetic word problems
(:mod:`rlntp.data.word_problems`: SFT, GRPO and test problems disjoint by construction);
``gsm8k`` and ``math`` (the ``paper`` preset) are read from ``data_dir`` or the hub; their GRPO
prompts are the training split, as in the paper. Sequences seen: SFT counts ``epoch x train_size``;
a branch adds ``step x prompts_per_iter x num_generations`` (every generation counts).

Several GPUs (TRL's own path; every process runs this driver)::

    accelerate launch --config_file notebooks/accelerate_deepspeed.yaml \\
        -m rlntp.experiments.pretrained_lm --preset paper -p 'datasets=["gsm8k"]'
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import time
import warnings
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from rlntp.chapter import Chapter, Done
from rlntp.claims import Claim, Result, fmt
from rlntp.config import (
    ConfigError,
    ExperimentConfig,
    RLPart,
    param,
    require,
    require_at_least,
    require_list,
    require_positive,
)
from rlntp.data import word_problems
from rlntp.data.math_text import (
    DATASETS as FILE_DATASETS,
)
from rlntp.data.math_text import (
    HUB,
    Problem,
    choose_long,
    data_hash,
    load_problems,
    rl_records,
    sft_records,
)
from rlntp.hub import hub_access  # first: the HF libraries offline
from rlntp.llm import is_hub_id, model_source
from rlntp.parallel import Stage
from rlntp.params import parse_param, resolve
from rlntp.results import cached, metric_rows, source_hash, write_run_info

WORDS = "words"
DATASETS = (WORDS, *FILE_DATASETS)
MODELS_HELP = "'smollm2-135m', 'tiny-random', a local model folder or a hub id"
LOSS_TYPES = ("grpo", "dapo", "dr_grpo", "bnpo")
CONTROL = "control"  # the method name of the SFT-alone branch
PAPER_COMMAND = ("python -m rlntp.book --preset paper --only 05_pretrained_lm -p device=cuda "
                 "(Llama 3.2 3B base, GSM8K and MATH, on a GPU)")


@dataclasses.dataclass(frozen=True)
class PretrainedLMConfig(RLPart, ExperimentConfig):
    """SFT on the short/long mixture, then GRPO or more SFT. Defaults are the ``cpu`` preset."""

    CHAPTER: ClassVar[str] = "05_pretrained_lm"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": dict(model="tiny-random", workers=1, train_size=8, test_size=4, p_cot=0.25,
                      sft_epochs=2, sft_checkpoints=(1, 2), sft_batch_size=4, rl_iters=2,
                      prompts_per_iter=2, num_generations=2, max_completion_length=8,
                      eval_every=1, sft_learning_rate=1e-3, learning_rate=1e-3, sample_k=2,
                      sample_data=True),
        # RL knobs of the cpu book (the defaults of RLPart are the parity chapters')
        # 8 steps: pilot B's GRPO had flipped greedy answers to long by step 8 of 16, and the
        # book's first run took 18 min with 12 on the shared 2-core machine
        "cpu": dict(rl_iters=8, prompts_per_iter=2, num_generations=8, learning_rate=3e-5,
                    eval_every=4),
        "paper": dict(model="meta-llama/Llama-3.2-3B", dtype="bfloat16",
                      datasets=("gsm8k", "math"), train_size=0, test_size=0, p_cot=0.05,
                      sft_epochs=30, sft_checkpoints=tuple(range(1, 31)), sft_batch_size=64,
                      sft_learning_rate=1e-5, rl_iters=200, prompts_per_iter=16,
                      num_generations=8, max_completion_length=512, learning_rate=1e-6,
                      eval_every=20, eval_batch_size=64, sample_k=4),
    }

    seeds: tuple[int, ...] = param((0,), "training seeds (one SFT run and its two branches each)")
    datasets: tuple[str, ...] = param((WORDS,), f"datasets, each run on its own (of {DATASETS}; "
                                      "'words': generated word problems)")
    model: str = param("smollm2-135m", MODELS_HELP)
    dtype: str = param("float32", "'float32' or 'bfloat16' (trains in bf16, GPU)")
    steps: int = param(2, "words: arithmetic steps per problem (k)")
    max_value: int = param(50, "words: every running value stays in 1..max_value")
    max_operand: int = param(10, "words: numbers added or subtracted are 2..max_operand")
    data_dir: str | None = param(None, "gsm8k/math: None: $RLNTP_DATA_DIR or ../shared/data; "
                                 "'hub': download")
    sample_data: bool = param(False, "gsm8k/math: read the small sample_*.jsonl files (tests)")
    train_size: int = param(128, "SFT problems (gsm8k/math: a seeded subset of the train split, "
                            "0: all)")
    test_size: int = param(200, "held-out test problems (gsm8k/math: a fixed subset, 0: all)")
    subset_seed: int = param(0, "picks the test problems (the same for every training seed)")
    p_cot: float = param(0.3, "fraction of SFT problems with the worked solution")
    sft_epochs: int = param(2, "SFT epochs")
    sft_checkpoints: tuple[int, ...] = param((1, 2), "SFT epochs measured; GRPO and the control "
                                             "start from the last")
    sft_batch_size: int = param(8, "SFT batch size (also of the control)")
    sft_learning_rate: float = param(1e-4, "SFT (peak) learning rate (AdamW; ours)")
    sft_schedule: str = param("constant", "SFT learning-rate schedule: 'constant' or 'linear' (to 0 "
                              "at the end of the SFT run, and of the control)")
    loss_type: str = param("dapo", f"TRL's GRPO loss normalisation, one of {LOSS_TYPES} "
                           "('dapo': per token of the batch, TRL's default)")
    max_completion_length: int = param(64, "tokens, for every sample and greedy evaluation")
    eval_batch_size: int = param(50, "prompts per batch of greedy evaluation and sampling")
    sample_k: int = param(1, "responses per test problem sampled at temperature 1 from each SFT "
                          "checkpoint, for the long fraction and long vs short accuracy")

    def check(self) -> None:
        require(self.device in ("auto", "cpu", "cuda"), "device", self.device,
                "'auto', 'cpu' or 'cuda' (TRL places the model itself: choose a GPU with "
                "CUDA_VISIBLE_DEVICES=N)")
        require_list(self, "datasets", f"names from {DATASETS}", lambda d: d in DATASETS)
        require(self.dtype in ("float32", "bfloat16"), "dtype", self.dtype,
                "'float32' or 'bfloat16'")
        require(self.sft_schedule in ("linear", "constant"), "sft_schedule", self.sft_schedule,
                "'linear' or 'constant'")
        require(self.loss_type in LOSS_TYPES, "loss_type", self.loss_type, f"one of {LOSS_TYPES}")
        require(0.0 <= self.p_cot <= 1.0, "p_cot", self.p_cot, "a number in [0, 1]")
        require_at_least(self, 0, ("train_size", "test_size"))
        require_at_least(self, 1, ("sft_epochs", "sft_batch_size", "max_completion_length",
                                   "eval_batch_size", "sample_k", "steps"))
        require(self.max_operand >= 2, "max_operand", self.max_operand, "an integer >= 2")
        require(self.max_value >= 2 * self.max_operand, "max_value", self.max_value,
                f"at least 2 x max_operand = {2 * self.max_operand}")
        require_list(self, "sft_checkpoints", f"epochs in 1..sft_epochs={self.sft_epochs}",
                     lambda e: 1 <= e <= self.sft_epochs)
        require(WORDS not in self.datasets or (self.train_size > 0 and self.test_size > 0),
                "train_size", self.train_size, "> 0 with test_size > 0 for generated problems")
        require(self.eval_every * self.rl_batch % self.sft_batch_size == 0
                and self.rl_iters * self.rl_batch % self.sft_batch_size == 0, "sft_batch_size",
                self.sft_batch_size, "a divisor of eval_every and rl_iters x prompts_per_iter x "
                "num_generations (the control evaluates after as many sequences as GRPO)")
        require_positive(self, ("sft_learning_rate",))
        try:  # a typo fails now, not after a minute of hub retries (names only: no file is read)
            model_source(self.model)
        except ValueError as e:
            raise ConfigError(str(e)) from None

    def scale(self) -> str:
        words = f" (k = {self.steps}, values < {self.max_value + 1})" if WORDS in self.datasets else ""
        return f"{self.dataset}{words}, {self.model}, p_cot = {self.p_cot:g}, {super().scale()}"

    @property
    def dataset(self) -> str:
        """The datasets as one name, e.g. ``"gsm8k+math"``; the dataset of a per-dataset job."""
        return "+".join(self.datasets)

    def only(self, dataset: str) -> PretrainedLMConfig:
        """This config restricted to ``dataset`` (one SFT run and its branches per seed)."""
        return dataclasses.replace(self, datasets=(dataset,))

    @property
    def uses_hub(self) -> bool:
        """The run downloads from the Hugging Face hub: the user asked for it explicitly with
        ``data_dir='hub'`` (and a file dataset) or a ``model`` that is a hub id."""
        files = any(d in FILE_DATASETS for d in self.datasets)
        return (files and self.data_dir == HUB) or is_hub_id(self.model)

    @property
    def gated_epoch(self) -> int:
        """The SFT checkpoint GRPO and the control start from (the gate is checked there)."""
        return max(self.sft_checkpoints)

    @property
    def branch_sequences(self) -> int:
        """Sequences each branch trains on: GRPO's generations, the control's demonstrations."""
        return self.rl_iters * self.rl_batch

    def settings(self, seed: int):
        from rlntp.llm.train import TrainSettings

        return TrainSettings(self.dataset, self.torch_device, self.dtype == "bfloat16",
                             self.max_completion_length, self.eval_batch_size, seed)


# --- the problems ----------------------------------------------------------------------------------
def problems(cfg: PretrainedLMConfig, split: str, seed: int) -> list[Problem]:
    """The problems of ``split`` for the one dataset of ``cfg``: ``sft`` (``train_size``), ``rl``
    (GRPO's prompts, and the control's demonstrations: ``branch_sequences``) or ``test``
    (``test_size``, the same for every seed). Word problems are generated (disjoint splits);
    GSM8K and MATH read their files, GRPO's prompts being the train split."""
    if cfg.dataset == WORDS:
        n = {"sft": cfg.train_size, "rl": cfg.branch_sequences, "test": cfg.test_size}[split]
        stream = cfg.subset_seed if split == "test" else seed
        return word_problems.problems(split, n, stream, cfg.steps, cfg.max_value, cfg.max_operand)
    kw = dict(data_dir=cfg.data_dir, sample=cfg.sample_data)
    if split == "test":
        return load_problems(cfg.dataset, "test", cfg.test_size or None, cfg.subset_seed, **kw)
    train = load_problems(cfg.dataset, "train", cfg.train_size or None, seed, **kw)
    return train if split == "sft" else [train[i % len(train)] for i in range(cfg.branch_sequences)]


def _setup(cfg: PretrainedLMConfig, seed: int):
    """Hub access only if the config asks for it; the tokenizer."""
    hub_access(cfg.uses_hub)  # before the HF libraries are imported (rlntp.llm turned them off)
    from rlntp.llm.models import load_tokenizer
    from rlntp.llm.train import quiet

    quiet()
    torch.manual_seed(seed)
    return load_tokenizer(cfg.model)


def _load(cfg: PretrainedLMConfig, seed: int, path: str | Path | None = None):
    """(tokenizer, model) on the run's device: ``path`` (a checkpoint) or ``cfg.model``."""
    from rlntp.llm.models import load_model

    tok = _setup(cfg, seed)
    model = load_model(str(path) if path else cfg.model, tok, seed, getattr(torch, cfg.dtype))
    return tok, model.to(cfg.settings(seed).device)


def runs_root(cfg: PretrainedLMConfig) -> Path:
    """Where SFT checkpoints and cached results go, keyed by the config (not the data folder's
    path), the contents of the data files it reads and the code version."""
    key = cfg.key("seeds", "eval_batch_size", "data_dir")
    return cfg.path / "runs" / f"{key}-{data(cfg)}-{source_hash()}"


def _ckpt(root: Path, seed: int, epoch: int) -> Path:
    return root / f"seed{seed}" / "sft" / f"epoch_{epoch}"


# --- the jobs --------------------------------------------------------------------------------------
def sft_run(cfg: PretrainedLMConfig, seed: int, root: Path) -> dict[str, Any]:
    """SFT on the mixture; saves the checkpoints. Returns the epoch losses, the long count and
    the wall time."""
    from rlntp.llm.train import sft

    t0 = time.time()
    tok, model = _load(cfg, seed)
    train = problems(cfg, "sft", seed)
    long = choose_long(len(train), cfg.p_cot, seed)
    losses = sft(model, tok, sft_records(train, long, cfg.dataset, tok), cfg.settings(seed),
                 root / f"seed{seed}" / "sft", cfg.sft_epochs, cfg.sft_checkpoints,
                 cfg.sft_learning_rate, cfg.sft_batch_size, schedule=cfg.sft_schedule)
    return {"losses": losses, "n_long": sum(long), "n_train": len(long), "wall_s": time.time() - t0}


def cached_sft_run(cfg: PretrainedLMConfig, seed: int, root: Path) -> dict[str, Any]:
    """The cached SFT summary, recomputed (with its checkpoints) if a checkpoint is missing or
    damaged."""
    path = root / f"seed{seed}" / "sft.pt"
    if path.exists():
        from rlntp.llm.models import check_model_dir

        for epoch in cfg.sft_checkpoints:
            problem = check_model_dir(_ckpt(root, seed, epoch))
            if problem:
                warnings.warn(f"{problem}: running the SFT of seed {seed} again", RuntimeWarning,
                              stacklevel=2)
                path.unlink(missing_ok=True)
                break
    return cached(path, lambda: sft_run(cfg, seed, root))


N_SAMPLES = 2  # responses kept as text for the chapter (the first test problems)


def measure_checkpoint(cfg: PretrainedLMConfig, seed: int, epoch: int, root: Path
                       ) -> dict[str, Any]:
    """Greedy test metrics of the SFT checkpoint of ``epoch`` and, from ``sample_k`` responses
    per test problem at temperature 1, the long fraction and long vs short accuracy."""
    from rlntp.llm.train import greedy, sample_correct

    t0 = time.time()
    tok, model = _load(cfg, seed, _ckpt(root, seed, epoch))
    test = rl_records(problems(cfg, "test", seed), cfg.dataset, tok)
    s = cfg.settings(seed)
    metrics, texts = greedy(model, tok, test, s)
    metrics.update(sample_correct(model, tok, test, cfg.sample_k, cfg.temperature, s)[1])
    metrics["wall_s"] = time.time() - t0
    return {"metrics": metrics, "samples": texts[:N_SAMPLES]}


def cached_checkpoint(cfg: PretrainedLMConfig, seed: int, epoch: int, root: Path) -> dict[str, Any]:
    return cached(root / f"seed{seed}" / f"checkpoint{epoch}.pt",
                  lambda: measure_checkpoint(cfg, seed, epoch, root))


def branch(cfg: PretrainedLMConfig, seed: int, method: str, root: Path) -> dict[str, Any]:
    """From the gated checkpoint: GRPO (``method="grpo"``) or the control (SFT on the mixture
    over as many sequences). Returns {"history": {step: metrics}} (step in GRPO steps; step 0 is
    the checkpoint, measured by :func:`measure_checkpoint`), the last greedy responses to the
    first test problems and the wall time."""
    from rlntp.llm.train import _EvalAndStop, greedy, grpo, sft

    t0 = time.time()
    tok, model = _load(cfg, seed, _ckpt(root, seed, cfg.gated_epoch))
    s = cfg.settings(seed)
    test = rl_records(problems(cfg, "test", seed), cfg.dataset, tok)
    fresh = problems(cfg, "rl", seed)
    out_dir = root / f"seed{seed}" / method
    if method == "grpo":
        prompts = rl_records(fresh[:cfg.rl_iters * cfg.prompts_per_iter], cfg.dataset, tok)
        history = grpo(model, tok, prompts, test, s, out_dir, cfg, loss_type=cfg.loss_type,
                       evaluate_first=False)
        last = max(k for k, v in history.items() if "acc_greedy" in v)
    else:
        per_eval = cfg.eval_every * cfg.rl_batch // cfg.sft_batch_size  # SFT steps between evals
        callback = _EvalAndStop(per_eval, 0, lambda m: greedy(m, tok, test, s)[0])
        long = choose_long(len(fresh), cfg.p_cot, seed + 1)
        losses = sft(model, tok, sft_records(fresh, long, cfg.dataset, tok), s, out_dir, 1, (),
                     cfg.sft_learning_rate, cfg.sft_batch_size, callbacks=(callback,),
                     schedule=cfg.sft_schedule)
        to_step = cfg.sft_batch_size / cfg.rl_batch  # SFT step -> GRPO steps of as many sequences
        scores = {round(k * to_step): v for k, v in callback.results.items()}
        history, last = scores, max(scores)
        history[last]["loss"] = losses.get(1, math.nan)
    _, texts = greedy(model, tok, test[:N_SAMPLES], s)
    return {"history": history, "samples": texts, "wall_s": time.time() - t0, "last": last}


def cached_branch(cfg: PretrainedLMConfig, seed: int, method: str, root: Path) -> dict[str, Any]:
    return cached(root / f"seed{seed}" / f"{method}.pt", lambda: branch(cfg, seed, method, root))


def _jobs(cfg: PretrainedLMConfig) -> list[tuple[PretrainedLMConfig, Path]]:
    """(single-dataset config, its runs folder) per dataset, computed once: every process uses
    the same folders."""
    return [(one, runs_root(one)) for one in map(cfg.only, cfg.datasets)]


def stages(cfg: PretrainedLMConfig) -> list[Stage]:
    """SFT per (dataset, seed); each checkpoint measured; GRPO and the control from the last."""
    jobs = _jobs(cfg)
    return [Stage("SFT runs", cached_sft_run,
                  [(one, seed, root) for one, root in jobs for seed in cfg.seeds]),
            Stage("SFT checkpoints", cached_checkpoint,
                  [(one, seed, e, root) for one, root in jobs for seed in cfg.seeds
                   for e in cfg.sft_checkpoints]),
            Stage("branches", cached_branch,
                  [(one, seed, m, root) for one, root in jobs for seed in cfg.seeds
                   for m in ("grpo", CONTROL)])]


GREEDY = ("acc_greedy", "len_mean_greedy", "frac_long_greedy", "frac_truncated_greedy")


def rows(cfg: PretrainedLMConfig, done: Done) -> list[dict[str, Any]]:
    """Tidy rows: each SFT checkpoint (phase ``sft``, step = epoch, with the SFT run's loss and
    wall time), and each branch from the gated one (GRPO: phase ``rl``, method ``grpo``; the
    control: phase ``sft``, method ``control``), step in GRPO steps, step 0 = the checkpoint."""
    sfts = {(one.dataset, seed): r for (one, seed, _), r in done["SFT runs"]}
    stars = {(one.dataset, seed, e): r["metrics"] for (one, seed, e, _), r in done["SFT checkpoints"]}
    out: list[dict[str, Any]] = []
    for (d, seed, epoch), metrics in stars.items():
        n, summary = sfts[d, seed]["n_train"], sfts[d, seed]
        extra = {"loss": summary["losses"].get(epoch, math.nan),
                 "n_long_train": summary["n_long"], "wall_s_sft": summary["wall_s"]}
        out += metric_rows({**metrics, **extra}, experiment=d, p_cot=cfg.p_cot, phase="sft",
                           seed=seed, step=epoch, sequences_seen=epoch * n)
    for (one, seed, method, _), result in done["branches"]:
        e, d = one.gated_epoch, one.dataset
        start = e * sfts[d, seed]["n_train"]
        history = {0: {m: stars[d, seed, e][m] for m in GREEDY}, **result["history"]}
        history[result["last"]] = {**history[result["last"]], "wall_s": result["wall_s"]}
        keys = (dict(phase="rl", method="grpo", reward="correct", temperature=cfg.temperature)
                if method == "grpo" else dict(phase="sft", method=CONTROL))
        for step, metrics in sorted(history.items()):
            out += metric_rows(metrics, experiment=d, p_cot=cfg.p_cot, seed=seed, branch_step=e,
                               step=step, sequences_seen=start + step * cfg.rl_batch, **keys)
    return out


def data(cfg: PretrainedLMConfig) -> str:
    """A hash of the contents of the data files the chapter reads ("generated": none)."""
    files = "+".join(d for d in cfg.datasets if d in FILE_DATASETS)
    return data_hash(files, cfg.data_dir, cfg.sample_data) if files else "generated"


# --- the criteria (fixed before the book's run) ----------------------------------------------------
Z = 1.96  # 95% Wilson score intervals
MIN_FORMAT = 20  # at least this many sampled answers of each format: fewer give intervals too wide
MOSTLY = 0.5  # "mostly short" / "mostly long": more than half of the greedy answers


def wilson(k: float, n: float, z: float = Z) -> tuple[float, float]:
    """The Wilson score interval of ``k`` successes in ``n`` trials ((nan, nan) if n = 0)."""
    if n <= 0:
        return math.nan, math.nan
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _interval(acc: float, n: float) -> str:
    lo, hi = wilson(acc * n, n)
    return f"{fmt(acc)} [{fmt(lo)}, {fmt(hi)}]"


def _pooled(frame: pd.DataFrame, acc: str, n: str | float) -> tuple[float, float]:
    """(accuracy, count) pooled over seeds: ``acc`` weighted by ``n`` (a column or a number)."""
    w = frame.pivot_table(index="seed", columns="metric", values="value")
    if acc not in w:
        return math.nan, 0.0
    counts = w[n] if isinstance(n, str) else pd.Series(float(n), index=w.index)
    total = counts.sum()
    return (float((w[acc].fillna(0) * counts).sum() / total) if total else math.nan), float(total)


def gate(df: pd.DataFrame, cfg: Any, dataset: str) -> tuple[bool, str]:
    """The gate at the gated checkpoint: sampled long answers right more often than short ones
    (their Wilson intervals apart, at least :data:`MIN_FORMAT` of each), and greedy decoding
    mostly short. (passed, the numbers as text), pooled over seeds."""
    star = df[(df.experiment == dataset) & (df.phase == "sft") & df.method.isna()
              & (df.step == cfg.gated_epoch)] if "method" in df else df.iloc[:0]
    (a_long, n_long), (a_short, n_short) = (_pooled(star, f"acc_sample_{f}", f"n_sample_{f}")
                                            for f in ("long", "short"))
    greedy_long = star[star.metric == "frac_long_greedy"].value.median()
    lo_long, hi_short = wilson(a_long * n_long, n_long)[0], wilson(a_short * n_short, n_short)[1]
    passed = bool(min(n_long, n_short) >= MIN_FORMAT and lo_long > hi_short
                  and greedy_long < MOSTLY)
    text = (f"gate at SFT epoch {cfg.gated_epoch}: sampled long answers right "
            f"{_interval(a_long, n_long)} (n = {n_long:.0f}), short ones {_interval(a_short, n_short)} "
            f"(n = {n_short:.0f}); greedy long fraction {fmt(greedy_long)}")
    return passed, text


def branch_end(df: pd.DataFrame, dataset: str, method: str, metric: str) -> pd.DataFrame:
    """``metric`` at the last evaluation of each seed's ``method`` branch (rows)."""
    b = df[(df.experiment == dataset) & (df.method == method) & (df.metric == metric)]
    return b[b.step == b.groupby("seed").step.transform("max")]


def _not_here(cfg: Any, dataset: str) -> Result | None:
    if dataset in cfg.datasets:
        return None
    if dataset in FILE_DATASETS:
        return Result("", None, f"not run at this preset: {PAPER_COMMAND}")
    return Result("", None, f"this run fine-tunes on {cfg.dataset}; run with "
                  f"-p datasets '[\"{dataset}\"]'")


def advantage(dataset: str):
    """GRPO's greedy accuracy beats the control's: GRPO's Wilson interval lies above the
    control's (pooled over seeds, at the last evaluation), once the gate passed."""
    def measure(df: pd.DataFrame, cfg: Any) -> Result:
        absent = _not_here(cfg, dataset)
        if absent:
            return absent
        passed, gate_text = gate(df, cfg, dataset)
        (g, n), (c, _) = (_pooled(branch_end(df, dataset, m, "acc_greedy"), "acc_greedy",
                                  cfg.test_size or 1) for m in ("grpo", CONTROL))
        text = (f"greedy accuracy after GRPO {_interval(g, n)}, after the control "
                f"{_interval(c, n)} (n = {n:.0f}, {cfg.branch_sequences} sequences each); "
                + gate_text)
        if not passed:
            return Result(text, None, "inconclusive: the gate failed (" + gate_text + ")")
        return Result(text, bool(wilson(g * n, n)[0] > wilson(c * n, n)[1]))
    return measure


def length_rises(dataset: str):
    """Greedy answers go from mostly short (at the gated checkpoint) to mostly long after GRPO
    (medians over seeds), once the gate passed."""
    def measure(df: pd.DataFrame, cfg: Any) -> Result:
        absent = _not_here(cfg, dataset)
        if absent:
            return absent
        passed, gate_text = gate(df, cfg, dataset)
        before = branch_end(df[df.step == 0], dataset, "grpo", "frac_long_greedy").value.median()
        after = branch_end(df, dataset, "grpo", "frac_long_greedy").value.median()
        ctrl = branch_end(df, dataset, CONTROL, "frac_long_greedy").value.median()
        length = [branch_end(df[df.step == 0] if i == 0 else df, dataset, "grpo",
                             "len_mean_greedy").value.median() for i in (0, 1)]
        text = (f"greedy long fraction {fmt(before)} -> {fmt(after)} after GRPO ({fmt(ctrl)} after "
                f"the control); mean greedy length {fmt(length[0], '.1f')} -> "
                f"{fmt(length[1], '.1f')} tokens")
        if not passed:
            return Result(text, None, "inconclusive: the gate failed (" + gate_text + ")")
        return Result(text, bool(before < MOSTLY < after))
    return measure


# --- what the notebook shows -----------------------------------------------------------------------
def data_examples(cfg: PretrainedLMConfig) -> str:
    """One long and one short SFT demonstration and a test problem per dataset, as text."""
    lines = []
    for one in map(cfg.only, cfg.datasets):
        sft, test = problems(one, "sft", cfg.seeds[0]), problems(one, "test", cfg.seeds[0])
        long = choose_long(len(sft), cfg.p_cot, cfg.seeds[0])
        i, j = long.index(True) if any(long) else 0, long.index(False) if not all(long) else 0
        lines += [f"{one.dataset}, SFT, LONG:\n  {sft[i].question}\n  -> {sft[i].long}",
                  f"{one.dataset}, SFT, SHORT:\n  {sft[j].question}\n  -> {sft[j].short}",
                  f"{one.dataset}, test:\n  {test[0].question}\n  -> {test[0].answer}",
                  f"{one.dataset}, seed {cfg.seeds[0]}: {sum(long)} of {len(long)} SFT problems long\n"]
    return "\n".join(lines)


def lengths(cfg: PretrainedLMConfig) -> dict[str, Any]:
    """The long demonstrations' length in the model's tokens (max and mean over the SFT set of
    the first dataset, first seed), against ``max_completion_length``."""
    from rlntp.llm.models import load_tokenizer

    tok = load_tokenizer(cfg.model)
    one = cfg.only(cfg.datasets[0])
    n = np.array([len(ids) for ids in tok([p.long for p in problems(one, "sft", cfg.seeds[0])],
                                          add_special_tokens=False)["input_ids"]])
    return {"long_max": int(n.max()), "long_mean": float(n.mean()),
            "room": cfg.max_completion_length / n.max()}


FORMATS = ("frac_long_sample", "acc_sample_long", "n_sample_long", "acc_sample_short",
           "n_sample_short", "acc_greedy", "frac_long_greedy", "len_mean_greedy")


def formats_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per dataset and SFT checkpoint (pooled over seeds): sampled answers at T = 1 (long
    fraction, long and short accuracy with Wilson intervals) and greedy ones."""
    stars = df[(df.phase == "sft") & df.method.isna()]
    table = {}
    for (d, epoch), g in stars.groupby(["experiment", "step"]):
        row: dict[str, Any] = {"sequences seen": g.sequences_seen.max()}
        for f in ("long", "short"):
            acc, n = _pooled(g, f"acc_sample_{f}", f"n_sample_{f}")
            lo, hi = wilson(acc * n, n)
            row |= {f"sampled {f}: n": int(n), f"sampled {f}: right": acc,
                    f"sampled {f}: 95% interval": f"[{fmt(lo)}, {fmt(hi)}]"}
        for m, name in (("frac_long_sample", "sampled: long fraction"),
                        ("frac_long_greedy", "greedy: long fraction"), ("acc_greedy", "greedy: right")):
            row[name] = g[g.metric == m].value.median()
        table[d, int(epoch)] = row
    return pd.DataFrame.from_dict(table, orient="index").rename_axis(["dataset", "SFT epoch"])


def comparison_table(df: pd.DataFrame, cfg: PretrainedLMConfig) -> pd.DataFrame:
    """Per dataset: greedy metrics at the gated checkpoint and after each branch (medians over
    seeds), accuracy pooled with its Wilson interval."""
    table = {}
    for d in cfg.datasets:
        for name, method, start in (("SFT checkpoint", "grpo", True), ("after GRPO", "grpo", False),
                                    ("after the control", CONTROL, False)):
            frame = df[df.step == 0] if start else df
            acc = branch_end(frame, d, method, "acc_greedy")
            a, n = _pooled(acc, "acc_greedy", cfg.test_size or 1)
            lo, hi = wilson(a * n, n)
            row = {"greedy accuracy": a, "95% interval": f"[{fmt(lo)}, {fmt(hi)}]"}
            for m, label in (("frac_long_greedy", "long fraction"), ("len_mean_greedy", "mean length"),
                             ("frac_truncated_greedy", "truncated fraction")):
                row[label] = branch_end(frame, d, method, m).value.median()
            table[d, name] = row
    return pd.DataFrame.from_dict(table, orient="index").rename_axis(["dataset", "model"])


def closing_values(df: pd.DataFrame, cfg: PretrainedLMConfig) -> dict[str, Any]:
    """The numbers the closing note quotes for the first dataset: the gate, GRPO vs control,
    lengths, truncation, GRPO's reward and each stage's wall time (medians over seeds)."""
    d = cfg.datasets[0]
    passed, gate_text = gate(df, cfg, d)
    sub = df[df.experiment == d]
    rl = sub[sub.phase == "rl"]

    def med(frame: pd.DataFrame, metric: str) -> float:
        return float(frame[frame.metric == metric].value.median())

    def cut(method: str, start: bool) -> float:
        frame = df[df.step == 0] if start else df
        return float(branch_end(frame, d, method, "frac_truncated_greedy").value.median())

    wall = {"SFT": med(sub[sub.step == cfg.gated_epoch], "wall_s_sft"),
            "checkpoints": float(sub[(sub.metric == "wall_s") & sub.method.isna()].value.sum()
                                 / max(1, sub.seed.nunique())),
            "GRPO": med(rl, "wall_s"), "control": med(sub[sub.method == CONTROL], "wall_s")}
    return {"gate_passed": "passed" if passed else "failed", "gate_text": gate_text,
            "advantage_text": advantage(d)(df, cfg).measured.split("; gate")[0],
            "length_text": length_rises(d)(df, cfg).measured,
            "rollout_truncated": med(rl, "frac_truncated_rollout"),
            "truncated_text": "greedy responses cut at the completion limit: " + ", ".join(
                f"{fmt(cut(m, start), '.1%')} {name}" for name, m, start in (
                    ("at the checkpoint", "grpo", True), ("after GRPO", "grpo", False),
                    ("after the control", CONTROL, False))),
            "reward_first": med(rl[rl.step == rl.step[rl.metric == "reward_mean"].min()], "reward_mean"),
            "reward_last": med(rl[rl.step == rl.step.max()], "reward_mean"),
            "wall_text": ", ".join(f"{k} {v:.0f} s" for k, v in wall.items())}


def sample_responses(done: Done, cfg: PretrainedLMConfig) -> str:
    """Greedy responses to the first test problems at the gated checkpoint, after GRPO and after
    the control (first dataset, first seed)."""
    d, seed = cfg.datasets[0], cfg.seeds[0]
    star = next(r for (one, s, e, _), r in done["SFT checkpoints"]
                if one.dataset == d and s == seed and e == cfg.gated_epoch)
    ends = {m: r for (one, s, m, _), r in done["branches"] if one.dataset == d and s == seed}
    test = problems(cfg.only(d), "test", seed)
    lines = []
    for i, texts in enumerate(zip(star["samples"], ends["grpo"]["samples"],
                                  ends[CONTROL]["samples"], strict=True)):
        lines.append(f"Problem: {test[i].question}  (answer {test[i].answer})")
        for name, text in zip(("SFT checkpoint", "after GRPO", "after the control"), texts,
                              strict=True):
            lines.append(f"  {name + ':':<19} {text!r}")
        lines.append("")
    return "\n".join(lines)


CRITERION = ("GRPO's greedy accuracy: its 95% Wilson interval above the control's (n = test "
             "problems x seeds); inconclusive unless the gate holds: sampled long answers' interval "
             f"above short ones' (>= {MIN_FORMAT} each) and greedy long fraction < {MOSTLY}")
LENGTH = (f"greedy long fraction < {MOSTLY} at the gated checkpoint and > {MOSTLY} after GRPO "
          "(median over seeds); inconclusive unless the gate holds")
PAPER = "Llama 3.2 3B base, full data, 30 SFT epochs"
WORDS_SCALE = "generated k-step word problems, SmolLM2-135M-Instruct (a stand-in)"
CHAPTER = Chapter(PretrainedLMConfig, rows, stages, data=data, claims=(
    Claim("words_grpo", "6", "Word problems: SFT on a mixture, then GRPO, beats SFT alone",
          WORDS_SCALE, CRITERION, "fig-05-branches", advantage(WORDS),
          paper="GRPO beats SFT alone on GSM8K (Fig. 5 right); the word problems stand in for it (ours)"),
    Claim("words_length", "6", "Word problems: GRPO makes greedy answers long", WORDS_SCALE,
          LENGTH, "fig-05-branches", length_rises(WORDS),
          paper="responses grow long under GRPO (Fig. 5 right)"),
    Claim("gsm8k", "6", "GSM8K: SFT on a mixture with p_cot = 0.05, then GRPO, beats SFT alone",
          PAPER, CRITERION, "fig-05-branches", advantage("gsm8k"),
          paper="GRPO beats SFT alone (Fig. 5 right)"),
    Claim("math", "6", "MATH: the same", PAPER, CRITERION, "fig-05-branches", advantage("math"),
          paper="the same (the paper, MATH; its figure is not in our sources)"),
))


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def main(argv: list[str] | None = None) -> None:
    """Run the chapter's experiment without the notebook (e.g. under ``accelerate launch``)."""
    ap = argparse.ArgumentParser(prog="python -m rlntp.experiments.pretrained_lm",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="cpu", choices=tuple(PretrainedLMConfig.PRESETS))
    ap.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                    help="a config field (JSON value), e.g. -p 'datasets=[\"math\"]' -p 'seeds=[0,1]'")
    args = ap.parse_args(argv)
    t0 = time.time()
    try:
        cfg = resolve(PretrainedLMConfig, preset=args.preset, **dict(map(parse_param, args.param)))
        cfg.prepare()  # an unwritable out_dir fails here, in one line
    except ConfigError as e:
        ap.error(str(e))
    print(cfg.describe())
    CHAPTER.run(cfg)
    if _is_main_process():
        write_run_info(cfg, cfg.path, time.time() - t0)
        print(f"wrote {cfg.path / 'metrics.csv'} in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
