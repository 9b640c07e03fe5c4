"""What "reproduced" means: a claim, the result of its criterion, its verdict, and the scorecard.

Each chapter declares its claims beside its experiment (``CHAPTER.claims`` in its module of
:mod:`rlntp.experiments`). A criterion is a small function ``measure(df, cfg) -> Result`` of the
chapter's tidy metrics and its resolved config; it states the numbers it used (with seeds),
whether the claim holds, and, when it could not be decided, why. The chapters quote
:func:`sentence` of these results and the scorecard page (:func:`rlntp.scorecard.scorecard`)
lists all of them, so prose and page are decided by the same functions.

Verdicts: ``reproduced`` (holds at the paper's preset), ``reproduced at a smaller scale`` (holds
at ``smoke``/``cpu``), ``not reproduced`` (measured, and does not hold), ``not run`` (these
parameters do not measure it, or a precondition failed; ``why`` says which), ``stale: rerun``
(the chapter's outputs are not those its last run left from today's inputs: never quoted).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pandas as pd

STALE_VERDICT = "stale: rerun"  # the chapter's outputs are not those its runner stamped
VERDICTS = ("reproduced", "reproduced at a smaller scale", "not reproduced", "not run", STALE_VERDICT)


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
