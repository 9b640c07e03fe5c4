"""What "reproduced" means: a claim, the result of its criterion, its verdict, and the scorecard.

Each chapter declares its claims beside its experiment (``CHAPTER.claims`` in its module of
:mod:`rlntp.experiments`). A criterion is a small function ``measure(df, cfg) -> Result`` of the
chapter's tidy metrics and its resolved config; it states the numbers it used (with seeds),
whether the claim holds, and, when it could not be decided, why. The chapters quote
:func:`sentence` of these results and the scorecard page (:func:`rlntp.scorecard.scorecard`)
lists all of them, so prose and page are decided by the same functions.

Verdicts (:data:`VERDICTS`): ``reproduced`` (holds at the paper preset with no scale parameter
overridden), ``reproduced qualitatively, at a smaller scale`` (holds at any other scale),
``not reproduced`` (measured, and does not hold), ``inconclusive`` (it ran, but a precondition
failed or the run was too small to decide: the criterion measured something and says why it
cannot decide), ``not run`` (these parameters do not measure it),
``stale: rerun`` (the chapter's outputs are not those its last run left from today's inputs:
never quoted). Accuracies are judged with
binomial confidence intervals (:func:`wilson`), not point values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pandas as pd

REPRODUCED, SMALLER = "reproduced", "reproduced qualitatively, at a smaller scale"
STALE_VERDICT = "stale: rerun"  # the chapter's outputs are not those its runner stamped
VERDICTS = (REPRODUCED, SMALLER, "not reproduced", "inconclusive", "not run", STALE_VERDICT)
NOT_SCALE = {"device", "out_dir", "workers"}  # fields that do not change what a run measures


@dataclasses.dataclass(frozen=True)
class Result:
    """What a criterion measured: the numbers (text), whether the claim holds (None: not
    decided), and why it was not decided."""

    measured: str
    holds: bool | None
    why: str = ""

    def __post_init__(self) -> None:  # numpy's bools (from pandas comparisons) become Python's
        if self.holds is not None:
            object.__setattr__(self, "holds", bool(self.holds))


@dataclasses.dataclass(frozen=True)
class Claim:
    """One claim of the paper (the book's protocol page, ``book/protocol.md``), the paper's own
    value and where it comes from (``paper``: e.g. "~50% (Fig. 2 right)", or "not in our
    sources"), and how its chapter decides it. ``ours``: a claim of this study, not the paper's."""

    key: str
    section: str  # of the protocol page
    statement: str
    paper_scale: str
    criterion: str
    figure: str  # the label of the figure that shows it
    measure: Callable[[pd.DataFrame, Any], Result]
    paper: str = "not in our sources"
    ours: bool = False


def overridden(cfg: Any) -> list[str]:
    """The scale parameters of ``cfg`` that differ from its preset's values (not device,
    out_dir, workers)."""
    from rlntp.params import resolve

    preset = resolve(type(cfg), preset=cfg.preset, device=cfg.device)
    return [f.name for f in dataclasses.fields(cfg) if f.name not in NOT_SCALE
            and getattr(cfg, f.name) != getattr(preset, f.name)]


def verdict(result: Result, cfg: Any) -> str:
    """The verdict of ``result`` measured with config ``cfg``."""
    if result.holds is None:
        return "inconclusive" if result.measured else "not run"
    if not result.holds:
        return "not reproduced"
    return REPRODUCED if cfg.preset == "paper" and not overridden(cfg) else SMALLER


def wilson(k: float, n: float, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (95% by default) of a proportion: ``k`` successes in ``n``."""
    if n <= 0:
        return 0.0, 1.0
    p, zz = k / n, z * z
    mid = (p + zz / (2 * n)) / (1 + zz / n)
    half = z * (p * (1 - p) / n + zz / (4 * n * n)) ** 0.5 / (1 + zz / n)
    return max(0.0, mid - half), min(1.0, mid + half)


def interval_above(acc: float, n: int, level: float) -> bool:
    """An accuracy ``acc`` measured on ``n`` prompts whose 95% Wilson interval lies above ``level``:
    what the chapters call learned, and where the RL loop stops."""
    return wilson(acc * n, n)[0] >= level


def fmt(x: float | None, spec: str = ".2f") -> str:
    """A number for a claim's text ("n/a" when missing)."""
    return "n/a" if x is None or pd.isna(x) else format(x, spec)


def claim_table(claims: tuple[Claim, ...], decide: Callable[[Claim], tuple[Result, str]], scale: str = ""
          ) -> pd.DataFrame:
    """One row per claim (statement, measured, criterion, the paper's value, verdict, why, figure,
    scale) from ``decide(claim) -> (result, verdict)``; empty, with the columns, for no claims."""
    rows = []
    for c in claims:
        r, v = decide(c)
        rows.append(dict(key=c.key, claim=c.statement + (" (ours)" if c.ours else ""),
                         measured=r.measured, criterion=c.criterion, paper=c.paper, verdict=v,
                         why=r.why, figure=c.figure, scale=scale))
    columns = ["key", "claim", "measured", "criterion", "paper", "verdict", "why", "figure", "scale"]
    return pd.DataFrame(rows, columns=columns).set_index("key")


def assess(claims: tuple[Claim, ...], df: pd.DataFrame, cfg: Any) -> pd.DataFrame:
    """``claims`` decided on ``df`` (a chapter's metrics) and ``cfg`` (its resolved config)."""
    def decide(c: Claim) -> tuple[Result, str]:
        r = c.measure(df, cfg)
        return r, verdict(r, cfg)

    return claim_table(claims, decide, cfg.scale())


def sentence(table: pd.DataFrame) -> str:
    """The chapter's closing sentence, chosen by the verdicts of :func:`assess`."""
    by = {v: list(table.index[table.verdict == v]) for v in VERDICTS}

    def lower(text: str) -> str:  # "Below ..." -> "below ...", but "GRPO", "STaR" stay
        return text if text[1:2].isupper() else text[:1].lower() + text[1:]

    def names(keys: list[str]) -> str:
        return "; ".join(lower(table.claim[k]) for k in keys)

    def with_why(keys: list[str]) -> str:
        return "; ".join(f"{lower(table.claim[k])} ({table.why[k]})" for k in keys)

    parts = []
    if by[REPRODUCED]:
        parts.append(f"Reproduced at the paper's scale: {names(by[REPRODUCED])}.")
    if by[SMALLER]:
        parts.append(f"Reproduced qualitatively, at this smaller scale: {names(by[SMALLER])}.")
    if by["not reproduced"]:
        parts.append(f"Not reproduced at this preset: {names(by['not reproduced'])}.")
    if by["inconclusive"]:
        parts.append(f"Inconclusive at this preset: {with_why(by['inconclusive'])}.")
    if by["not run"]:
        parts.append(f"Not measured by this run: {with_why(by['not run'])}.")
    return " ".join(parts) or "This chapter decides no claim of the paper."
