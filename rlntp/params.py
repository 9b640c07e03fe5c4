"""Parameters given as text become a config: papermill's notebook variables, ``-p KEY=VALUE``.

:func:`resolve` builds a chapter's config from a preset and flat values (``None``: take the
preset's), converting what papermill and the command line pass as text (``"[0.1, 0.2]"``,
``"0.5"``); :func:`resolve_notebook` does it from a notebook's variables, so that a misspelt
``-p NAME`` is an error. Nothing here touches a file::

    cfg = resolve(ParityPretrainConfig, preset="smoke", d=None, seeds=[0, 1])
"""

from __future__ import annotations

import ast
import dataclasses
import json
import math
import types
import typing
from typing import Any, TypeVar

from rlntp.config import MAX_SEED, ConfigError, ExperimentConfig, require

C = TypeVar("C", bound=ExperimentConfig)


def seed_arg(text: str) -> int:
    """An ``argparse`` type for ``--seed``: an integer in 0..MAX_SEED (a 25-digit seed is a
    clean usage error, not an overflow inside torch)."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"{text} is not allowed: an integer in 0..{MAX_SEED}")
    return value


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
    if isinstance(value, str) and tp in (bool, int, float):
        # `papermill -r NAME 0.5` passes raw text, like list values: read numbers and booleans
        text = value.strip()
        value = {"true": True, "false": False}.get(text.lower(), text) if tp is bool else _scalar(text)
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
            if not math.isfinite(value):
                raise ConfigError(f"parameter {name}={value!r} is not allowed: a finite number")
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    else:  # pragma: no cover - a field type this module does not know
        raise TypeError(f"unsupported config field type {tp!r} for {name}")
    raise ConfigError(f"parameter {name}={value!r} has the wrong type: expected {_type_name(tp)}")


def parse_param(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` from a command line: VALUE as JSON if it parses, else as text. KEY must be
    an identifier other than ``preset`` (which has its own flag)."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier() or key == "preset":
        raise ConfigError(f"-p {text!r} is not allowed: KEY=VALUE with KEY a parameter name "
                          "(not 'preset': use --preset)")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


NOTEBOOK_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open", "display", "glue"}


def assigned_names(cells: list[str]) -> set[str]:
    """The names the code ``cells`` assign at their top level (``x = ...``, ``x: T = ...``)."""
    names: set[str] = set()
    for source in cells:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in tree.body:
            targets = node.targets if isinstance(node, ast.Assign) else (
                [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else [])
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names


def _given(namespace: dict[str, Any]) -> set[str]:
    """The names given to a notebook: in IPython, every name the cells run before this one
    assign (the parameters cell and papermill's injected cell, whatever the name's case or
    first character); elsewhere the variables that are not modules, functions, classes,
    CONSTANTS, IPython's names or ``_private``."""
    cells = namespace.get("In")
    if isinstance(cells, list) and len(cells) > 1:
        return assigned_names(cells[:-1])  # the last one is the cell calling us
    return {k for k, v in namespace.items() if not k.startswith("_") and not k.isupper()
            and k not in NOTEBOOK_NAMES and not isinstance(v, (types.ModuleType, type))
            and not callable(v)}


def resolve_notebook(cls: type[C], namespace: dict[str, Any]) -> C:
    """:func:`resolve` from a notebook's variables: the parameters cell and what papermill
    injected. A name given that is not a field of ``cls`` (a misspelt ``-p NAME``, ``-p D``,
    ``-p _d``, ``-p open``) is an error. Call it before the notebook assigns names of its own.
    """
    names = set(cls.field_names())
    unknown = sorted(_given(namespace) - names)
    if unknown:
        raise ConfigError(f"unknown parameter{'s' * (len(unknown) > 1)} {', '.join(unknown)}; "
                          f"{cls.__name__} takes: {', '.join(sorted(names))}")
    try:
        return resolve(cls, **{k: namespace[k] for k in names if k in namespace})
    except ConfigError as e:  # raised again here: the notebook's traceback is two frames long
        raise ConfigError(str(e)) from None


def parameters_cell(cls: type[ExperimentConfig]) -> str:
    """The source of a notebook's ``parameters`` cell for ``cls``: every field, ``None`` (take
    it from the preset) but ``preset``, each with its help text."""
    lines = ["# Parameters (papermill -p NAME VALUE). None: take the value from the preset."]
    for f in dataclasses.fields(cls):
        value = '"cpu"' if f.name == "preset" else "None"
        lines.append(f"{f.name} = {value}  # {f.metadata.get('help', '')}".rstrip(" #"))
    return "\n".join(lines)


def resolve(cls: type[C], preset: str = "cpu", **params: Any) -> C:
    """Build ``cls`` from a preset plus notebook parameters (``None`` = keep the preset's value).

    A preset is the field defaults, then ``PRESETS["cpu"]``, then ``PRESETS[preset]``.
    """
    require(isinstance(preset, str) and preset in cls.PRESETS, "preset", preset,
            f"one of {tuple(cls.PRESETS)}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    values: dict[str, Any] = {"preset": preset}
    for name in params:
        if name not in names:
            raise ConfigError(f"unknown parameter {name!r}; {cls.__name__} takes: {', '.join(names)}")
    given = {k: v for k, v in params.items() if v is not None}
    for name, value in {**cls.PRESETS["cpu"], **cls.PRESETS[preset], **given}.items():
        values[name] = _coerce(name, value, hints[name])
    return cls(**values)
