"""Chapter 5: SFT of a pretrained LLM on a short/long GSM8K or MATH mixture, then GRPO from
every SFT checkpoint (paper Fig. 5 right).

One *SFT run* per seed fine-tunes the model on ``train_size`` problems, a fraction ``p_cot`` of
them with the worked solution, and saves checkpoints at the epochs ``sft_checkpoints``. One
*branch* per (seed, checkpoint) measures the checkpoint (the star of the figure) and runs GRPO
from it with the correctness reward. Both are cached under ``cfg.path / "runs"``.

Sequences seen: SFT counts ``epoch x train_size`` (sequences are reused across epochs); GRPO
adds ``step x prompts_per_step x num_generations`` (every generation counts).

Several GPUs (TRL's own path; every process runs this driver)::

    accelerate launch --config_file notebooks/accelerate_deepspeed.yaml \\
        -m rlntp.experiments.gsm8k_math --preset paper -p dataset=gsm8k
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path
from typing import Any, ClassVar

import torch

from rlntp.config import ConfigError, ExperimentConfig, require, resolve
from rlntp.data.math_text import (
    DATASETS,
    HUB,
    choose_long,
    data_root,
    load_problems,
    rl_records,
    sft_records,
)
from rlntp.parallel import run_jobs
from rlntp.results import cached, metric_rows, source_hash, write_metrics, write_run_info

MODELS_HELP = "'smollm2-135m', 'tiny-random', a local model folder or a hub id"


@dataclasses.dataclass(frozen=True)
class GSM8KMathConfig(ExperimentConfig):
    """SFT on the short/long mixture, then GRPO. Defaults are the ``cpu`` preset."""

    CHAPTER: ClassVar[str] = "05_gsm8k_math"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": dict(model="tiny-random", workers=1, sample_data=True, train_size=8, test_size=4,
                      p_cot=0.25, sft_epochs=2, sft_checkpoints=(1, 2), sft_batch_size=4,
                      grpo_steps=2, prompts_per_step=2, num_generations=2,
                      max_completion_length=8, eval_every=1, lr_sft=1e-3, lr_grpo=1e-3),
        "cpu": {},
        "paper": dict(model="meta-llama/Llama-3.2-3B", dtype="bfloat16", train_size=None,
                      test_size=None, p_cot=0.05, sft_epochs=30,
                      sft_checkpoints=tuple(range(1, 31)), sft_batch_size=64, lr_sft=1e-5,
                      grpo_steps=200, prompts_per_step=16, num_generations=8,
                      max_completion_length=512, lr_grpo=1e-6, eval_every=20,
                      eval_batch_size=64),
    }

    seeds: tuple[int, ...] = (0,)
    dataset: str = "gsm8k"            # gsm8k | math
    model: str = "smollm2-135m"       # see MODELS_HELP
    dtype: str = "float32"            # bfloat16 trains in bf16 (GPU)
    data_dir: str | None = None       # None: $RLNTP_DATA_DIR or ../shared/data; "hub": download
    sample_data: bool = False         # read the 64/32-problem sample_*.jsonl files (smoke)
    train_size: int | None = 64       # a seeded subset of the train split (None = all)
    test_size: int | None = 32        # a fixed subset of the test split (None = all)
    subset_seed: int = 0              # picks both subsets (the same for every training seed)
    p_cot: float = 0.05               # fraction of training problems with the worked solution
    sft_epochs: int = 2
    sft_checkpoints: tuple[int, ...] = (1, 2)  # epochs GRPO starts from
    sft_batch_size: int = 8
    lr_sft: float = 2e-5              # AdamW, constant (ours)
    grpo_steps: int = 4
    prompts_per_step: int = 2         # prompts per GRPO step ...
    num_generations: int = 4          # ... times samples per prompt
    max_completion_length: int = 96   # tokens, for GRPO samples and greedy evaluation
    lr_grpo: float = 1e-5             # AdamW, constant (ours)
    beta: float = 0.0                 # KL penalty to the SFT checkpoint (0: no reference model)
    temperature: float = 1.0          # GRPO sampling temperature
    eval_every: int = 2               # GRPO steps between greedy evaluations
    eval_batch_size: int = 16

    def validate(self) -> None:
        require(self.dataset in DATASETS, "dataset", self.dataset, f"one of {DATASETS}")
        require(self.dtype in ("float32", "bfloat16"), "dtype", self.dtype,
                "'float32' or 'bfloat16'")
        require(0.0 <= self.p_cot <= 1.0, "p_cot", self.p_cot, "a number in [0, 1]")
        for name in ("train_size", "test_size"):
            value = getattr(self, name)
            require(value is None or value >= 1, name, value, "None (all) or an integer >= 1")
        for name in ("sft_epochs", "sft_batch_size", "grpo_steps", "prompts_per_step",
                     "max_completion_length", "eval_every", "eval_batch_size"):
            require(getattr(self, name) >= 1, name, getattr(self, name), "an integer >= 1")
        require(self.num_generations >= 2, "num_generations", self.num_generations,
                "an integer >= 2 (GRPO compares samples of one prompt)")
        require(len(self.sft_checkpoints) > 0 and all(
            1 <= e <= self.sft_epochs for e in self.sft_checkpoints), "sft_checkpoints",
            self.sft_checkpoints, f"a non-empty list of epochs in 1..sft_epochs={self.sft_epochs}")
        require(self.lr_sft > 0 and self.lr_grpo > 0, "lr_sft/lr_grpo",
                (self.lr_sft, self.lr_grpo), "positive floats")
        require(self.beta >= 0, "beta", self.beta, "a float >= 0")
        require(self.temperature > 0, "temperature", self.temperature, "a float > 0")
        if self.data_dir != HUB:  # fail now, not inside a training job
            try:
                data_root(self.data_dir)
            except FileNotFoundError as e:
                raise ConfigError(str(e)) from None

    def settings(self, seed: int):
        from rlntp.llm.train import TrainSettings

        return TrainSettings(self.dataset, self.torch_device, self.dtype == "bfloat16",
                             self.max_completion_length, self.eval_batch_size, seed)


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _setup(cfg: GSM8KMathConfig, seed: int):
    """Offline mode for local models, the tokenizer, and the (train, test) problems."""
    from rlntp.llm.models import load_tokenizer
    from rlntp.llm.train import quiet

    quiet()
    if "/" not in cfg.model or Path(cfg.model).is_dir():  # never reach the network
        os.environ["HF_HUB_OFFLINE"] = os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "0" if cfg.data_dir == HUB else "1"
    torch.manual_seed(seed)
    tok = load_tokenizer(cfg.model)
    kw = dict(seed=cfg.subset_seed, data_dir=cfg.data_dir, sample=cfg.sample_data)
    train = load_problems(cfg.dataset, "train", cfg.train_size, **kw)
    test = load_problems(cfg.dataset, "test", cfg.test_size, **kw)
    return tok, train, test


def runs_root(cfg: GSM8KMathConfig) -> Path:
    """Where SFT checkpoints and cached results go, keyed by the config and the code version."""
    return cfg.path / "runs" / f"{cfg.key('seeds', 'eval_batch_size')}-{source_hash()}"


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
                 root / f"seed{seed}" / "sft", cfg.sft_epochs, cfg.sft_checkpoints, cfg.lr_sft,
                 cfg.sft_batch_size)
    return {"initial": initial, "losses": losses, "n_long": sum(long), "n_train": len(long)}


def grpo_branch(cfg: GSM8KMathConfig, seed: int, epoch: int, root: Path
                ) -> dict[int, dict[str, float]]:
    """GRPO from the SFT checkpoint of ``epoch``: {step: metrics}, step 0 = the checkpoint."""
    from rlntp.llm.models import load_model
    from rlntp.llm.train import grpo

    tok, train, test = _setup(cfg, seed)
    s = cfg.settings(seed)
    ckpt = root / f"seed{seed}" / "sft" / f"epoch_{epoch}"
    model = load_model(str(ckpt), tok, seed, getattr(torch, cfg.dtype)).to(s.device)
    return grpo(model, tok, rl_records(train, cfg.dataset, tok),
                rl_records(test, cfg.dataset, tok), s, root / f"seed{seed}" / f"grpo_epoch{epoch}",
                cfg.grpo_steps, cfg.prompts_per_step, cfg.num_generations, cfg.lr_grpo,
                cfg.beta, cfg.temperature, cfg.eval_every)


def cached_sft_run(cfg: GSM8KMathConfig, seed: int, root: Path) -> dict[str, Any]:
    return cached(root / f"seed{seed}" / "sft.pt", lambda: sft_run(cfg, seed, root))


def cached_grpo_branch(cfg: GSM8KMathConfig, seed: int, epoch: int, root: Path
                       ) -> dict[int, dict[str, float]]:
    return cached(root / f"seed{seed}" / f"grpo_epoch{epoch}.pt",
                  lambda: grpo_branch(cfg, seed, epoch, root))


def run_all(cfg: GSM8KMathConfig) -> tuple[list[dict[str, Any]], dict[int, dict[str, Any]]]:
    """Every SFT run and GRPO branch: (tidy metric rows, {seed: SFT summary})."""
    root = runs_root(cfg)  # computed once: every process uses the same folder
    sft_jobs = [(cfg, seed, root) for seed in cfg.seeds]
    sfts = dict(zip(cfg.seeds, run_jobs(cached_sft_run, sft_jobs, cfg.n_workers, "SFT runs"),
                    strict=True))
    branch_jobs = [(cfg, seed, e, root) for seed in cfg.seeds for e in cfg.sft_checkpoints]
    branches = run_jobs(cached_grpo_branch, branch_jobs, cfg.n_workers, "GRPO branches")
    n = sfts[cfg.seeds[0]]["n_train"]
    keys = dict(experiment=cfg.dataset, p_cot=cfg.p_cot)
    rows: list[dict[str, Any]] = []
    for seed, summary in sfts.items():
        rows += metric_rows(summary["initial"], **keys, phase="sft", seed=seed, step=0,
                            sequences_seen=0)
    for (_, seed, epoch, _), history in zip(branch_jobs, branches, strict=True):
        star = dict(history[0])
        star["loss"] = sfts[seed]["losses"].get(epoch, float("nan"))
        rows += metric_rows(star, **keys, phase="sft", seed=seed, step=epoch,
                            sequences_seen=epoch * n)
        for step, metrics in sorted(history.items()):
            rows += metric_rows(metrics, **keys, phase="rl", method="grpo", reward="correct",
                                temperature=cfg.temperature, seed=seed, branch_step=epoch,
                                step=step, sequences_seen=epoch * n + step * cfg.prompts_per_step
                                * cfg.num_generations)
    return rows, sfts


def main(argv: list[str] | None = None) -> None:
    """Run the chapter's experiment without the notebook (e.g. under ``accelerate launch``)."""
    from rlntp.book import _parse_param

    ap = argparse.ArgumentParser(prog="python -m rlntp.experiments.gsm8k_math",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="cpu", choices=tuple(GSM8KMathConfig.PRESETS))
    ap.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                    help="a config field (JSON value), e.g. -p dataset=math -p 'seeds=[0,1]'")
    args = ap.parse_args(argv)
    t0 = time.time()
    cfg = resolve(GSM8KMathConfig, preset=args.preset, **dict(map(_parse_param, args.param)))
    print(cfg.describe())
    rows, _ = run_all(cfg)
    if _is_main_process():
        write_metrics(rows, cfg.path / "metrics.csv")
        write_run_info(cfg, cfg.path, time.time() - t0)
        print(f"wrote {cfg.path / 'metrics.csv'} in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
