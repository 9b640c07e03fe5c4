"""Experiment configs: frozen dataclasses with named presets, resolved from notebook parameters.

Every chapter defines one subclass of :class:`ExperimentConfig`. Its field defaults are the
``cpu`` preset (the book's default); ``PRESETS`` holds what ``smoke`` and ``paper`` change.
A notebook's ``parameters`` cell holds flat values, ``None`` meaning "take it from the preset":

>>> cfg = resolve(ParityPretrainConfig, preset="smoke", d=None, seeds=[0, 1])  # doctest: +SKIP

:func:`resolve` is the one place where bad input is rejected: an unknown preset or parameter,
a wrong type or an impossible value raises :class:`ConfigError` naming the parameter and what
is allowed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, TypeVar

PRESET_NAMES = ("smoke", "cpu", "paper")
REPO = Path(__file__).resolve().parent.parent


class ConfigError(ValueError):
    """A parameter has a value that is not allowed; the message names it and what is."""


def require(ok: bool, name: str, value: Any, allowed: str) -> None:
    """Raise :class:`ConfigError` for parameter ``name`` unless ``ok``."""
    if not ok:
        raise ConfigError(f"parameter {name}={value!r} is not allowed: {allowed}")


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """Fields every experiment has. Subclasses add their own knobs (with cpu-preset defaults)."""

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {"smoke": {}, "cpu": {}, "paper": {}}
    CHAPTER: ClassVar[str] = "experiment"  # names the default output folder runs/PRESET/CHAPTER

    preset: str = "cpu"
    device: str = "auto"  # "auto" (cuda when present), "cpu", "cuda" or "cuda:N"
    out_dir: str | None = None  # where metrics.csv, config.json and figures go
    seeds: tuple[int, ...] = (0, 1, 2)
    workers: int | None = None  # parallel CPU processes; None = all cores on cpu, 1 on cuda

    def __post_init__(self) -> None:
        require(self.preset in PRESET_NAMES, "preset", self.preset, f"one of {PRESET_NAMES}")
        require(
            self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:"),
            "device",
            self.device,
            "'auto', 'cpu', 'cuda' or 'cuda:N'",
        )
        require(len(self.seeds) > 0, "seeds", self.seeds, "a non-empty list of integers")
        require(
            len(set(self.seeds)) == len(self.seeds), "seeds", self.seeds, "distinct integers"
        )
        require(
            self.workers is None or self.workers >= 1, "workers", self.workers, "None or >= 1"
        )
        if self.device.startswith("cuda"):
            import torch

            require(torch.cuda.is_available(), "device", self.device, "cuda needs a GPU; use 'auto' or 'cpu'")
        self.validate()

    def validate(self) -> None:
        """Check experiment-specific constraints; raise ConfigError (override in subclasses)."""

    @property
    def torch_device(self) -> str:
        """The device string torch uses: "auto" becomes cuda when present, else cpu."""
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    @property
    def path(self) -> Path:
        """The output folder (created): ``out_dir``, or ``runs/PRESET/CHAPTER`` in the repo."""
        p = Path(self.out_dir) if self.out_dir else REPO / "runs" / self.preset / self.CHAPTER
        p.mkdir(parents=True, exist_ok=True)
        return p

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

    def key(self, *exclude: str) -> str:
        """A short stable hash of the fields that change results (not out_dir/workers/device)."""
        skip = {"out_dir", "workers", "device", "preset", *exclude}
        d = {k: v for k, v in self.to_dict().items() if k not in skip}
        return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]

    def describe(self) -> str:
        """A two-column listing of the resolved config, for the notebook to print."""
        width = max(len(f.name) for f in dataclasses.fields(self))
        lines = [f"{type(self).__name__} (preset {self.preset!r}, device {self.torch_device!r})"]
        lines += [f"  {f.name:<{width}} = {getattr(self, f.name)!r}" for f in dataclasses.fields(self)]
        return "\n".join(lines)


C = TypeVar("C", bound=ExperimentConfig)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _scalar(text: str) -> Any:
    """An int or float written as text, else the text itself."""
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def _coerce(name: str, value: Any, tp: Any) -> Any:
    """Convert a papermill value to the field type ``tp`` or raise ConfigError."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(name, value, arg)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if len(errors) == 1 else f"parameter {name}={value!r}: "
                          f"expected {_type_name(tp)}")
    if origin is tuple:
        if isinstance(value, str):  # `papermill -p` passes lists as text: "[0.1, 0.2]" or "0.1,0.2"
            value = [_scalar(v.strip().strip("'\"")) for v in value.strip().strip("[]()").split(",")
                     if v.strip()]
        if not isinstance(value, (list, tuple)):
            value = [value]  # a single value is a one-element list
        inner = args[0]
        return tuple(_coerce(name, v, inner) for v in value)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    else:  # pragma: no cover - a field type this module does not know
        raise TypeError(f"unsupported config field type {tp!r} for {name}")
    raise ConfigError(f"parameter {name}={value!r} has the wrong type: expected {_type_name(tp)}")


def resolve(cls: type[C], preset: str = "cpu", **params: Any) -> C:
    """Build ``cls`` from a preset plus notebook parameters (``None`` = keep the preset's value)."""
    require(isinstance(preset, str) and preset in cls.PRESETS, "preset", preset,
            f"one of {tuple(cls.PRESETS)}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    values: dict[str, Any] = {"preset": preset}
    for name in params:
        if name not in names:
            raise ConfigError(f"unknown parameter {name!r}; {cls.__name__} takes: {', '.join(names)}")
    given = {k: v for k, v in params.items() if v is not None}
    for name, value in {**cls.PRESETS[preset], **given}.items():
        values[name] = _coerce(name, value, hints[name])
    return cls(**values)
