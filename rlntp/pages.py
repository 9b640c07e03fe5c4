"""Book pages generated from what ran: the scorecard, and the cost of each chapter per preset.

``python -m rlntp.book`` calls :func:`write_pages` after executing the chapters and before the
HTML build. It reads the ``metrics.csv`` and ``config.json`` the chapters wrote, wherever their
stamps (:mod:`rlntp.stamps`) say they lie, but only while the stamps are current: outputs edited,
deleted or made from other inputs show as "stale: rerun". Committed runs (``results/PRESET/CHAPTER``,
e.g. GPU runs) fill in where this book has none. It writes Markdown tables into
``BOOK_DIR/_generated/``, which the hand-written pages include. Nothing in them is typed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from rlntp.claims import STALE_VERDICT, VERDICTS
from rlntp.config import PRESET_NAMES, REPO, display_path
from rlntp.paper_costs import costs_table as paper_costs_table
from rlntp.results import atomic_write_text
from rlntp.scorecard import every_claim, scorecard
from rlntp.stamps import CURRENT, STALE, run_state

RESULTS = REPO / "results"  # committed runs (metrics and config only), e.g. the paper preset on a GPU
CLASS_MINUTES = 50
LIVE_MINUTES = 10  # a run this short can be started in class and discussed while it runs


def _link(name: str) -> str:
    return f"{{doc}}`/chapters/{name}`"  # the chapter's own title


def whole_preset(config_json: Path) -> bool:
    """A committed run of a whole preset, not a few-minute benchmark at its shapes
    (``benchmarks/gpu_paper.py`` marks those with ``benchmark`` in ``config.json``): only those
    are timed as a preset or judged by the scorecard."""
    try:
        info = json.loads(config_json.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and "benchmark" not in info


def read_info(path: Path) -> dict[str, Any] | None:
    """A run's ``config.json`` if it is one (an object with a numeric ``wall_time_s``), else None."""
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    ok = isinstance(info, dict) and isinstance(info.get("wall_time_s"), (int, float))
    return info if ok else None


def measured_runs(book_dir: Path, names: list[str], runs_dir: Path
                  ) -> dict[tuple[str, str], dict[str, Any]]:
    """(chapter, preset) -> what its ``config.json`` says and where it lies: this book's runs
    whose stamp is current, ``{"stale": True}`` for those whose outputs are not what the runner
    made, and committed results where this book has no run."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for name in names:
        for preset in PRESET_NAMES:
            state, out_dir = run_state(book_dir, name, preset, runs_dir, page=False)
            path, source = ((out_dir, "this build") if state == CURRENT else
                            (RESULTS / preset / name, "committed"))
            info = read_info(path / "config.json")
            if source == "committed" and not whole_preset(path / "config.json"):
                info = None
            if state == STALE:
                found[(name, preset)] = {"stale": True, "path": display_path(out_dir)}
            elif info is not None:
                found[(name, preset)] = {**info, "source": source,
                                         "path": display_path(path / "config.json")}
    return found


def _cost(info: dict[str, Any] | None) -> str:
    if info is None:
        return "not run"
    if info.get("stale"):
        return STALE_VERDICT
    where = info.get("device_name") or info.get("device", "?")
    return f"{info['wall_time_s']:,.0f} s ({where}; {info['source']})"


def costs_table(names: list[str], runs: dict[tuple[str, str], dict[str, Any]]) -> str:
    """A Markdown table: one row per chapter, the measured wall time at each preset."""
    lines = ["| Chapter | " + " | ".join(f"`{p}`" for p in PRESET_NAMES) + " |",
             "|---|" + "---|" * len(PRESET_NAMES)]
    for name in names:
        cells = [_cost(runs.get((name, p))) for p in PRESET_NAMES]
        lines.append(f"| {_link(name)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def class_plan(names: list[str], runs: dict[tuple[str, str], dict[str, Any]]) -> str:
    """A Markdown table for a teacher: each chapter's measured ``cpu`` time and, from it, whether
    to run it live in a class period or before it."""
    lines = ["| Chapter | `cpu` run (measured) | In a 50-minute class |", "|---|---|---|"]
    for name in names:
        info = runs.get((name, "cpu"))
        if info is None or info.get("stale"):
            plan = "not measured in this build: time it with `make book` first"
            cost = _cost(info)
        else:
            minutes = info["wall_time_s"] / 60
            cost = f"{minutes:.0f} min"
            plan = ("run it live at the start, discuss while it runs" if minutes <= LIVE_MINUTES else
                    "run it before class (`make book`); in class, read the executed chapter and run "
                    "one exercise's subset" if minutes <= 8 * CLASS_MINUTES else
                    "run it the day before; in class, read the executed chapter")
        lines.append(f"| {_link(name)} | {cost} | {plan} |")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def chapter_runs(book_dir: Path, names: list[str], runs_dir: Path, preset: str
                 ) -> tuple[dict[str, Path], list[str]]:
    """This build's chapters at ``preset``: the output folder of each whose stamp is current,
    and the names of those whose outputs are stale."""
    states = {n: run_state(book_dir, n, preset, runs_dir) for n in names}
    return ({n: d for n, (state, d) in states.items() if state == CURRENT},
            [n for n, (state, _) in states.items() if state == STALE])


def scorecard_table(card: pd.DataFrame, preset: str, names: list[str]) -> str:
    """A Markdown table: every chapter's claims with the paper's scale, what this build's run
    measured (``card``, :func:`rlntp.scorecard.scorecard`), the criterion, the verdict and the
    figure; plus a column for the committed ``results/paper`` runs where there are any."""
    gpu_dirs = {n: RESULTS / "paper" / n for n in names if (RESULTS / "paper" / n / "metrics.csv").is_file()
                and whole_preset(RESULTS / "paper" / n / "config.json")}
    gpu = scorecard(gpu_dirs) if gpu_dirs else None
    head = ["Claim (protocol section; paper's scale)", "The paper's value (source)",
            f"Measured at `{preset}`", "Criterion", "Verdict"]
    head += ["`paper` preset (committed)"] if gpu is not None else []
    lines = ["| " + " | ".join(head + ["Figure"]) + " |", "|---" * (len(head) + 1) + "|"]
    for chapter, c in every_claim():
        row = card.loc[c.key]
        verdict = f"**{row.verdict}**" + (f": {row.why}" if row.why else "")
        measured = f"{row.measured} ({row.scale})" if row.measured else "–"
        cells = [f"{row.claim} (§{c.section}; {c.paper_scale})", c.paper, measured, c.criterion, verdict]
        if gpu is not None:
            g = gpu.loc[c.key]
            cells.append(f"**{g.verdict}** {g.measured}" if chapter in gpu_dirs else "not run")
        figure = f"{{numref}}`Ch. {int(chapter[:2])}, Fig. %s <{c.figure}>`"
        lines.append("| " + " | ".join(map(_cell, cells)) + f" | {figure} |")
    return "\n".join(lines) + "\n"


def scorecard_summary(card: pd.DataFrame, preset: str) -> str:
    """One sentence for the introduction: how many claims got each verdict in this build."""
    counts = card.verdict.value_counts()
    parts = [f"{counts[v]} {v}" for v in VERDICTS if v in counts]
    return (f"Of the {len(card)} claims of the paper that this book tests, this build (`{preset}` "
            f"preset) finds: {', '.join(parts)}; the {{doc}}`scorecard </scorecard>` lists each "
            "one with its numbers.\n")


def write_pages(book_dir: Path, names: list[str], runs_dir: Path, preset: str) -> None:
    """Write ``BOOK_DIR/_generated/{scorecard,summary,costs,class_plan}.md`` from the runs whose
    stamps in ``BOOK_DIR`` are current (:mod:`rlntp.stamps`), and ``paper_costs.md`` from the
    committed ``results/paper_shapes/paper_costs.json`` (:mod:`rlntp.paper_costs`)."""
    runs = measured_runs(book_dir, names, runs_dir)
    card = scorecard(*chapter_runs(book_dir, names, runs_dir, preset))
    out = Path(book_dir) / "_generated"
    atomic_write_text(out / "scorecard.md", scorecard_table(card, preset, names))
    atomic_write_text(out / "summary.md", scorecard_summary(card, preset))
    atomic_write_text(out / "costs.md", costs_table(names, runs))
    atomic_write_text(out / "class_plan.md", class_plan(names, runs))
    atomic_write_text(out / "paper_costs.md", paper_costs_table())
