"""Experiment configs: frozen dataclasses with named presets, and the checks of their values.

Every chapter defines one subclass of :class:`ExperimentConfig`. Its field defaults are the
``cpu`` preset (the book's default); ``PRESETS`` holds what ``smoke`` and ``paper`` change.
Parameters given as text (papermill, the command line) become a config in
:func:`rlntp.params.resolve`, the one place where bad input is rejected: an unknown preset or
parameter, a wrong type or an impossible value raises :class:`ConfigError` naming the parameter
and what is allowed. Building a config touches no file and imports no accelerator library;
:meth:`ExperimentConfig.prepare` checks the device and creates the output folder, at run time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import linecache
import os
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar

PRESET_NAMES = ("smoke", "cpu", "paper")
MATMULS = ("float32", "bfloat16", "auto")  # ModelPart.matmuls
REPO = Path(__file__).resolve().parent.parent


class PaperOnCPUWarning(UserWarning):
    """The ``paper`` preset resolved to the CPU: it will run, but for days."""


class ConfigError(ValueError):
    """A parameter has a value that is not allowed; the message names it and what is.

    In a notebook (IPython) it prints as its one-line message and the cell line that raised it,
    without the traceback through the library: that is what papermill shows last.
    """

    def _render_traceback_(self) -> list[str]:
        lines, tb = [], self.__traceback__
        while tb is not None:  # the notebook cell's frame: not a file of a package
            code = tb.tb_frame.f_code
            if "ipykernel_" in code.co_filename or code.co_filename.startswith("<ipython-input"):
                src = linecache.getline(code.co_filename, tb.tb_lineno).strip()
                lines = [f"Cell line {tb.tb_lineno}: {src}"] if src else []
            tb = tb.tb_next
        return [*lines, f"{type(self).__name__}: {self}"]


def require(ok: bool, name: str, value: Any, allowed: str) -> None:
    """Raise :class:`ConfigError` for parameter ``name`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"parameter {name}={value!r} is not allowed: {allowed}")


def param(default: Any, help: str) -> Any:
    """A config field with a one-line ``help`` text (shown by ``describe`` and in notebooks)."""
    return dataclasses.field(default=default, metadata={"help": help})


def require_at_least(cfg: Any, low: float, names: Iterable[str]) -> None:
    """Each field of ``names`` must be ``>= low`` (a ConfigError names the first that is not)."""
    for name in names:
        value = getattr(cfg, name)
        require(value >= low, name, value, f"a number >= {low:g}")


def require_positive(cfg: Any, names: Iterable[str]) -> None:
    for name in names:
        value = getattr(cfg, name)
        require(value > 0, name, value, "a number > 0")


def require_list(cfg: Any, name: str, items: str, ok: Callable[[Any], bool] = lambda v: True) -> None:
    """List field ``name`` must be non-empty, its values distinct and each ``ok``; ``items``
    says which values are allowed (e.g. ``"numbers in (0, 1]"``)."""
    value = getattr(cfg, name)
    require(len(value) > 0 and len(set(value)) == len(value) and all(map(ok, value)), name, value,
            f"a non-empty list of distinct {items}")


MIN_TEMPERATURE = 1e-3  # below it, logits / temperature overflow float32 when sampling
TEMPERATURES = f"numbers >= {MIN_TEMPERATURE:g} (a smaller temperature cannot be sampled)"


def is_temperature(t: float) -> bool:
    """A sampling temperature that can be sampled at (greedy decoding is not a temperature)."""
    return t >= MIN_TEMPERATURE


def require_temperature(cfg: Any) -> None:
    """``cfg.temperature`` must be one that can be sampled at."""
    require(is_temperature(cfg.temperature), "temperature", cfg.temperature,
            f"a number >= {MIN_TEMPERATURE:g} (a smaller temperature cannot be sampled)")


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """Fields every experiment has. Parts and chapters add their own knobs.

    Every class in the hierarchy may define ``check(self)``: each is called once, base first,
    after construction (so a part validates its own fields, wherever it is mixed in).
    """

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {"smoke": {}, "cpu": {}, "paper": {}}
    CHAPTER: ClassVar[str] = "experiment"  # names the default output folder runs/PRESET/CHAPTER
    CPU_ONLY: ClassVar[bool] = False  # runs on the CPU at every preset (no paper-on-CPU warning)

    preset: str = param("cpu", "'smoke' (seconds), 'cpu' (the book), 'paper' (GPU, paper scale)")
    device: str = param("auto", "'auto' (cuda when present), 'cpu', 'cuda' or 'cuda:N'")
    out_dir: str | None = param(None, "where metrics, figures and checkpoints go "
                                      "(None: runs/<preset>/<chapter>)")
    seeds: tuple[int, ...] = param((0, 1, 2), "training seeds; every run is repeated per seed")
    workers: int | None = param(None, "parallel CPU processes (None: all cores on cpu, 1 on cuda)")

    def __post_init__(self) -> None:
        for klass in reversed(type(self).__mro__):
            if "check" in vars(klass):
                vars(klass)["check"](self)

    def check(self) -> None:
        require(self.preset in PRESET_NAMES, "preset", self.preset, f"one of {PRESET_NAMES}")
        require(
            self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"),
            "device",
            self.device,
            "'auto', 'cpu', 'cuda' or 'cuda:N'",
        )
        require_list(self, "seeds", f"integers in 0..{MAX_SEED}", lambda s: 0 <= s <= MAX_SEED)
        require(
            self.workers is None or self.workers >= 1, "workers", self.workers, "None or >= 1"
        )

    @property
    def torch_device(self) -> str:
        """The device string torch uses: "auto" becomes cuda when present, else cpu."""
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    @property
    def path(self) -> Path:
        """The output folder: ``out_dir``, or ``runs/PRESET/CHAPTER`` in the repo (not created:
        :meth:`prepare` does that)."""
        return Path(self.out_dir) if self.out_dir else REPO / "runs" / self.preset / self.CHAPTER

    def prepare(self) -> Path:
        """What a run needs before it starts, checked in one line each: the device is there (and
        a warning for the paper preset on a CPU), the output folder exists and is writable
        (a :class:`ConfigError` naming out_dir otherwise). Returns the folder. A ``CPU_ONLY`` chapter
        does not warn: the CPU is its only device."""
        if self.device.startswith("cuda"):
            import torch

            require(torch.cuda.is_available(), "device", self.device, "cuda needs a GPU; use 'auto' or 'cpu'")
        if self.preset == "paper" and self.torch_device == "cpu" and not self.CPU_ONLY:
            warnings.warn("preset='paper' is running on the CPU (no GPU found, or device='cpu'): "
                          "the paper's scale takes days there; use a GPU, or preset='cpu'.",
                          PaperOnCPUWarning, stacklevel=2)
        return writable_dir(self.path, f"parameter out_dir={self.out_dir!r}" if self.out_dir else
                            f"parameter out_dir=None (the folder {str(self.path)!r})")

    def scale(self) -> str:
        """The scale of a run in a few words (chapters add their task size and model)."""
        return f"{len(self.seeds)} seed{'s' if len(self.seeds) > 1 else ''}"

    @property
    def n_workers(self) -> int:
        """Processes to run independent runs in (one thread each on CPU)."""
        if self.workers is not None:
            return self.workers
        if self.torch_device != "cpu":
            return 1
        import os

        return max(1, min(len(os.sched_getaffinity(0)), 8))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def key_values(self) -> dict[str, Any]:
        """The field values :meth:`key` hashes (a part may resolve one, e.g. an 'auto')."""
        return self.to_dict()

    def key(self, *exclude: str, only: Iterable[str] | None = None) -> str:
        """A short stable hash of the fields that change results (not out_dir/workers/device):
        all of them but ``exclude``, or ``only`` these."""
        skip = {"out_dir", "workers", "device", "preset", *exclude}
        keep = None if only is None else set(only)
        d = {k: v for k, v in self.key_values().items()
             if k not in skip and (keep is None or k in keep)}
        return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]

    @classmethod
    def field_names(cls, *parts: type) -> list[str]:
        """The fields of ``cls`` (or only those declared by the given part classes)."""
        names = [f.name for f in dataclasses.fields(cls)]
        if not parts:
            return names
        declared = {n for p in parts for n in getattr(p, "__annotations__", {})}
        return [n for n in names if n in declared]

    def table(self, headline: bool = False) -> Any:
        """The resolved config as a table (parameter, value, meaning), paths relative to the
        repository. ``headline``: only the preset, device, seeds and the chapter's own knobs (not
        those of the shared model, optimiser and training parts)."""
        import pandas as pd

        shared = {"out_dir", "workers", *(n for part in PARTS for n in part.__annotations__)}
        rows = [(f.name, display_value(getattr(self, f.name)), f.metadata.get("help", ""))
                for f in dataclasses.fields(self) if not headline or f.name not in shared]
        return pd.DataFrame(rows, columns=["parameter", "value", "meaning"]).set_index("parameter")

    def describe(self) -> str:
        """A one-line title and a two-column listing of the resolved config (for a terminal)."""
        table = self.table()
        width = max(map(len, table.index))
        lines = [f"{type(self).__name__} (preset {self.preset!r}, device {self.torch_device!r})"]
        lines += [f"  {name:<{width}} = {value}" for name, value in table["value"].items()]
        return "\n".join(lines)


def display_path(path: str | Path) -> str:
    """``path`` relative to the repository when inside it (no build machine's home in the book)."""
    p = Path(path)
    try:
        return str(p.resolve().relative_to(REPO))
    except ValueError:
        return str(p)


def display_value(value: Any) -> str:
    """A config value as a reader should see it: paths under the repository made relative."""
    if isinstance(value, str) and os.path.isabs(value):
        return repr(display_path(value))
    return repr(value)


@dataclasses.dataclass(frozen=True)
class ModelPart:
    """The GPT-2-style decoder of :mod:`rlntp.models.gpt`."""

    n_layer: int = param(2, "transformer blocks")
    n_head: int = param(2, "attention heads per block (a divisor of n_embd)")
    n_embd: int = param(64, "width of the residual stream")
    matmuls: str = param("float32", f"precision of the blocks' matrix products, one of {MATMULS}: "
                         "'bfloat16' keeps weights, logits and optimizer in float32; 'auto' is "
                         "bfloat16 where the device has bf16 matrix units (CPUs with AMX, GPUs), "
                         "float32 elsewhere")

    def check(self) -> None:
        require_at_least(self, 1, ("n_layer", "n_head", "n_embd"))
        require(self.n_embd % self.n_head == 0, "n_head", self.n_head,
                f"a divisor of n_embd={self.n_embd}")
        require(self.matmuls in MATMULS, "matmuls", self.matmuls, f"one of {MATMULS}")

    @property
    def bf16_matmuls(self) -> bool:
        """``matmuls`` resolved on this machine ('auto' asks :func:`rlntp.models.gpt.native_bf16`)."""
        if self.matmuls != "auto":
            return self.matmuls == "bfloat16"
        from rlntp.models.gpt import native_bf16

        return native_bf16(self.torch_device)  # type: ignore[attr-defined]

    @property
    def matmul_precision(self) -> str:
        """``matmuls`` as this machine runs it: 'bfloat16' or 'float32'."""
        return "bfloat16" if self.bf16_matmuls else "float32"

    def key_values(self) -> dict[str, Any]:
        """Results depend on the precision used, not on the word 'auto'."""
        return {**super().key_values(), "matmuls": self.matmul_precision}  # type: ignore[misc]


@dataclasses.dataclass(frozen=True)
class OptimizerPart:
    """AdamW (decay on matrices only) and gradient-norm clipping, for every training phase."""

    weight_decay: float = param(0.1, "AdamW weight decay (matrices only)")
    adam_beta1: float = param(0.9, "AdamW beta1")
    adam_beta2: float = param(0.95, "AdamW beta2")
    max_grad_norm: float = param(1.0, "gradients are clipped to this norm")

    def check(self) -> None:
        require_at_least(self, 0, ("weight_decay",))
        for name in ("adam_beta1", "adam_beta2"):
            require(0 <= getattr(self, name) < 1, name, getattr(self, name), "a number in [0, 1)")
        require_positive(self, ("max_grad_norm",))


@dataclasses.dataclass(frozen=True)
class NTPPart(OptimizerPart):
    """Next-token pre-training on fresh batches (:func:`rlntp.train.train_ntp`)."""

    pretrain_iters: int = param(1500, "pre-training iterations (a fresh batch each)")
    pretrain_batch_size: int = param(64, "sequences per pre-training batch")
    pretrain_learning_rate: float = param(1e-3, "peak pre-training learning rate")
    warmup_steps: int = param(100, "linear warm-up iterations, then cosine decay")
    min_lr_frac: float = param(0.1, "the cosine decays to this fraction of the peak rate")
    pretrain_eval_every: int = param(100, "pre-training iterations between evaluations")
    ckpt_every: int = param(250, "iterations between kept checkpoints (RL branches from them)")
    eval_size: int = param(512, "fixed test prompts per evaluation")
    group_by_length: bool = param(True, "forward long and short demonstrations apart, each cut "
                                        "after its last target (same loss, fewer FLOPs)")

    def check(self) -> None:
        require_at_least(self, 1, ("pretrain_iters", "pretrain_batch_size", "warmup_steps",
                                   "pretrain_eval_every", "ckpt_every", "eval_size"))
        require_positive(self, ("pretrain_learning_rate",))
        require(0 <= self.min_lr_frac <= 1, "min_lr_frac", self.min_lr_frac, "a number in [0, 1]")


@dataclasses.dataclass(frozen=True)
class RLPart:
    """Policy-gradient RL (GRPO, REINFORCE); names follow TRL's ``GRPOConfig``."""

    rl_iters: int = param(400, "RL iterations (one rollout and update each)")
    prompts_per_iter: int = param(8, "fresh prompts per RL iteration")
    num_generations: int = param(8, "sampled responses per prompt (a GRPO group)")
    learning_rate: float = param(1e-4, "RL learning rate (constant)")
    temperature: float = param(1.0, "sampling temperature tau of RL rollouts")
    epsilon: float = param(0.2, "GRPO clipping epsilon")
    beta: float = param(0.0, "GRPO KL penalty to the starting checkpoint (0: none)")
    num_iterations: int = param(1, "GRPO gradient steps per rollout (> 1: PPO-style reuse)")
    eval_every: int = param(10, "RL iterations between evaluations")

    def check(self) -> None:
        require_at_least(self, 1, ("rl_iters", "prompts_per_iter", "num_iterations", "eval_every"))
        require(self.num_generations >= 2, "num_generations", self.num_generations,
                "an integer >= 2 (GRPO compares the samples of one prompt)")
        require_positive(self, ("learning_rate", "epsilon"))
        require_temperature(self)
        require_at_least(self, 0, ("beta",))

    @property
    def rl_batch(self) -> int:
        """Responses generated per GRPO / REINFORCE iteration."""
        return self.prompts_per_iter * self.num_generations


@dataclasses.dataclass(frozen=True)
class RLLoopPart(OptimizerPart, RLPart):
    """Our RL loop (:func:`rlntp.rl.train.train_rl`): STaR and early stopping besides GRPO."""

    star_rounds: int = param(10, "STaR rounds (sample, keep the rewarded, fine-tune)")
    star_samples: int = param(3200, "responses per STaR round, one per fresh prompt")
    star_epochs: int = param(2, "passes over the kept responses per round (ours)")
    star_batch_size: int = param(64, "STaR fine-tuning batch size")
    star_learning_rate: float = param(2.5e-4, "STaR fine-tuning learning rate (ours)")
    stop_acc: float = param(0.95, "early stop: the 95% interval of greedy accuracy above this ...")
    stop_after: int = param(3, "... at this many evaluations in a row (0: never stop)")

    def check(self) -> None:
        require_at_least(self, 1, ("star_rounds", "star_samples", "star_epochs", "star_batch_size"))
        require_positive(self, ("star_learning_rate",))
        require(0 < self.stop_acc <= 1, "stop_acc", self.stop_acc, "a number in (0, 1]")
        require_at_least(self, 0, ("stop_after",))


PARTS = (ModelPart, OptimizerPart, NTPPart, RLPart, RLLoopPart)  # shared by several chapters


MAX_SEED = 2**32 - 1  # torch, numpy and random all take it; our streams add offsets to it


def writable_dir(path: str | Path, what: str) -> Path:
    """Create folder ``path`` and check that files can be written in it, else ConfigError
    naming ``what`` (e.g. ``"parameter out_dir='/x'"`` or ``"--runs-dir /x"``) and the reason."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"{what} is not allowed: cannot create the folder "
                          f"({e.strerror or e}: {e.filename or p})") from None
    if not os.access(p, os.W_OK | os.X_OK):
        raise ConfigError(f"{what} is not allowed: the folder {str(p)!r} is not writable")
    return p


