"""The book's figures: a consistent style, PNG + SVG output, the idioms several chapters share (mean
+- std bands, the median-over-seeds line, RL branches over their pre-training run) and one function
per chapter figure, drawn from the metrics (and config) with the chapter module's tables."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from rlntp.data import multiplication as muldata
from rlntp.experiments import linear_theory as lt
from rlntp.experiments import multiplication as mult
from rlntp.experiments import parity_pretrain as pp
from rlntp.experiments import parity_rl as prl
from rlntp.experiments import pretrained_lm as lm
from rlntp.experiments.runs import carry_forward
from rlntp.rl.star import star_recursion

plt.rcParams.update({
    "figure.dpi": 110, "savefig.dpi": 150, "axes.grid": True, "grid.alpha": 0.3,
    "axes.spines.top": False, "axes.spines.right": False, "legend.frameon": False,
    "font.size": 10, "legend.fontsize": 9, "svg.fonttype": "path",
})


def save_figure(fig: plt.Figure, out_dir: str | Path, name: str) -> list[Path]:
    """Save ``fig`` as ``out_dir/name.png`` and ``.svg`` (via temp files, then rename)."""
    from rlntp.results import atomic_write_bytes

    paths = []
    for ext in ("png", "svg"):
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, bbox_inches="tight")
        paths.append(atomic_write_bytes(Path(out_dir) / f"{name}.{ext}", buf.getvalue()))
    return paths


MAX_WIDTH_IN = 7.0  # the book's column is about 690 px: a wider figure shrinks and its labels blur


def show_figure(fig: plt.Figure, out_dir: str | Path, name: str) -> None:
    """Save ``fig`` (PNG and SVG, see :func:`save_figure`) and show it as SVG, sharp at any zoom.

    A figure wider than :data:`MAX_WIDTH_IN` inches is refused: in the book it would be scaled
    down until its tick labels cannot be read (stack the panels instead).
    """
    from IPython.display import SVG, display

    width = fig.get_size_inches()[0]
    if width > MAX_WIDTH_IN:
        raise ValueError(f"figure {name!r} is {width:.1f} in wide; the book's column fits "
                         f"{MAX_WIDTH_IN} in: stack its panels")
    _, svg = save_figure(fig, out_dir, name)
    plt.close(fig)
    display(SVG(svg.read_bytes()))


def mean_std_band(ax: plt.Axes, frame: pd.DataFrame, x: str, y: str = "value", label: str | None = None,
                  **line_kw) -> None:
    """Plot the mean of ``y`` over rows sharing ``x`` (e.g. over seeds) with a +-1 std band."""
    g = frame.groupby(x)[y].agg(["mean", "std"]).reset_index().sort_values(x)
    std = g["std"].fillna(0.0).to_numpy()
    (line,) = ax.plot(g[x], g["mean"], label=label, **line_kw)
    ax.fill_between(g[x], g["mean"] - std, g["mean"] + std, color=line.get_color(), alpha=0.2, lw=0)


def colors(n: int, cmap: str = "viridis") -> list:
    """``n`` distinct colours from a sequential colormap (for ordered values such as p_cot)."""
    return [plt.get_cmap(cmap)(v) for v in np.linspace(0.05, 0.9, max(n, 1))]


def median_line(ax: plt.Axes, frame: pd.DataFrame, x: str = "sequences_seen", **line_kw) -> plt.Line2D:
    """Plot the median of ``value`` over rows sharing ``x`` (e.g. over seeds) as a line."""
    g = frame.groupby(x).value.median()
    return ax.plot(g.index, g.values, **line_kw)[0]


def branch_curves(pre: pd.DataFrame, branches: Sequence[tuple[str, Any, pd.DataFrame]], length: str,
                  length_label: str, hlines: Sequence[float], acc_ylim: tuple[float, float],
                  legend_loc: str) -> plt.Figure:
    """RL branches over their pre-training run, median over seeds against training sequences seen:
    greedy accuracy (top) and the ``length`` metric (bottom, grey dotted lines at ``hlines``);
    pre-training in black, each branch ``(label, colour, rows)`` in its colour."""
    fig, axes = plt.subplots(2, 1, figsize=(7, 5.6), sharex=True)
    for ax, metric in zip(axes, ["acc_greedy", length], strict=True):
        median_line(ax, pre[pre.metric == metric], color="k", lw=2, label="pre-training")
        for label, color, run in branches:
            sub = run[run.metric == metric]
            if not sub.empty:
                median_line(ax, sub, color=color, label=label)
    axes[0].set(ylabel="greedy test accuracy", ylim=acc_ylim)
    axes[1].set(ylabel=length_label, xlabel="training sequences seen")
    for n in hlines:
        axes[1].axhline(n, color="grey", ls=":", lw=1)
    axes[0].legend(loc=legend_loc)
    fig.tight_layout()
    return fig


def _legend_right(ax: plt.Axes, **kw) -> None:
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), **kw)


# --- chapter 1 ------------------------------------------------------------------------------------
def plot_pretraining(df: pd.DataFrame) -> plt.Figure:
    """Pre-training per p_cot (mean +- std over seeds): greedy accuracy (top); how often the
    response has the full chain length, greedy (solid) and at T = 1 (dashed; bottom)."""
    main = df[df.experiment == pp.EXPERIMENT]
    ps = sorted(main.p_cot.unique())
    cols = dict(zip(ps, colors(len(ps), "plasma"), strict=False))  # colors() gives >= 1
    fig, axes = plt.subplots(2, 1, figsize=(7, 5.6), sharex=True)
    for p in ps:
        sub = main[main.p_cot == p]
        mean_std_band(axes[0], sub[sub.metric == "acc_greedy"], "sequences_seen", color=cols[p],
                      label=f"{p:g}")
        mean_std_band(axes[1], sub[sub.metric == "frac_len_d_greedy"], "sequences_seen", color=cols[p])
        mean_std_band(axes[1], sub[sub.metric == "frac_len_d_sample"], "sequences_seen", color=cols[p],
                      ls="--")
    axes[0].set(ylabel="greedy test accuracy", ylim=(0.3, 1.05))
    _legend_right(axes[0], title="$p_{cot}$", ncol=2)
    axes[1].set(xlabel="training sequences seen", ylabel="P(length = d)", ylim=(-0.05, 1.05))
    axes[1].plot([], [], "k-", label="greedy")
    axes[1].plot([], [], "k--", label="T = 1")
    _legend_right(axes[1])
    fig.tight_layout()
    return fig


def plot_threshold(df: pd.DataFrame) -> plt.Figure:
    """Final greedy accuracy against p_cot (median over seeds), with 1/3, the argument's step and
    the p_cot whose chain was not learned."""
    summary = pp.summary(df)
    fig, ax = plt.subplots(figsize=(6, 3.4))
    med = summary["acc_greedy"]
    ax.plot(med.index, med.values, "o-", color="k", label="measured (median over seeds)")
    unlearned = summary[summary.acc_sample_long < pp.CHAIN]  # the argument's premise fails there
    if not unlearned.empty:
        ax.plot(unlearned.index, unlearned.acc_greedy, "o", mfc="w", mec="r", ms=9,
                label=f"chain not learned (long answers right < {pp.CHAIN:g})")
    ax.axvline(1 / 3, color="r", ls="--", label="1/3")
    ax.step([0, 1 / 3, 1], [0.5, 1.0, 1.0], where="post", color="0.6", lw=1, label="argument above")
    p_max = df[df.experiment == pp.EXPERIMENT].p_cot.max()
    ax.set(xlabel="$p_{cot}$", ylabel="final greedy accuracy", xlim=(0, p_max + 0.05), ylim=(0.3, 1.05))
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


def plot_calibration(df: pd.DataFrame) -> plt.Figure:
    """Per seed at the end of pre-training: the long fraction at T = 1 against p_cot (left) and the
    sampled accuracy against (1 + p) / 2 (right)."""
    final = pp.final(df)
    fig, axes = plt.subplots(1, 2, figsize=(7, 3.4))
    grid = np.linspace(0, df[df.experiment == pp.EXPERIMENT].p_cot.max(), 50)
    axes[0].scatter(final.p_cot, final.frac_long_sample, color="C0", alpha=0.7)
    axes[0].plot(grid, grid, "k--", lw=1, label="identity")
    axes[0].set(xlabel="$p_{cot}$", ylabel="P(long response), T = 1")
    axes[1].scatter(final.p_cot, final.acc_sample, color="C1", alpha=0.7)
    axes[1].plot(grid, (1 + grid) / 2, "k--", lw=1, label="(1 + p) / 2")
    axes[1].set(xlabel="$p_{cot}$", ylabel="accuracy, T = 1")
    for ax in axes:
        ax.legend()
    fig.tight_layout()
    return fig


# --- chapter 2 ------------------------------------------------------------------------------------
def plot_grpo_branches(df: pd.DataFrame, cfg: Any, experiment: str = prl.EXPERIMENT) -> plt.Figure:
    """GRPO (e2e, tau = ``temperature``) from each checkpoint over pre-training of ``experiment``:
    greedy accuracy and median greedy length (grey: d)."""
    pre = df[(df.experiment == experiment) & (df.phase == "pretrain")]
    cols = colors(len(cfg.branch_steps), "plasma")
    runs = prl.grpo_branches(df, cfg, experiment)
    branches = [(f"GRPO from step {b}", c, runs[b]) for b, c in zip(cfg.branch_steps, cols, strict=True)]
    return branch_curves(pre, branches, "len_median_greedy", "median greedy length", [cfg.d], (0.3, 1.05),
                         "lower right")


def plot_methods(df: pd.DataFrame, cfg: Any) -> plt.Figure:
    """One panel per method (rows) and reward (columns) from ``rl_branch``, one colour per tau:
    greedy (solid) and sampled (dashed) accuracy against RL sequences, mean +- std over seeds;
    a cross marks an early stop."""
    grid = prl.method_grid(df, cfg)
    temp_cols = dict(zip(cfg.temperatures, colors(len(cfg.temperatures), "viridis"), strict=True))
    fig, axes = plt.subplots(len(cfg.methods), len(cfg.rewards), figsize=(7, 0.6 + 2.4 * len(cfg.methods)),
                             sharex=True, sharey=True, squeeze=False)
    for i, m in enumerate(cfg.methods):
        for j, r in enumerate(cfg.rewards):
            ax = axes[i, j]
            for t in cfg.temperatures:
                sub = grid[(grid.method == m) & (grid.reward == r) & (grid.temperature == t)]
                mean_std_band(ax, sub[sub.metric == "acc_greedy"], "rl_sequences", color=temp_cols[t],
                              label=f"tau = {t:g}")
                mean_std_band(ax, sub[sub.metric == "acc_sample"], "rl_sequences", color=temp_cols[t],
                              ls="--")
                stops = sub[(sub.metric == "stopped") & (sub.value == 1) & ~sub.filled]
                acc = sub[(sub.metric == "acc_greedy") & ~sub.filled].set_index(["seed", "step"]).value
                at = [acc[(s, k)] for s, k in zip(stops.seed, stops.step, strict=True)]
                ax.plot(stops.rl_sequences, at, "x", color=temp_cols[t])
            ax.set(title=f"{m.upper()}, {r} reward", ylim=(0.3, 1.05))
            if i == len(cfg.methods) - 1:
                ax.set_xlabel("RL sequences")
        axes[i, 0].set_ylabel("test accuracy")
    axes[0, 0].legend(loc="lower right")
    fig.tight_layout()
    return fig


def plot_lengths(hist: pd.DataFrame, cfg: Any) -> plt.Figure:
    """A heat map of the sampled length distribution (:func:`parity_rl.length_hist`) per GRPO
    iteration."""
    fig, ax = plt.subplots(figsize=(7, 3.4))
    im = ax.imshow(hist.T.values, aspect="auto", origin="lower", cmap="magma_r", vmin=0, vmax=1,
                   extent=(-0.5, len(hist) - 0.5, -0.5, cfg.d + 1.5))
    every = max(1, len(hist) // 12)  # at most about 12 tick labels
    ax.set_xticks(range(0, len(hist), every), [str(i) for i in hist.index[::every]])
    ax.set(xlabel="GRPO iteration", ylabel="sampled response length")
    ax.grid(False)
    fig.colorbar(im, ax=ax, label="fraction of test prompts")
    fig.tight_layout()
    return fig


def plot_star_rounds(df: pd.DataFrame, cfg: Any) -> plt.Figure:
    """STaR's long fraction at T = 1 per round, one line per seed, against the recursion from the
    seed's round 0 (:func:`parity_rl.star_curves`)."""
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for i, (_, sub, rec) in enumerate(prl.star_curves(df, cfg)):
        ax.plot(sub.step, sub.value, "o-", color="C0", alpha=0.7, label="measured" if i == 0 else None)
        ax.plot(range(len(rec)), rec, "k--", lw=1, label="recursion" if i == 0 else None)
    ax.set(xlabel="STaR round", ylabel="P(long response), T = 1", ylim=(-0.02, 1.02))
    ax.legend()
    fig.tight_layout()
    return fig


# --- chapter 3 ------------------------------------------------------------------------------------
def plot_linear_calibration(thr: pd.DataFrame) -> plt.Figure:
    """The long fraction at T = 1 during pre-training, every third p_cot (mean +- std over seeds),
    each with its p_cot dotted."""
    fig, ax = plt.subplots(figsize=(7, 3.6))
    shown = sorted(thr.p_cot.unique())[::3]  # every third p_cot, for legibility
    for p, c in zip(shown, colors(len(shown)), strict=True):
        g = thr[(thr.metric == "frac_long_sample") & (thr.p_cot == p)]
        mean_std_band(ax, g, "sequences_seen", color=c, lw=1, label=f"{p:g}")
        ax.axhline(p, color=c, lw=0.6, ls=":")
    ax.set(xlabel="pre-training sequences", ylabel="P(length = d), temperature 1")
    _legend_right(ax, title="$p_{cot}$", ncol=2)
    fig.tight_layout()
    return fig


def plot_linear_threshold(thr: pd.DataFrame, df: pd.DataFrame) -> plt.Figure:
    """Greedy (left, with 1/3 and the 75% crossing) and sampled accuracy (right, with (1+p)/2)
    against p_cot after pre-training (mean +- std over seeds)."""
    last = thr[thr.step == thr.step.max()]
    p_hat = lt.threshold_values(thr, df)["threshold_estimate"]
    fig, axes = plt.subplots(1, 2, figsize=(7, 3.4), sharey=True)
    for metric, ax, label in (("acc_greedy", axes[0], "greedy"), ("acc_sample", axes[1], "temperature 1")):
        mean_std_band(ax, last[last.metric == metric], "p_cot", marker="o", ms=3, label="measured")
        ax.axvline(1 / 3, color="r", ls="--", lw=1, label="1/3")
        ax.set(xlabel="$p_{cot}$", title=f"accuracy, {label}")
    grid = np.linspace(thr.p_cot.min(), thr.p_cot.max(), 200)
    axes[0].axvline(p_hat, color="k", ls=":", lw=1, label=f"estimate {p_hat:.3f}")
    axes[0].set_ylabel("test accuracy")
    axes[1].plot(grid, (1 + grid) / 2, "k:", label="(1+p)/2")
    for ax in axes:
        ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


def plot_linear_rounds(rl: pd.DataFrame, cfg: Any) -> plt.Figure:
    """The long fraction per RL round (top, log scale; STaR solid, REINFORCE dashed, the recursion
    dotted) and the rounds to greedy accuracy >= 0.95 against p_cot (bottom)."""
    rounds = lt.rounds_to_success(rl, cfg.rl_rounds)
    fig, axes = plt.subplots(2, 1, figsize=(7, 7.4))
    ps = sorted(rl.p_cot.unique())
    for p, c in zip(ps, colors(len(ps), "plasma"), strict=True):
        for method, ls in (("star", "-"), ("reinforce", "--")):
            g = rl[(rl.method == method) & (rl.metric == "frac_long_sample") & (rl.p_cot == p)]
            if len(g):
                mean_std_band(axes[0], g, "step", color=c, ls=ls, lw=1.2,
                              label=f"$p_{{cot}}$={p:g}" if method == "star" else None)
        axes[0].plot(range(cfg.rl_rounds + 1), star_recursion(p, cfg.rl_rounds), "k:", lw=0.8)
    axes[0].axhline(1 / 3, color="r", ls="--", lw=0.8)
    axes[0].set(xlabel="RL round", ylabel="P(length = d), temperature 1", yscale="log",
                title="long fraction: STaR (solid), REINFORCE (dashed), recursion (dotted)")
    _legend_right(axes[0], ncol=2)
    grid = np.geomspace(min(ps), max(ps), 100)
    for method, m in (("star", "o"), ("reinforce", "s")):
        g = rounds[rounds.method == method]
        if g.empty:
            continue
        agg = g.groupby("p_cot").agg(rounds=("rounds", "mean"), censored=("censored", "any")).reset_index()
        done = agg[~agg.censored]
        axes[1].plot(done.p_cot, done.rounds, m + "-", label=f"{method} (mean over seeds)")
        cens = agg[agg.censored]
        axes[1].plot(cens.p_cot, cens.rounds, m, mfc="none", color="gray",
                     label=f"{method}: not reached in {cfg.rl_rounds} rounds" if len(cens) else None)
    axes[1].plot(grid, np.maximum([lt.predicted_rounds(p) for p in grid], 0), "k:",
                 label="$\\log_2((1-p)/p) - 1$")
    axes[1].set(xscale="log", xlabel="$p_{cot}$ at the start of RL",
                ylabel=f"rounds to greedy acc $\\geq$ {lt.SUCCESS}", title="rounds needed")
    _legend_right(axes[1])
    fig.tight_layout()
    return fig


def plot_cost(cost: pd.DataFrame) -> plt.Figure:
    """Total cost (pre-training + RL sequences) from which RL reaches greedy accuracy >= 0.95
    against d, log-log, per p_cot schedule (geometric mean over seeds); open triangles where some
    seed's search hit its cap (a lower bound)."""
    ds = sorted(lt.cost_wide(cost).d.unique())
    fig, ax = plt.subplots(figsize=(7, 4.2))
    tex = {"1/d": "$1/d$", "1/d^2": "$1/d^2$", "2^-d": "$2^{-d}$"}
    for (name, c) in zip(lt.SCHEDULES, ["C0", "C1", "C3"], strict=True):
        agg = lt.cost_bounds(cost, name)
        ok, cens = agg[agg.censored == 0], agg[agg.censored > 0]
        ax.plot(ok.index, ok.high, "o-", color=c, label=f"$p_{{cot}}$ = {tex[name]}")
        ax.plot(cens.index, cens.low, "^", color=c, mfc="none", ms=9,
                label=f"{tex[name]}: cap reached (lower bound)" if len(cens) else None)
    ax.set(xscale="log", yscale="log", xlabel="d (input bits)",
           ylabel=f"sequences to greedy acc $\\geq$ {lt.SUCCESS}", title="pre-training + RL cost")
    ax.minorticks_off()
    ax.set_xticks(ds, [str(v) for v in ds])
    ax.legend()
    fig.tight_layout()
    return fig


# --- chapter 4 ------------------------------------------------------------------------------------
def plot_formats() -> plt.Figure:
    """The worked example (:func:`multiplication.example_rows`) as the model sees it, one box per
    token coloured by its role: prompt, chain, symbols, the product, EOS."""
    rows = mult.example_rows()
    n_prompt = len(muldata.prompt(*mult.EXAMPLE, 4))

    def kind(i: int, t: int) -> str:
        if i < n_prompt:
            return "prompt"
        return "end" if t == muldata.EOS else "chain" if t < 10 else "symbol"

    palette = {"prompt": "#d9d9d9", "chain": "#fdd49e", "symbol": "#c6dbef", "answer": "#a1d99b",
               "end": "#bcbddc"}
    per_line = 26
    lines = [(name, toks[i:i + per_line], i) for name, toks in rows.items()
             for i in range(0, len(toks), per_line)]
    fig, ax = plt.subplots(figsize=(7, 0.42 * len(lines) + 0.8))
    for r, (name, chunk, start) in enumerate(lines):
        y = len(lines) - 1 - r
        if start == 0:
            ax.text(-0.6, y, name, ha="right", va="center", fontsize=10, weight="bold")
        for j, t in enumerate(chunk):
            after_answer = rows[name][:start + j].count(muldata.ANS) > 0
            k = "answer" if after_answer and t < 10 else kind(start + j, t)
            ax.add_patch(plt.Rectangle((j - 0.45, y - 0.38), 0.9, 0.76, color=palette[k], lw=0))
            ax.text(j, y, muldata.SYMBOLS[t].replace("<eos>", "EOS"), ha="center", va="center",
                    fontsize={1: 9, 2: 8}.get(len(muldata.SYMBOLS[t]), 5.5))
    ax.set(xlim=(-3.2, per_line), ylim=(-0.7, len(lines) - 0.3))
    ax.axis("off")
    ax.legend(handles=[plt.Rectangle((0, 0), 1, 1, color=c) for c in palette.values()],
              labels=["prompt", "chain (partial products, sums)", "+ ( ) ####", "the product", "EOS"],
              ncol=3, loc="upper center", bbox_to_anchor=(0.5, 0.02))
    return fig


def plot_mult_branches(df: pd.DataFrame, cfg: Any) -> plt.Figure:
    """Each RL method from each checkpoint over pre-training: greedy accuracy and mean greedy
    length (grey: the short and the long format)."""
    pre, rl = df[df.phase == "pretrain"], df[df.phase == "rl"]
    curves = carry_forward(rl) if not rl.empty else rl
    cols = dict(zip(cfg.branch_steps, colors(len(cfg.branch_steps), "plasma"), strict=True))
    branches = [(f"{m.upper()} from step {int(b)}", cols[b], run)
                for (m, b), run in curves.groupby(["method", "branch_step"])]
    return branch_curves(pre, branches, "len_mean_greedy", "mean greedy length",
                         [cfg.task.short_len, cfg.task.long_len], (-0.03, 1.03), "upper left")


# --- chapter 5 ------------------------------------------------------------------------------------
def _median_band(ax: plt.Axes, frame: pd.DataFrame, **line_kw) -> None:
    """The median over seeds against sequences seen, with the seeds' range as a band."""
    g = frame.groupby("sequences_seen").value.agg(["median", "min", "max"])
    (line,) = ax.plot(g.index, g["median"], **line_kw)
    ax.fill_between(g.index, g["min"], g["max"], color=line.get_color(), alpha=0.2, lw=0)


def plot_lm_branches(df: pd.DataFrame, cfg: Any) -> plt.Figure:
    """SFT on the mixture (grey, its checkpoints as dots, the gated one a star), then GRPO (blue)
    or more SFT, the control (orange), from the gated checkpoint: greedy test accuracy and mean
    response length against training sequences seen, median over seeds with their range; one
    column per dataset."""
    fig, axes = plt.subplots(2, len(cfg.datasets), figsize=(7, 5.6), sharex="col", squeeze=False)
    for col, d in enumerate(cfg.datasets):
        sub = df[df.experiment == d]
        stars = sub[(sub.phase == "sft") & sub.method.isna()]
        for ax, metric in zip(axes[:, col], ("acc_greedy", "len_mean_greedy"), strict=True):
            s = stars[stars.metric == metric]
            _median_band(ax, s, color="0.4", marker="o", label="SFT on the mixture")
            gated = s[s.step == cfg.gated_epoch].value.median()
            ax.plot(s.sequences_seen.max(), gated, "*", ms=14, color="0.2", zorder=3)
            for method, color, label in (("grpo", "C0", "then GRPO"),
                                         (lm.CONTROL, "C1", "then more SFT (control)")):
                b = sub[(sub.method == method) & (sub.metric == metric)]
                _median_band(ax, b, color=color, lw=2, label=label)
        axes[0, col].set(title=d, ylim=(-0.02, 1.02))
        axes[1, col].set_xlabel("training sequences seen")
        axes[1, col].axhline(cfg.max_completion_length, color="grey", ls=":", lw=1)
    axes[0, 0].set_ylabel("greedy test accuracy")
    axes[1, 0].set_ylabel("mean response length (tokens)")
    axes[0, 0].legend(loc="upper left", fontsize=8)
    fig.suptitle(f"{cfg.model}, p_cot = {cfg.p_cot:g}, {len(cfg.seeds)} seed(s), "
                 f"{cfg.test_size or 'all'} test problems", fontsize=10)
    fig.tight_layout()
    return fig
