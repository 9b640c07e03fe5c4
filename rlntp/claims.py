"""What "reproduced" means: a claim, the result of its criterion, its verdict, and the scorecard.

Each chapter declares its claims beside its experiment (``CHAPTER.claims`` in its module of
:mod:`rlntp.experiments`). A criterion is a small function ``measure(df, cfg) -> Result`` of the
chapter's tidy metrics and its resolved config; it states the numbers it used (with seeds),
whether the claim holds, and, when it could not be decided, why. The chapters quote
:func:`sentence` of these results and the scorecard page (:func:`scorecard`) lists all of them,
so prose and page are decided by the same functions.

Verdicts: ``reproduced`` (holds at the paper's preset), ``reproduced at a smaller scale`` (holds
at ``smoke``/``cpu``), ``not reproduced`` (measured, and does not hold), ``not run`` (these
parameters do not measure it, or a precondition failed; ``why`` says which).
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

VERDICTS = ("reproduced", "reproduced at a smaller scale", "not reproduced", "not run")


@dataclasses.dataclass(frozen=True)
class Result:
    """What a criterion measured: the numbers (text), whether the claim holds (None: not
    decided), and why it was not decided."""

    measured: str
    holds: bool | None
    why: str = ""


@dataclasses.dataclass(frozen=True)
class Claim:
    """One claim of the paper (``../shared/paper.md``), and how its chapter decides it."""

    key: str
    section: str  # of paper.md
    statement: str
    paper_scale: str
    criterion: str
    figure: str  # the label of the figure that shows it
    measure: Callable[[pd.DataFrame, Any], Result]


def verdict(result: Result, preset: str) -> str:
    """The verdict of ``result`` measured at ``preset``."""
    if result.holds is None:
        return "not run"
    if not result.holds:
        return "not reproduced"
    return "reproduced" if preset == "paper" else "reproduced at a smaller scale"


def fmt(x: float | None, spec: str = ".2f") -> str:
    """A number for a claim's text ("n/a" when missing)."""
    return "n/a" if x is None or pd.isna(x) else format(x, spec)


def assess(claims: tuple[Claim, ...], df: pd.DataFrame, cfg: Any) -> pd.DataFrame:
    """``claims`` decided on ``df`` (a chapter's metrics) and ``cfg`` (its resolved config): one
    row per claim with statement, measured, criterion, verdict and why (empty for no claims)."""
    rows = []
    for c in claims:
        r = c.measure(df, cfg)
        rows.append(dict(key=c.key, claim=c.statement, measured=r.measured, criterion=c.criterion,
                         verdict=verdict(r, cfg.preset), why=r.why, figure=c.figure,
                         scale=cfg.scale()))
    columns = ["key", "claim", "measured", "criterion", "verdict", "why", "figure", "scale"]
    return pd.DataFrame(rows, columns=columns).set_index("key")


def sentence(table: pd.DataFrame) -> str:
    """The chapter's closing sentence, chosen by the verdicts of :func:`assess`."""
    by = {v: list(table.index[table.verdict == v]) for v in VERDICTS}

    def lower(text: str) -> str:  # "Below ..." -> "below ...", but "GRPO", "STaR" stay
        return text if text[1:2].isupper() else text[:1].lower() + text[1:]

    def names(keys: list[str]) -> str:
        return "; ".join(lower(table.claim[k]) for k in keys)

    parts = []
    if by["reproduced"] or by["reproduced at a smaller scale"]:
        parts.append(f"Reproduced here: {names(by['reproduced'] + by['reproduced at a smaller scale'])}.")
    if by["not reproduced"]:
        parts.append(f"Not reproduced at this preset: {names(by['not reproduced'])}.")
    if by["not run"]:
        parts.append("Not decided by this run: " + "; ".join(
            f"{lower(table.claim[k])} ({table.why[k]})" for k in by["not run"]) + ".")
    return " ".join(parts) or "This chapter decides no claim of the paper."


def every_claim() -> list[tuple[str, Claim]]:
    """(chapter name, claim) for every chapter's claims, in book order."""
    from rlntp.experiments import chapters

    return [(name, c) for name, ch in chapters().items() for c in ch.claims]


def load_run(out_dir: Path) -> tuple[pd.DataFrame, Any] | None:
    """A finished chapter run's metrics and its config, rebuilt from ``config.json`` (device
    'auto': the reader's machine may lack the run's GPU); None if either file is missing."""
    from rlntp.experiments import chapters
    from rlntp.params import resolve

    if not (out_dir / "metrics.csv").is_file() or not (out_dir / "config.json").is_file():
        return None
    info = json.loads((out_dir / "config.json").read_text())
    cls = chapters()[out_dir.name].config
    params = {k: v for k, v in info["config"].items() if k in cls.field_names()}
    params.update(device="auto", out_dir=str(out_dir))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a paper run read on a CPU machine
        cfg = resolve(cls, **params)
    return pd.read_csv(out_dir / "metrics.csv"), cfg


def scorecard(runs: dict[str, Path]) -> pd.DataFrame:
    """Every claim decided on the runs in ``runs`` (chapter -> its output folder); a chapter
    without a finished run gives "not run". Column ``chapter`` names each claim's chapter."""
    from rlntp.experiments import chapters

    frames = []
    for name, ch in chapters().items():
        loaded = load_run(runs[name]) if name in runs else None
        if loaded is None:
            rows = [dict(key=c.key, claim=c.statement, measured="", criterion=c.criterion,
                         verdict="not run", why="the chapter was not run", figure=c.figure, scale="")
                    for c in ch.claims]
            table = pd.DataFrame(rows, columns=["key", "claim", "measured", "criterion", "verdict",
                                                "why", "figure", "scale"]).set_index("key")
        else:
            table = assess(ch.claims, *loaded)
        frames.append(table.assign(chapter=name))
    return pd.concat(frames)
