"""Chapter 5: SFT of a pretrained LLM on a short/long GSM8K and MATH mixture, then GRPO from
every SFT checkpoint (paper Fig. 5 right).

Every dataset of ``datasets`` runs on its own. One *SFT run* per (dataset, seed) fine-tunes the
model on ``train_size`` problems, a fraction ``p_cot`` of them with the worked solution, and
saves checkpoints at the epochs ``sft_checkpoints``. One *branch* per (dataset, seed, checkpoint)
measures the checkpoint (the star of the figure; also long vs short accuracy of ``sample_k``
samples per test problem at temperature 1), picks the training prompts the checkpoint solves
(a pre-pass of ``prepass_k`` samples each) and runs GRPO on them with the correctness reward,
stopped early after ``stop_flat`` steps in a row without reward variance. Both are cached under
``cfg.path / "runs"``.

Sequences seen: SFT counts ``epoch x train_size`` (sequences are reused across epochs); GRPO
adds ``step x prompts_per_iter x num_generations`` (every generation counts).

Several GPUs (TRL's own path; every process runs this driver)::

    accelerate launch --config_file notebooks/accelerate_deepspeed.yaml \\
        -m rlntp.experiments.gsm8k_math --preset paper -p 'datasets=["gsm8k"]'
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import time
import warnings
from collections.abc import Callable
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
from rlntp.data.math_text import (
    DATASETS,
    HUB,
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

MODELS_HELP = "'smollm2-135m', 'tiny-random', a local model folder or a hub id"


@dataclasses.dataclass(frozen=True)
class GSM8KMathConfig(RLPart, ExperimentConfig):
    """SFT on the short/long mixture, then GRPO with TRL. Defaults are the ``cpu`` preset."""

    CHAPTER: ClassVar[str] = "05_gsm8k_math"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": dict(model="tiny-random", workers=1, datasets=("gsm8k",), sample_data=True,
                      train_size=8, test_size=4, p_cot=0.25, sft_epochs=2, sft_checkpoints=(1, 2),
                      sft_batch_size=4, rl_iters=2, prompts_per_iter=2, num_generations=2,
                      max_completion_length=8, eval_every=1, sft_learning_rate=1e-3,
                      learning_rate=1e-3, sample_k=2, prepass_k=1, stop_flat=0),
        "cpu": dict(rl_iters=3, prompts_per_iter=1, num_generations=8, learning_rate=1e-5,
                    eval_every=3),
        "paper": dict(model="meta-llama/Llama-3.2-3B", dtype="bfloat16", train_size=0,
                      test_size=0, p_cot=0.05, sft_epochs=30,
                      sft_checkpoints=tuple(range(1, 31)), sft_batch_size=64,
                      sft_learning_rate=1e-5, rl_iters=200, prompts_per_iter=16,
                      num_generations=8, max_completion_length=512, learning_rate=1e-6,
                      eval_every=20, eval_batch_size=64, prepass_k=0, stop_flat=0),
    }

    seeds: tuple[int, ...] = param((0,), "training seeds (one SFT run and its GRPO branches each)")
    datasets: tuple[str, ...] = param(DATASETS, f"datasets, each run on its own (of {DATASETS})")
    model: str = param("smollm2-135m", MODELS_HELP)
    dtype: str = param("float32", "'float32' or 'bfloat16' (trains in bf16, GPU)")
    data_dir: str | None = param(None, "None: $RLNTP_DATA_DIR or ../shared/data; 'hub': download")
    sample_data: bool = param(False, "read the 64/32-problem sample_*.jsonl files (smoke)")
    train_size: int = param(32, "a seeded subset of the train split (0: all)")
    test_size: int = param(16, "a fixed subset of the test split (0: all)")
    subset_seed: int = param(0, "picks both subsets (the same for every training seed)")
    p_cot: float = param(0.05, "fraction of training problems with the worked solution")
    sft_epochs: int = param(2, "SFT epochs")
    sft_checkpoints: tuple[int, ...] = param((2,), "SFT epochs GRPO starts from")
    sft_batch_size: int = param(4, "SFT batch size")
    sft_learning_rate: float = param(2e-5, "SFT learning rate (AdamW, constant; ours)")
    max_completion_length: int = param(176, "tokens, for every sample and greedy evaluation (cpu: "
                                       "95th percentile of GSM8K worked solutions)")
    eval_batch_size: int = param(32, "prompts per batch of greedy evaluation and sampling")
    sample_k: int = param(2, "responses per test problem sampled at temperature 1 from each SFT "
                          "checkpoint, for long vs short accuracy (0: none)")
    prepass_k: int = param(1, "responses per training problem sampled at temperature 1 from the SFT "
                           "checkpoint; GRPO trains on the most often solved (0: on all)")
    stop_flat: int = param(2, "stop GRPO after this many steps in a row without reward variance "
                           "in any group (0: never)")

    def check(self) -> None:
        require(self.device in ("auto", "cpu", "cuda"), "device", self.device,
                "'auto', 'cpu' or 'cuda' (TRL places the model itself: choose a GPU with "
                "CUDA_VISIBLE_DEVICES=N)")
        require_list(self, "datasets", f"names from {DATASETS}", lambda d: d in DATASETS)
        require(self.dtype in ("float32", "bfloat16"), "dtype", self.dtype,
                "'float32' or 'bfloat16'")
        require(0.0 <= self.p_cot <= 1.0, "p_cot", self.p_cot, "a number in [0, 1]")
        require_at_least(self, 0, ("train_size", "test_size", "sample_k", "prepass_k",
                                   "stop_flat"))
        require_at_least(self, 1, ("sft_epochs", "sft_batch_size", "max_completion_length",
                                   "eval_batch_size"))
        require_list(self, "sft_checkpoints", f"epochs in 1..sft_epochs={self.sft_epochs}",
                     lambda e: 1 <= e <= self.sft_epochs)
        require(self.train_size == 0 or self.train_size >= self.prompts_per_iter, "train_size",
                self.train_size, f"0 (all) or at least prompts_per_iter={self.prompts_per_iter}")
        require_positive(self, ("sft_learning_rate",))
        try:  # a typo fails now, not after a minute of hub retries (names only: no file is read)
            model_source(self.model)
        except ValueError as e:
            raise ConfigError(str(e)) from None

    def scale(self) -> str:
        return f"{self.dataset}, {self.model}, {super().scale()}"

    @property
    def dataset(self) -> str:
        """The datasets as one name, e.g. ``"gsm8k+math"``; the dataset of a per-dataset job."""
        return "+".join(self.datasets)

    def only(self, dataset: str) -> GSM8KMathConfig:
        """This config restricted to ``dataset`` (one SFT run and its branches per seed)."""
        return dataclasses.replace(self, datasets=(dataset,))

    @property
    def uses_hub(self) -> bool:
        """The run downloads from the Hugging Face hub: the user asked for it explicitly with
        ``data_dir='hub'`` or a ``model`` that is a hub id. Otherwise nothing touches the network."""
        return self.data_dir == HUB or is_hub_id(self.model)

    def settings(self, seed: int):
        from rlntp.llm.train import TrainSettings

        return TrainSettings(self.dataset, self.torch_device, self.dtype == "bfloat16",
                             self.max_completion_length, self.eval_batch_size, seed)


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _setup(cfg: GSM8KMathConfig, seed: int):
    """Hub access only if the config asks for it, the tokenizer, and the (train, test) problems
    of the one dataset of ``cfg``."""
    hub_access(cfg.uses_hub)  # before the HF libraries are imported (rlntp.llm turned them off)
    from rlntp.llm.models import load_tokenizer
    from rlntp.llm.train import quiet

    quiet()
    torch.manual_seed(seed)
    tok = load_tokenizer(cfg.model)
    kw = dict(seed=cfg.subset_seed, data_dir=cfg.data_dir, sample=cfg.sample_data)
    train = load_problems(cfg.dataset, "train", cfg.train_size or None, **kw)
    test = load_problems(cfg.dataset, "test", cfg.test_size or None, **kw)
    return tok, train, test


def runs_root(cfg: GSM8KMathConfig) -> Path:
    """Where SFT checkpoints and cached results go, keyed by the config (not the data folder's
    path), the contents of the data files it reads and the code version."""
    data = data_hash(cfg.dataset, cfg.data_dir, cfg.sample_data)
    return cfg.path / "runs" / f"{cfg.key('seeds', 'eval_batch_size', 'data_dir')}-{data}-{source_hash()}"


def sft_run(cfg: GSM8KMathConfig, seed: int, root: Path) -> dict[str, Any]:
    """Evaluate the initial model, then SFT; returns its metrics, epoch losses and long choice."""
    from rlntp.llm.models import load_model
    from rlntp.llm.train import evaluate, sft

    tok, train, test = _setup(cfg, seed)
    s = cfg.settings(seed)
    model = load_model(cfg.model, tok, seed, getattr(torch, cfg.dtype)).to(s.device)
    long = choose_long(len(train), cfg.p_cot, seed)
    initial = evaluate(model, tok, rl_records(test, cfg.dataset, tok), s)
    losses = sft(model, tok, sft_records(train, long, cfg.dataset, tok), s,
                 root / f"seed{seed}" / "sft", cfg.sft_epochs, cfg.sft_checkpoints, cfg.sft_learning_rate,
                 cfg.sft_batch_size)
    return {"initial": initial, "losses": losses, "n_long": sum(long), "n_train": len(long)}


def grpo_branch(cfg: GSM8KMathConfig, seed: int, epoch: int, root: Path
                ) -> dict[int, dict[str, float]]:
    """From the SFT checkpoint of ``epoch``: long vs short accuracy of samples on the test
    problems, the pre-pass, then GRPO. {step: metrics}, step 0 = the checkpoint."""
    from rlntp.llm.models import load_model
    from rlntp.llm.train import grpo, sample_correct

    tok, train, test = _setup(cfg, seed)
    s = cfg.settings(seed)
    ckpt = root / f"seed{seed}" / "sft" / f"epoch_{epoch}"
    model = load_model(str(ckpt), tok, seed, getattr(torch, cfg.dtype)).to(s.device)
    train_records, test_records = rl_records(train, cfg.dataset, tok), rl_records(test, cfg.dataset, tok)
    star: dict[str, float] = {}
    if cfg.sample_k:
        star.update(sample_correct(model, tok, test_records, cfg.sample_k, cfg.temperature, s)[1])
    if cfg.prepass_k:
        solved, _ = sample_correct(model, tok, train_records, cfg.prepass_k, cfg.temperature, s)
        train_records, star["prepass_solved"] = pick_prompts(train_records, solved,
                                                             cfg.prompts_per_iter)
    history = grpo(model, tok, train_records, test_records, s,
                   root / f"seed{seed}" / f"grpo_epoch{epoch}", cfg, cfg.stop_flat)
    history[0].update(star)
    return history


def pick_prompts(records: list[dict[str, str]], solved: list[int], at_least: int
                 ) -> tuple[list[dict[str, str]], float]:
    """The records solved at least once in the pre-pass (topped up to ``at_least`` with the next
    ones in order, so that a GRPO batch can be filled), and the fraction solved."""
    n_solved = sum(c > 0 for c in solved)
    order = sorted(range(len(records)), key=lambda i: -solved[i])  # stable: ties keep order
    keep = sorted(order[:max(n_solved, at_least)])
    return [records[i] for i in keep], n_solved / len(records)


def cached_sft_run(cfg: GSM8KMathConfig, seed: int, root: Path) -> dict[str, Any]:
    """The cached SFT summary, recomputed (with its checkpoints) if a checkpoint GRPO starts
    from is missing or damaged."""
    path = root / f"seed{seed}" / "sft.pt"
    if path.exists():
        from rlntp.llm.models import check_model_dir

        for epoch in cfg.sft_checkpoints:
            problem = check_model_dir(root / f"seed{seed}" / "sft" / f"epoch_{epoch}")
            if problem:
                warnings.warn(f"{problem}: running the SFT of seed {seed} again", RuntimeWarning,
                              stacklevel=2)
                path.unlink(missing_ok=True)
                break
    return cached(path, lambda: sft_run(cfg, seed, root))


def cached_grpo_branch(cfg: GSM8KMathConfig, seed: int, epoch: int, root: Path
                       ) -> dict[int, dict[str, float]]:
    return cached(root / f"seed{seed}" / f"grpo_epoch{epoch}.pt",
                  lambda: grpo_branch(cfg, seed, epoch, root))


def _jobs(cfg: GSM8KMathConfig) -> list[tuple[GSM8KMathConfig, Path]]:
    """(single-dataset config, its runs folder) per dataset, computed once: every process uses
    the same folders."""
    return [(one, runs_root(one)) for one in map(cfg.only, cfg.datasets)]


def stages(cfg: GSM8KMathConfig) -> list[Stage]:
    """One SFT run per (dataset, seed), then GRPO from every SFT checkpoint (both cached)."""
    jobs = _jobs(cfg)
    return [Stage("SFT runs", cached_sft_run,
                  [(one, seed, root) for one, root in jobs for seed in cfg.seeds]),
            Stage("GRPO branches", cached_grpo_branch,
                  [(one, seed, e, root) for one, root in jobs for seed in cfg.seeds
                   for e in cfg.sft_checkpoints])]


def rows(cfg: GSM8KMathConfig, done: Done) -> list[dict[str, Any]]:
    """Tidy rows: each SFT run's initial model (step 0), then per GRPO branch its SFT checkpoint
    (phase ``sft``, step = epoch) and its GRPO steps (phase ``rl``)."""
    sfts = {(one.dataset, seed): r for (one, seed, _), r in done["SFT runs"]}
    out: list[dict[str, Any]] = []
    for (dataset, seed), summary in sfts.items():
        out += metric_rows(summary["initial"], experiment=dataset, p_cot=cfg.p_cot, phase="sft",
                           seed=seed, step=0, sequences_seen=0)
    for (one, seed, epoch, _), history in done["GRPO branches"]:
        keys = dict(experiment=one.dataset, p_cot=cfg.p_cot, seed=seed)
        n = sfts[one.dataset, seed]["n_train"]
        star = dict(history[0])
        star["loss"] = sfts[one.dataset, seed]["losses"].get(epoch, float("nan"))
        out += metric_rows(star, **keys, phase="sft", step=epoch, sequences_seen=epoch * n)
        for step, metrics in sorted(history.items()):
            out += metric_rows(metrics, **keys, phase="rl", method="grpo", reward="correct",
                               temperature=cfg.temperature, branch_step=epoch,
                               step=step, sequences_seen=epoch * n + step * cfg.rl_batch)
    return out



# --- what the notebook shows ---------------------------------------------------------------------
def data_examples(cfg: GSM8KMathConfig) -> tuple[str, dict[str, int]]:
    """One long and one short training example per dataset and, per seed, which training problems
    are long (as text); and, glued for the text, ``n_long`` of ``n_train`` (first dataset and
    seed)."""
    kw = dict(seed=cfg.subset_seed, data_dir=cfg.data_dir, sample=cfg.sample_data)
    lines = []
    for d in reversed(cfg.datasets):  # the counts returned are those of the first dataset, first seed
        train = load_problems(d, "train", cfg.train_size or None, **kw)
        lines.append(f"{d} LONG:\n{train[0].long}\n\n{d} SHORT:\n{train[0].short}\n")
        for s in reversed(cfg.seeds):
            long = choose_long(len(train), cfg.p_cot, s)
            lines.append(f"{d}, seed {s}: {sum(long)} of {len(long)} training problems long, indices "
                         f"{[i for i, x in enumerate(long) if x]}")
    return "\n".join(lines), {"n_long": int(sum(long)), "n_train": len(train)}


def solution_lengths(cfg: GSM8KMathConfig) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The worked solutions' lengths in the model's tokens per dataset (whole train split): a table,
    and their 95th percentile, median and the fraction that fits ``max_completion_length``."""
    from rlntp.llm.models import load_tokenizer

    tok = load_tokenizer(cfg.model)
    kw = dict(seed=0, data_dir=cfg.data_dir, sample=cfg.sample_data)
    lengths = {}
    for d in cfg.datasets:  # the data the run reads (and hashes), no other
        solutions = [p.long for p in load_problems(d, "train", **kw)]
        lengths[d] = np.array([len(ids) for ids in tok(solutions, add_special_tokens=False)["input_ids"]])
    fits = f"fits in {cfg.max_completion_length}"
    table = pd.DataFrame.from_dict(
        {d: {"problems": len(n), "mean": n.mean(), "median": np.median(n),
             "95th percentile": np.percentile(n, 95), fits: (n <= cfg.max_completion_length).mean()}
         for d, n in lengths.items()}, orient="index")
    values: dict[str, Any] = {}
    for d in DATASETS:  # NaN for a dataset this run skipped
        n = lengths.get(d)
        values |= ({f"p95_{d}": int(np.percentile(n, 95)), f"median_{d}": int(np.median(n)),
                    f"fit_{d}": float((n <= cfg.max_completion_length).mean())} if n is not None else
                   {f"{k}_{d}": float("nan") for k in ("p95", "median", "fit")})
    return table, values


METRICS = ["acc_greedy", "len_mean_greedy", "frac_long_greedy"]


def _mean_metrics(frame: pd.DataFrame) -> pd.Series:
    return frame[frame.metric.isin(METRICS)].groupby("metric").value.mean().reindex(METRICS)


def last_steps(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of each GRPO run's last step (earlier than rl_iters if it stopped early)."""
    return frame[frame.step == frame.groupby(["experiment", "seed", "branch_step"]).step.transform("max")]


def sft_grpo_table(df: pd.DataFrame, cfg: GSM8KMathConfig) -> pd.DataFrame:
    """Per dataset and SFT epoch (0: before SFT): :data:`METRICS` after SFT and, from each
    checkpoint, at the end of GRPO (means over seeds)."""
    sft, rl = df[df.phase == "sft"], df[df.phase == "rl"]
    table = []
    for d in cfg.datasets:
        for epoch in [0, *cfg.sft_checkpoints]:
            before = _mean_metrics(sft[(sft.experiment == d) & (sft.step == epoch)])
            row = {"dataset": d, "SFT epoch": epoch, **{f"{m} (SFT)": before[m] for m in METRICS}}
            if epoch > 0:
                after = _mean_metrics(last_steps(rl[(rl.experiment == d) & (rl.branch_step == epoch)]))
                row.update({f"{m} (after GRPO)": after[m] for m in METRICS})
            table.append(row)
    return pd.DataFrame(table).set_index(["dataset", "SFT epoch"])


def sft_grpo_values(table: pd.DataFrame, cfg: GSM8KMathConfig) -> dict[str, Any]:
    """The numbers the text quotes from :func:`sft_grpo_table`: per dataset (NaN for one this run
    skipped) each metric before SFT, after the last SFT epoch and after GRPO from it."""
    last = cfg.sft_checkpoints[-1]
    out: dict[str, Any] = {"last_epoch": last, "grpo_sequences": cfg.rl_iters * cfg.rl_batch}
    for d in DATASETS:
        ran = d in cfg.datasets
        for m, short in [("acc_greedy", "acc"), ("len_mean_greedy", "len"), ("frac_long_greedy", "long")]:
            for key, row, col in (("init", 0, "SFT"), ("sft", last, "SFT"), ("rl", last, "after GRPO")):
                out[f"{short}_{key}_{d}"] = float(table.loc[(d, row), f"{m} ({col})"]) if ran else math.nan
    return out


SIGNAL = ["reward_mean", "frac_reward_zero_std"]


def signal_table(df: pd.DataFrame) -> pd.DataFrame:
    """GRPO's reward signal per step: the mean reward and the fraction of groups without reward
    variance, per dataset and branch."""
    signal = df[(df.phase == "rl") & df.metric.isin(SIGNAL)]
    return signal.pivot_table(index="step", columns=["experiment", "metric", "branch_step"],
                              values="value").rename(columns=int, level=2)


def signal_values(df: pd.DataFrame) -> dict[str, Any]:
    """Per dataset: the mean reward, the fraction of groups without variance, the fraction of
    training prompts the checkpoints solved (the pre-pass) and how each GRPO run ended."""
    signal = df[(df.phase == "rl") & df.metric.isin(SIGNAL)]
    ends = last_steps(df[df.phase == "rl"])
    stars = df[(df.phase == "sft") & (df.step > 0)]
    out: dict[str, Any] = {}
    for d in DATASETS:
        sig, end = signal[signal.experiment == d], ends[ends.experiment == d]
        stopped = end[end.metric == "stopped_early"]
        out[f"reward_mean_{d}"] = float(sig[sig.metric == "reward_mean"].value.mean())
        out[f"zero_std_{d}"] = float(sig[sig.metric == "frac_reward_zero_std"].value.mean())
        out[f"prepass_{d}"] = float(stars[(stars.experiment == d)
                                          & (stars.metric == "prepass_solved")].value.mean())
        out[f"stop_{d}"] = ", ".join(
            f"{'stopped early after' if row.value else 'ran all'} {row.step:.0f} steps (seed {row.seed:.0f}, "
            f"epoch {row.branch_step:.0f})" for row in stopped.itertuples()) or "did not run"
    return out


FORMATS = ["acc_sample_long", "n_sample_long", "acc_sample_short", "n_sample_short"]


def formats_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per dataset and SFT checkpoint: how often the long and the short answers sampled at T = 1
    are right, and how many there were (pooled over seeds)."""
    stars = df[(df.phase == "sft") & (df.step > 0)]
    w = stars[stars.metric.isin(FORMATS)].pivot_table(index=["experiment", "step", "seed"], columns="metric",
                                                      values="value", dropna=False).reindex(columns=FORMATS)
    pooled = {}
    for (d, epoch), g in w.groupby(level=["experiment", "step"]):
        row = {}
        for f in ("long", "short"):
            n, acc = g[f"n_sample_{f}"].sum(), g[f"acc_sample_{f}"].fillna(0)
            row[f"{f}: right"] = (acc * g[f"n_sample_{f}"]).sum() / n if n else math.nan
            row[f"{f}: count"] = int(n)
        pooled[d, epoch] = row
    return pd.DataFrame.from_dict(pooled, orient="index").rename_axis(["dataset", "SFT epoch"])


def formats_values(formats: pd.DataFrame, cfg: GSM8KMathConfig) -> dict[str, Any]:
    """Per dataset at the last SFT checkpoint: :func:`formats_table`'s numbers and whether long
    answers are more often right than short ones, in words."""
    last, out = cfg.sft_checkpoints[-1], {}
    for d in DATASETS:
        row = formats.loc[(d, last)] if (d, last) in formats.index else None
        for f in ("long", "short"):
            out[f"acc_s{f}_{d}"] = float(row[f"{f}: right"]) if row is not None else math.nan
            out[f"n_s{f}_{d}"] = int(row[f"{f}: count"]) if row is not None else 0
        if row is None or not (row["long: count"] and row["short: count"]):
            out[f"formats_{d}"] = "not comparable with short ones (one format was never sampled)"
        else:
            better = row["long: right"] > row["short: right"]
            out[f"formats_{d}"] = f"{'' if better else 'not '}more often right than short ones"
    return out


# --- claims (paper.md sec. 6) -------------------------------------------------------------------
NO_SIGNAL = "not decided if no GRPO group had reward variance"


def _formats(star: pd.DataFrame) -> str:
    """Long vs short accuracy of the responses sampled at T = 1 from the checkpoint (its star
    rows), pooled over seeds; "" if the run did not sample."""
    w = star.pivot_table(index="seed", columns="metric", values="value", dropna=False)
    if "n_sample_long" not in w:
        return ""
    parts = []
    for f in ("long", "short"):
        n = w[f"n_sample_{f}"].sum()
        acc = (w[f"acc_sample_{f}"].fillna(0) * w[f"n_sample_{f}"]).sum() / n if n else np.nan
        parts.append(f"{f} ones right {fmt(acc)} (n = {n:.0f})")
    return "; of the answers sampled at T = 1 from the checkpoint, " + ", ".join(parts)


def _advantage(dataset: str) -> Callable[[pd.DataFrame, Any], Result]:
    def measure(df: pd.DataFrame, cfg: Any) -> Result:
        sub = df[df.experiment == dataset]
        if sub.empty:
            return Result("", None, f"this run fine-tunes on {cfg.dataset}; run with "
                          f"-p datasets '[\"{dataset}\"]'")
        last = max(cfg.sft_checkpoints)
        star = sub[(sub.phase == "sft") & (sub.step == last)]
        sft = star[star.metric == "acc_greedy"].value.mean()
        branch = sub[(sub.phase == "rl") & (sub.branch_step == last)]
        ends = branch.groupby("seed").step.transform("max")
        rl = branch[(branch.step == ends) & (branch.metric == "acc_greedy")].value.mean()
        flat = branch[branch.metric == "frac_reward_zero_std"].value
        stopped = branch[branch.metric == "stopped_early"].value
        steps = int(branch.step.max()) if not branch.empty else 0
        text = (f"greedy accuracy after SFT epoch {last}: {fmt(sft)}, after {steps} GRPO step(s): "
                f"{fmt(rl)} ({sub.seed.nunique()} seed(s)); groups without reward variance: "
                f"{fmt(flat.mean(), '.0%')}" + _formats(star))
        if not flat.empty and flat.min() >= 1:
            how = (f"GRPO stopped early after {steps} step(s)" if (stopped > 0).any()
                   else f"in all {steps} step(s)")
            return Result(text, None, f"no GRPO group had reward variance ({how}): GRPO got no "
                          "signal at this scale")
        return Result(text, bool(rl - sft >= 0.05))
    return measure


def data(cfg: GSM8KMathConfig) -> str:
    """A hash of the contents of the data files the chapter reads."""
    return data_hash(cfg.dataset, cfg.data_dir, cfg.sample_data)


CHAPTER = Chapter(GSM8KMathConfig, rows, stages, data=data, claims=(
    Claim("gsm8k", "6", "GSM8K: SFT on a mixture with p_cot = 0.05, then GRPO, beats SFT alone",
          "Llama 3.2 3B base, full GSM8K, 30 SFT epochs", "greedy acc after GRPO >= after SFT + 0.05 "
          f"(last checkpoint); {NO_SIGNAL}", "fig-05-sft-grpo", _advantage("gsm8k")),
    Claim("math", "6", "MATH: the same", "Llama 3.2 3B base, full MATH, 30 SFT epochs",
          f"greedy acc after GRPO >= after SFT + 0.05 (last checkpoint); {NO_SIGNAL}",
          "fig-05-sft-grpo", _advantage("math")),
))


def main(argv: list[str] | None = None) -> None:
    """Run the chapter's experiment without the notebook (e.g. under ``accelerate launch``)."""
    ap = argparse.ArgumentParser(prog="python -m rlntp.experiments.gsm8k_math",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="cpu", choices=tuple(GSM8KMathConfig.PRESETS))
    ap.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                    help="a config field (JSON value), e.g. -p 'datasets=[\"math\"]' -p 'seeds=[0,1]'")
    args = ap.parse_args(argv)
    t0 = time.time()
    try:
        cfg = resolve(GSM8KMathConfig, preset=args.preset, **dict(map(parse_param, args.param)))
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
