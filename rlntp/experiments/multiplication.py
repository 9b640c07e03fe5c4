"""Chapter 4: multiplication, a GPT trained from scratch on a long/short mixture, then GRPO
(paper Figs. 4 and 5 left).

Per seed, one pre-training run on the n x n multiplication mixture (:mod:`rlntp.data.multiplication`)
with checkpoints; from each checkpoint in ``branch_steps``, one RL run per method in ``methods``
(GRPO by default) with the ``reward`` kind at ``temperature``. Everything is resumable and cached
(:mod:`rlntp.experiments.runs`). Sequences seen: pre-training counts step x batch size, RL every
generated response.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, ClassVar

import pandas as pd
import torch

from rlntp.chapter import Chapter, Done
from rlntp.claims import Claim, Result, fmt
from rlntp.config import (
    REPO,
    ExperimentConfig,
    ModelPart,
    NTPPart,
    RLLoopPart,
    param,
    require,
    require_list,
)
from rlntp.data import multiplication as mul
from rlntp.data.multiplication import MAX_DIGITS, MultiplicationTask
from rlntp.experiments import runs
from rlntp.experiments.parity_pretrain import CHAIN, pooled
from rlntp.parallel import Stage
from rlntp.rl.train import METHODS
from rlntp.task import REWARDS

EXPERIMENT = "multiplication"

# The cpu preset (ours, measured on 2 cores): the chain of 3x3 products is learned after about
# 7,500 iterations of batch 128 (at 6,000, sampled long answers were right only 0.6-0.9, by seed);
# GRPO then needs a few dozen iterations. Pre-training goes on past the last branch, for the
# comparison with pre-training alone over as many sequences as GRPO generates. Matrix products
# in bf16 where the CPU has AMX (a step 1.4x faster there, 57 vs 81 ms on one thread; float32
# elsewhere): the one chapter whose time is mostly wide matrix products (issue 25's budget).
CPU = dict(n_layer=2, n_head=4, n_embd=128, pretrain_iters=8000, pretrain_batch_size=128,
           pretrain_eval_every=250, ckpt_every=250, eval_size=512,
           rl_iters=60, eval_every=5, matmuls="auto")


@dataclasses.dataclass(frozen=True)
class MultiplicationConfig(RLLoopPart, NTPPart, ModelPart, ExperimentConfig):
    """Pre-training on the multiplication mixture, then RL (``cpu`` preset: defaults + ``CPU``)."""

    CHAPTER: ClassVar[str] = "04_multiplication"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": dict(digits=2, seeds=(0,), n_layer=1, n_embd=32, n_head=2, pretrain_iters=40,
                      pretrain_batch_size=32, pretrain_eval_every=10, ckpt_every=10,
                      eval_size=32, branch_steps=(20, 40), rl_iters=4, eval_every=2, workers=1),
        "cpu": CPU,
        "paper": dict(digits=5, n_layer=12, n_head=12, n_embd=768, pretrain_iters=100_000,
                      pretrain_batch_size=256, pretrain_learning_rate=3e-4, warmup_steps=1000,
                      pretrain_eval_every=2000, ckpt_every=2000, eval_size=640,
                      branch_steps=(10_000, 20_000, 40_000, 60_000, 80_000), rl_iters=500,
                      prompts_per_iter=16, eval_every=20),
    }

    digits: int = param(3, f"operand digits n (n x n multiplication; 1..{MAX_DIGITS})")
    p_cot: float = param(0.25, "fraction of long demonstrations in pre-training")
    branch_steps: tuple[int, ...] = param((1000, 3000, 7500), "checkpoints RL starts from")
    methods: tuple[str, ...] = param(("grpo",), f"RL methods, any of {tuple(METHODS)}")
    reward: str = param("e2e", f"RL reward, one of {REWARDS}")

    def check(self) -> None:
        require(1 <= self.digits <= MAX_DIGITS, "digits", self.digits,
                f"an integer in 1..{MAX_DIGITS} (products must fit int64)")
        require(0 <= self.p_cot <= 1, "p_cot", self.p_cot, "a number in [0, 1]")
        runs.require_branch_steps(self)
        require_list(self, "methods", f"values from {tuple(METHODS)}", lambda m: m in METHODS)
        require(self.reward in REWARDS, "reward", self.reward, f"one of {REWARDS}")

    @property
    def task(self) -> MultiplicationTask:
        return MultiplicationTask(self.digits, self.p_cot)

    def scale(self) -> str:
        return f"{self.digits} x {self.digits} digits, GPT {self.n_layer} x {self.n_embd}, {super().scale()}"


def rl_jobs(cfg: MultiplicationConfig) -> list[runs.RLRun]:
    """Every method from every branch step, for every seed."""
    return [runs.RLRun(m, cfg.reward, cfg.temperature, b, s) for m in cfg.methods
            for b in cfg.branch_steps for s in cfg.seeds]


def stages(cfg: MultiplicationConfig) -> list[Stage]:
    """Pre-training (one run per seed), then the RL runs from its checkpoints."""
    task = cfg.task
    return [Stage("pre-training", runs.pretrain_run, [(cfg, task, s) for s in cfg.seeds]),
            Stage("RL runs", runs.rl_run, [(cfg, task, r) for r in rl_jobs(cfg)])]


def rows(cfg: MultiplicationConfig, done: Done) -> list[dict[str, Any]]:
    """Tidy rows of the pre-training runs, then of the RL runs."""
    out: list[dict[str, Any]] = []
    for (_, task, seed), hist in done["pre-training"]:
        out += runs.pretrain_rows(hist, cfg, task, seed, EXPERIMENT)
    return out + runs.rl_rows({run: h for (_, _, run), h in done["RL runs"]}, cfg, cfg.task, EXPERIMENT)


def wide(df: pd.DataFrame, phase: str) -> pd.DataFrame:
    """The rows of ``phase`` with one column per metric."""
    index = ["seed", "step", "sequences_seen"] + (["method", "branch_step"] if phase == "rl" else [])
    return df[df.phase == phase].pivot_table(index=index, columns="metric", values="value").reset_index()


def at_branches(df: pd.DataFrame, cfg: MultiplicationConfig) -> pd.DataFrame:
    """The pre-training checkpoints RL starts from: per branch step, the median over seeds."""
    pre = wide(df, "pretrain")
    cols = ["acc_greedy", "len_median_greedy", "frac_long_sample", "acc_sample_long",
            "acc_sample_short"]
    return pre[pre.step.isin(cfg.branch_steps)].groupby("step")[cols].median()


def rl_outcomes(df: pd.DataFrame, cfg: MultiplicationConfig, method: str = "grpo"
                ) -> pd.DataFrame:
    """Per branch step (median over seeds): the checkpoint, the RL run's end, and pre-training
    alone after as many further sequences as the RL run generated (its next evaluation)."""
    pre, rl = wide(df, "pretrain"), wide(df, "rl")
    rl = rl[rl.method == method]
    out = []
    for b in cfg.branch_steps:
        runs = rl[rl.branch_step == b]
        if runs.empty:
            continue
        end = runs[runs.step == runs.groupby("seed").step.transform("max")]
        start = runs[runs.step == 0]
        later = pre[pre.sequences_seen >= end.sequences_seen.max()]
        alone = later[later.step == later.step.min()] if not later.empty else pre[pre.step == pre.step.max()]
        rl_lo = pooled(end.acc_greedy, cfg.eval_size)[1]
        alone_hi = pooled(alone.acc_greedy, cfg.eval_size)[2]
        out.append(dict(branch_step=b, ckpt_acc_sample_long=start.acc_sample_long.median(),
                        ckpt_acc_greedy=start.acc_greedy.median(),
                        ckpt_len_mean_greedy=start.len_mean_greedy.median(),
                        rl_acc_greedy=end.acc_greedy.median(),
                        rl_len_mean_greedy=end.len_mean_greedy.median(),
                        rl_sequences=int(end.sequences_seen.max() - b * cfg.pretrain_batch_size),
                        alone_acc_greedy=alone.acc_greedy.median(), alone_covered=not later.empty,
                        rl_lo=rl_lo, alone_hi=alone_hi))
    return pd.DataFrame(out).set_index("branch_step") if out else pd.DataFrame()


def checks(df: pd.DataFrame, cfg: MultiplicationConfig) -> pd.DataFrame:
    """The chapter's claims at the last branch step (medians over seeds), each with its target
    and whether it holds (None: not measurable with these parameters)."""
    task, main = cfg.task, max(cfg.branch_steps)
    ck = at_branches(df, cfg).loc[main]
    outcome = rl_outcomes(df, cfg)
    pre = wide(df, "pretrain")
    # chapter 1's rule for "calibrated": p_cot inside the pooled 95% interval of P(long)
    frac, lo, hi = pooled(pre[pre.step == main].frac_long_sample, cfg.eval_size)
    rows = [
        (f"P(long, T = 1) after pre-training, pooled over seeds (95% interval [{lo:.3f}, {hi:.3f}])",
         frac, f"the interval contains p_cot = {cfg.p_cot:g}"),
        ("median greedy length after pre-training", ck.len_median_greedy, f"= {task.short_len} (short)"),
        ("greedy acc - sampled short acc after pre-training",
         ck.acc_greedy - ck.get("acc_sample_short", float("nan")), "<= 0.05"),
        ("sampled long answers right after pre-training", ck.get("acc_sample_long", float("nan")),
         f">= {CHAIN}"),
    ]
    holds = [lo <= cfg.p_cot <= hi, rows[1][1] == task.short_len, rows[2][1] <= 0.05, rows[3][1] >= CHAIN]
    if main in outcome.index:
        o = outcome.loc[main]
        gain = o.rl_acc_greedy - o.alone_acc_greedy
        # an effect of at least 0.5, and GRPO's pooled 95% interval above pre-training alone's
        rows += [(f"GRPO greedy acc - pre-training alone at the same sequences (pooled 95% intervals: "
                  f"GRPO from {o.rl_lo:.2f}, alone up to {o.alone_hi:.2f})", gain, ">= 0.5, intervals apart"),
                 ("mean greedy length after GRPO", o.rl_len_mean_greedy, f">= {0.95 * task.long_len:.1f}")]
        holds += [bool(gain >= 0.5 and o.rl_lo > o.alone_hi and o.alone_covered),
                  o.rl_len_mean_greedy >= 0.95 * task.long_len]
    else:
        rows += [("GRPO greedy acc - pre-training alone at the same sequences", None,
                  ">= 0.5, intervals apart"),
                 ("mean greedy length after GRPO", None, f">= {0.95 * task.long_len:.1f}")]
        holds += [None, None]
    out = pd.DataFrame(rows, columns=["check", "measured", "target"])
    out["holds"] = [None if h is None else bool(h) for h in holds]
    return out.set_index("check")


def too_early(outcome: pd.DataFrame, cfg: MultiplicationConfig) -> pd.Series | None:
    """The earliest branch whose GRPO run made responses long (mean greedy length up by half the
    gap between the formats) without making them right (greedy acc < 0.5), or None."""
    rise = (cfg.task.long_len - cfg.task.short_len) / 2
    hit = outcome[(outcome.rl_len_mean_greedy - outcome.ckpt_len_mean_greedy >= rise)
                  & (outcome.rl_acc_greedy < 0.5)] if not outcome.empty else outcome
    return None if hit.empty else hit.iloc[0].rename(hit.index[0])



# --- what the notebook shows ---------------------------------------------------------------------
EXAMPLE = (2365, 4374)  # the worked example of the formats figure (4 x 4 digits)


def example_rows() -> dict[str, list[int]]:
    """The tokens of :data:`EXAMPLE`: prompt, then the long or the short response, then EOS."""
    a, b = EXAMPLE
    prompt = mul.prompt(a, b, 4)
    return {"long": prompt + mul.long_response(a, b, 4) + [mul.EOS],
            "short": prompt + mul.short_response(a, b, 4) + [mul.EOS]}


def example_text() -> str:
    """:func:`example_rows` as text, one line each."""
    task = MultiplicationTask(4, 0.25)
    return "\n".join(f"{name:>5}: {task.format(torch.tensor(toks))}" for name, toks in example_rows().items())


def task_line(cfg: MultiplicationConfig) -> str:
    """The task's size in words: digits and token counts."""
    task = cfg.task
    return (f"task: {task.digits} x {task.digits} digits, prompt {task.prompt_len} tokens, "
            f"long response {task.long_len} tokens, short {task.short_len} (before EOS)")


def setup_sentence(cfg: MultiplicationConfig) -> str:
    """The runs of this chapter in words, with this preset's values."""
    return (f"One GPT per seed ({len(cfg.seeds)} seeds; {cfg.n_layer} layers of width {cfg.n_embd}) is "
            f"trained online for {cfg.pretrain_iters} iterations of {cfg.pretrain_batch_size} fresh problems "
            f"(AdamW at {cfg.pretrain_learning_rate:g} with a linear warm-up and a cosine decay: our "
            f"choices), keeping a checkpoint every {cfg.ckpt_every} iterations. From the checkpoints at "
            f"steps {', '.join(map(str, cfg.branch_steps))}, {' and '.join(m.upper() for m in cfg.methods)} "
            f"with the {'end-to-end' if cfg.reward == 'e2e' else 'chain-of-thought'} reward samples "
            f"{cfg.num_generations} responses for each of {cfg.prompts_per_iter} fresh problems per "
            f"iteration at temperature {cfg.temperature:g}, for at most {cfg.rl_iters} iterations "
            f"(learning rate {cfg.learning_rate:g}); a run stops once the 95% interval of its greedy "
            f"accuracy has been above {cfg.stop_acc:g} at {cfg.stop_after} evaluations in a row, and its "
            f"last value is carried forward in the figure. Every run is evaluated on the same "
            f"{cfg.eval_size} test problems of its seed, greedily and at temperature 1. The matrix "
            f"products inside the blocks ran in {cfg.matmul_precision} "
            f"(matmuls = {cfg.matmuls!r}; weights, attention, logits and optimizer in float32).")


def run_counts(df: pd.DataFrame) -> str:
    """How many pre-training and RL runs the metrics hold."""
    rl = df[df.phase == "rl"]
    return (f"{df[df.phase == 'pretrain'].seed.nunique()} pre-training runs, "
            f"{len(rl.groupby(['method', 'branch_step', 'seed']))} RL runs")


def sentences(df: pd.DataFrame, cfg: MultiplicationConfig) -> dict[str, str]:
    """The outcomes in words: the last checkpoint (``pretrain_sentence``), GRPO from it against
    pre-training alone (``rl_sentence``) and RL started too early (``early_sentence``)."""
    task, main = cfg.task, max(cfg.branch_steps)
    ck = at_branches(df, cfg).loc[main]
    outcome = rl_outcomes(df, cfg)
    out = {"pretrain_sentence": (
        f"After {main} pre-training iterations at p_cot = {cfg.p_cot:g}, the model samples a long "
        f"answer {ck.frac_long_sample:.2f} of the time at temperature 1, and its sampled long answers "
        f"are right {ck.get('acc_sample_long', float('nan')):.2f} of the time, its short ones "
        f"{ck.get('acc_sample_short', float('nan')):.2f}. Greedy decoding answers with median length "
        f"{ck.len_median_greedy:.0f} (the short format has {task.short_len} tokens, the long "
        f"{task.long_len}) and is right {ck.acc_greedy:.2f} of the time.")}
    if main in outcome.index:
        o = outcome.loc[main]
        out["rl_sentence"] = (
            f"GRPO from that checkpoint takes greedy accuracy to {o.rl_acc_greedy:.2f} and the mean "
            f"greedy length to {o.rl_len_mean_greedy:.1f} tokens within {o.rl_sequences} generated "
            f"sequences, while pre-training alone over as many further sequences is at "
            f"{o.alone_acc_greedy:.2f}.")
    else:
        out["rl_sentence"] = "No GRPO run started from the last branch step with these parameters."
    early = too_early(outcome, cfg)
    out["early_sentence"] = (
        "No branch shows the too-early case (length up by half the gap between the formats, accuracy "
        "below 0.5)." if early is None else
        f"From the checkpoint at step {early.name}, where sampled long answers are right only "
        f"{early.ckpt_acc_sample_long:.2f} of the time, GRPO raises the mean greedy length from "
        f"{early.ckpt_len_mean_greedy:.1f} to {early.rl_len_mean_greedy:.1f} tokens but greedy accuracy "
        f"only to {early.rl_acc_greedy:.2f}: the paper's case of RL started too early.")
    return out


def paper_results() -> tuple[str, pd.DataFrame | None]:
    """The committed results of the ``paper`` preset (results/paper/04_multiplication), if any: a
    sentence on where and when they ran, and greedy accuracy and length per phase and branch."""
    gpu = REPO / "results" / "paper" / "04_multiplication"
    if not ((gpu / "metrics.csv").exists() and (gpu / "config.json").exists()):
        return ("No run of the paper preset (5 x 5 digits, GPT-2 small's shape, on a GPU) is committed "
                "under results/paper/04_multiplication yet: this chapter shows the cpu scale only."), None
    info = json.loads((gpu / "config.json").read_text())
    gpu_df = pd.read_csv(gpu / "metrics.csv")
    gpu_df["from step"] = gpu_df.branch_step.map(lambda b: "–" if pd.isna(b) else f"{int(b):,}")
    table = gpu_df[gpu_df.metric.isin(["acc_greedy", "len_mean_greedy"])].groupby(
        ["phase", "from step", "metric"]).value.last().unstack()
    where = (f"{info.get('device_name') or info.get('device')} at commit {str(info.get('git_commit'))[:10]} "
             f"({info.get('finished_at')}, {info.get('wall_time_s')} s)")
    if "benchmark" in info:  # benchmarks/gpu_paper.py: the preset's shapes for a few minutes
        done = int(gpu_df[gpu_df.phase == "pretrain"].step.max())
        return (f"A few minutes at the paper preset's shapes are committed (not the preset: "
                f"{done:,} of its {info['config']['pretrain_iters']:,} pre-training iterations, one "
                f"seed; they measure speed and memory, results/paper/README.md), from {where}:"), table
    return f"Committed results of the paper preset, from {where}:", table


# --- claims (paper.md sec. 5) -------------------------------------------------------------------
def _checks(df: pd.DataFrame, cfg: Any, rows: list[int]) -> Result:
    table = checks(df, cfg).iloc[rows]
    if table.holds.isna().any():
        return Result("", None, "no GRPO run from the last branch step")
    text = "; ".join(f"{name}: {fmt(v)}" for name, v in table.measured.items())
    return Result(text + f" (median of {df.seed.nunique()} seeds)", bool(table.holds.all()))


def mult_ntp_short(df: pd.DataFrame, cfg: Any) -> Result:
    return _checks(df, cfg, [0, 1, 2, 3])


def mult_grpo_learns(df: pd.DataFrame, cfg: Any) -> Result:
    return _checks(df, cfg, [4, 5])


def mult_too_early(df: pd.DataFrame, cfg: Any) -> Result:
    outcome = rl_outcomes(df, cfg)
    if len(outcome) < 2:
        return Result("", None, "GRPO ran from fewer than two branch steps")
    early = too_early(outcome, cfg)
    if early is None:
        return Result("no branch raised length without accuracy", False)
    return Result(f"from step {early.name}: long answers right {early.ckpt_acc_sample_long:.2f}; "
                  f"length {early.ckpt_len_mean_greedy:.1f} -> {early.rl_len_mean_greedy:.1f}, greedy "
                  f"accuracy {early.rl_acc_greedy:.2f}", True)


SCALE = "5 x 5 digits, GPT-2, 3 seeds"
CHAPTER = Chapter(MultiplicationConfig, rows, stages, claims=(
    Claim("mult_ntp", "5", "Multiplication: after next-token prediction on the mixture, greedy "
          "decoding answers short and wrong although the chain is known", "5 x 5 digits, GPT-2, "
          "p_cot = 0.25, 3 seeds", "p_cot inside the pooled 95% interval of P(long), greedy length "
          f"short, greedy no better than sampled short answers, long answers right >= {CHAIN}",
          "fig-04-grpo", mult_ntp_short,
          paper="low greedy accuracy after pre-training (Fig. 5 left); the decomposition is ours"),
    Claim("mult_grpo", "5", "Multiplication: GRPO from the checkpoints raises greedy accuracy as "
          "responses grow to the long format", SCALE, "greedy acc >= "
          "pre-training alone + 0.5 at equal sequences, pooled 95% intervals apart; mean length >= "
          "95% of the long format",
          "fig-04-grpo", mult_grpo_learns,
          paper="GRPO raises greedy accuracy, mean length grows (Fig. 5 left)"),
    Claim("mult_early", "5", "Multiplication: GRPO from too early a checkpoint lengthens answers "
          "without making them right", SCALE, "some branch: mean greedy "
          "length up by half the gap between the formats, greedy acc < 0.5", "fig-04-grpo", mult_too_early,
          ours=True),
    Claim("mult_7x7", "5", "Multiplication: 7 x 7 digits at p_cot = 0.1 fails even after 38 GPU-hours",
          "7 x 7 digits, p_cot = 0.1, GPT-2", "GRPO from every checkpoint stays below 0.5 greedy accuracy",
          "fig-04-grpo", lambda df, cfg: Result("", None, "not run: 38 GPU-hours in the paper; -p digits 7 "
                                                "-p p_cot 0.1 at the paper preset runs it"),
          paper="fails after 38 GPU-hours (Sec. 5)"),
))
