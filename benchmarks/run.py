"""Benchmarks of rlntp on this machine, in one process at one torch thread setting.

    .venv/bin/python benchmarks/run.py            # full: about 2 minutes on 2 cores
    .venv/bin/python benchmarks/run.py --quick    # about 1 minute, fewer repetitions
    .venv/bin/python benchmarks/run.py --readme   # ... and rewrite the README's table
    .venv/bin/python benchmarks/run.py --book     # ... and time a full cpu book build (~1 hour)

Writes ``benchmarks/results.json`` (``--out``) and prints a table with the goals met or not:

- ``gemm_peak_gflops``: ``torch.mm`` throughput per precision (float32, bfloat16) at 1 thread and
  at all cores (best timing of square sizes 512-2048): the physical reference.
- ``ntp_step_gflops`` / ``ntp_fraction_of_peak``: model FLOP/s of a next-token training step
  (``task.sample_batch``, :func:`rlntp.train.ntp_loss`, :func:`rlntp.train.optimizer_step`, as
  :func:`rlntp.train.train_ntp` runs them) at the cpu preset of chapters 1, 2 and 4, at the
  precision of the chapter's matrix products on this machine (its ``matmuls``), FLOPs counted
  by :mod:`flops` (``6 N B T + 12 n_layer n_embd B T^2``), over that precision's gemm peak at
  ``--threads``; with ``pretrain_floor_s``, the least time the chapter's pre-training runs could
  take at that peak on all cores (their FLOPs, counted at this step's shape, over that peak).
- ``rl_iter_s`` / ``rl_iter_speedup_vs_trl``: median seconds of one GRPO iteration (8 prompts x 8
  responses, rollout + update) of ours (:mod:`rlntp.rl`) and of TRL's ``GRPOTrainer`` on the same
  model, task and settings (:mod:`trl_baseline`, whose ``DIFFERENCES`` go into the notes).
- ``sampling_speedup_vs_hf_generate``: our KV-cache sampler against ``GPT2LMHeadModel.generate``,
  same weights, batch, temperature and number of new tokens.
- ``time_to_95_s``: a fresh model to greedy accuracy >= 0.95 on parity d=16, p_cot=0.1 at chapter
  2's cpu settings (pre-training to its RL branch step, then GRPO), or not reached within ``--cap-s``.
- ``book_cpu_s``: per chapter and total, the latest ``runs/benchmarks/book_time-cpu.json`` of
  :mod:`book_time` (run again with ``--book``).

Each entry carries the machine, date, commit, ``os.getloadavg()`` at its start and end, and the
cores other processes kept busy meanwhile (``other_load``; the table flags entries above 0.5, whose
numbers other work distorted). The models are fresh (seeded) GPTs: a step's cost does not depend
on what the weights learned, except through response lengths in RL (listed in the entries).
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import book_time
import torch
from flops import FLOP_FORMULA, ForwardShapes, gemm_peak_gflops, nonembedding_params
from measure import Entry, commit, cores, is_busy, machine, median, time_calls
from trl_baseline import DIFFERENCES, offline, trl_iteration_times

from rlntp import seeds
from rlntp.chapter import Chapter
from rlntp.config import NTPPart
from rlntp.experiments import chapters
from rlntp.experiments.parity_rl import ParityRLConfig
from rlntp.experiments.runs import new_model
from rlntp.models.gpt import generate
from rlntp.models.hf_gpt2 import to_hf_gpt2
from rlntp.params import resolve
from rlntp.rl import grpo
from rlntp.rl.rollout import rollout
from rlntp.rl.train import train_rl
from rlntp.train import make_optimizer, ntp_loss, optimizer_step, train_ntp

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
README = REPO / "README.md"
START, END = "<!-- benchmarks:start -->", "<!-- benchmarks:end -->"
ENTRIES = ("gemm", "ntp", "rl", "sampling", "time_to_95", "book")
# the book's budget is issue 25's: the cpu book within 40 minutes on 2 cores, no chapter over 15
GOALS = {"ntp_fraction_of_peak": 0.5, "rl_iter_speedup_vs_trl": 10.0, "time_to_95_s": 60.0,
         "chapter_s": 900.0, "book_s": 2400.0}

def ntp_chapters() -> dict[str, Chapter]:
    """The chapters that pre-train a GPT (their config has :class:`NTPPart`); their first stage's
    jobs are ``(cfg, task, seed)``."""
    return {name: ch for name, ch in chapters().items() if issubclass(ch.config, NTPPart)}


def budget(mode: str) -> dict[str, Any]:
    """Repetitions and time limits of a mode: ``full``, ``quick`` or ``tiny`` (tests: smoke presets)."""
    return {
        "full": dict(preset="cpu", gemm_sizes=(512, 1024, 2048), gemm_s=1.0, ntp_s=10.0, rl_warmup=3,
                     rl_iters=30, sample_reps=100, cap_s=300.0),
        "quick": dict(preset="cpu", gemm_sizes=(512, 1024, 2048), gemm_s=0.3, ntp_s=3.0, rl_warmup=2,
                      rl_iters=8, sample_reps=20, cap_s=120.0),
        "tiny": dict(preset="smoke", gemm_sizes=(128,), gemm_s=0.05, ntp_s=0.0, rl_warmup=1, rl_iters=2,
                     sample_reps=2, cap_s=10.0),
    }[mode]


# ---------------------------------------------------------------------------------------------


PRECISIONS = {"float32": torch.float32, "bfloat16": torch.bfloat16}  # of the gemm peaks


def bench_gemm(threads: int, b: dict[str, Any]) -> Entry:
    """Matmul peak per precision at 1 thread, at all cores and at ``threads``."""
    counts = sorted({1, cores(), threads})
    with Entry(threads) as e:
        per = {(p, t): gemm_peak_gflops(t, b["gemm_sizes"], b["gemm_s"], dtype)
               for p, dtype in PRECISIONS.items() for t in counts}
        e.value = {p: {str(t): per[p, t][0] for t in counts} for p in PRECISIONS}
        e.details = {"unit": "GFLOP/s", "per_size": {p: {str(t): per[p, t][1] for t in counts}
                                                     for p in PRECISIONS},
                     "how": "best time of torch.mm on n x n matrices of the precision, 2 n^3 FLOPs"}
    return e


def bench_ntp(chapter: str, threads: int, gemm: dict[str, dict[str, float]], b: dict[str, Any]) -> Entry:
    """GFLOP/s of train_ntp's step (batch, ntp_loss, optimizer_step) at the chapter's preset shape
    and precision, over that precision's ``gemm`` peak, and ``pretrain_floor_s``: the chapter's
    pre-training FLOPs (its runs x iterations x this step's FLOPs) over that peak on all cores,
    the least time its pre-training can take here."""
    ch = ntp_chapters()[chapter]
    cfg = resolve(ch.config, preset=b["preset"], device="cpu")
    precision = cfg.matmul_precision
    peaks = gemm.get(precision, {})
    peak, peak_all_cores = peaks.get(str(threads)), peaks.get(str(cores()))
    (_, task, _), *_ = ch.stages(cfg)[0].jobs
    model = new_model(cfg, task, 0)
    opt = make_optimizer(model, cfg.pretrain_learning_rate, cfg)
    gen = seeds.generator("train_data", 0)
    flops: list[int] = []

    def step() -> None:
        batch = task.sample_batch(cfg.pretrain_batch_size, gen)
        with ForwardShapes(model) as shapes:
            loss = ntp_loss(model, batch.tokens, batch.target_mask,
                            batch.is_long if cfg.group_by_length else None)
        optimizer_step(model, opt, loss, cfg.max_grad_norm)
        flops.append(shapes.train_flops())

    with Entry(threads) as e:
        times = time_calls(step, warmup=3, reps=5, min_s=b["ntp_s"])
        timed = flops[-len(times):]
        gflops = sum(timed) / sum(times) / 1e9
        per_step, runs = sum(timed) / len(timed), len(ch.stages(cfg)[0].jobs)
        e.value = round(gflops, 2)
        e.details = {
            "unit": "GFLOP/s", "precision": precision,
            "fraction_of_peak": round(gflops / peak, 3) if peak else None,
            "step_ms_median": round(1e3 * median(times), 2), "steps": len(times),
            "flops_per_step": round(per_step),
            "pretrain_runs": runs,
            "pretrain_floor_s": round(runs * cfg.pretrain_iters * per_step / (peak_all_cores * 1e9))
                                if peak_all_cores else None,
            "shape": {"n_layer": cfg.n_layer, "n_head": cfg.n_head, "n_embd": cfg.n_embd,
                      "batch": cfg.pretrain_batch_size, "seq_len": task.seq_len - 1,
                      "group_by_length": cfg.group_by_length, "task": task.label,
                      "nonembedding_params": nonembedding_params(model)},
            "flop_formula": FLOP_FORMULA,
        }
    return e


def bench_rl(threads: int, b: dict[str, Any], seed: int = 0) -> Entry:
    """One GRPO iteration, ours and TRL's, from the same fresh weights at chapter 2's settings."""
    cfg = resolve(ParityRLConfig, preset=b["preset"], device="cpu")
    task = cfg.task(cfg.p_cot)
    start = new_model(cfg, task, seed)
    model = copy.deepcopy(start)
    opt = make_optimizer(model, cfg.learning_rate, cfg)
    ref = copy.deepcopy(model).eval() if cfg.beta > 0 else None
    gen, sample_gen = seeds.generator("rl_data", seed), seeds.generator("rl_sampling", seed)
    lengths: list[float] = []
    split: dict[str, list[float]] = {"rollout": [], "update": []}

    def iteration() -> None:  # the body of rlntp.rl.train.train_rl, evaluation aside
        t0 = time.perf_counter()
        prompts = task.sample_prompts(cfg.prompts_per_iter, gen)
        ro = rollout(model, task, prompts, cfg.num_generations, cfg.temperature, "e2e", sample_gen)
        t1 = time.perf_counter()
        grpo.update(model, opt, ro, cfg, cfg.temperature, ref, gen)
        split["rollout"].append(t1 - t0)
        split["update"].append(time.perf_counter() - t1)
        lengths.append(ro.mask.sum(1).float().mean().item())  # response + EOS, as TRL counts

    with Entry(threads) as e:
        ours = time_calls(iteration, b["rl_warmup"], b["rl_iters"])
        trl, trl_length = trl_iteration_times(start, task, cfg, b["rl_warmup"], b["rl_iters"], seed)
        threads_after = torch.get_num_threads()  # TRL/accelerate must not have changed it
        torch.set_num_threads(threads)
        e.value = {"ours": round(median(ours), 4), "trl": round(median(trl), 4)}
        e.details = {
            "unit": "s per iteration (median)", "speedup_vs_trl": round(median(trl) / median(ours), 2),
            "iterations_timed": len(ours), "warmup": b["rl_warmup"], "threads_after_trl": threads_after,
            "ours_split_s": {k: round(median(v[-len(ours):]), 4) for k, v in split.items()},
            "settings": {"d": task.d, "p_cot": task.p_cot, "prompts": cfg.prompts_per_iter,
                         "num_generations": cfg.num_generations, "max_completion_length":
                         task.max_new_tokens, "temperature": cfg.temperature, "learning_rate":
                         cfg.learning_rate, "beta": cfg.beta, "epsilon": cfg.epsilon,
                         "num_iterations": cfg.num_iterations, "n_layer": cfg.n_layer,
                         "n_embd": cfg.n_embd, "n_head": cfg.n_head},
            "mean_completion_length": {"ours": round(sum(lengths) / len(lengths), 2),
                                       "trl": None if trl_length is None else round(trl_length, 2)},
            "model": "fresh weights (seed 0), the same for both",
            "notes": DIFFERENCES,
        }
    return e


def bench_sampling(threads: int, b: dict[str, Any], seed: int = 0) -> Entry:
    """Our ``generate`` against ``GPT2LMHeadModel.generate``: one RL rollout's batch, full width."""
    offline()
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    cfg = resolve(ParityRLConfig, preset=b["preset"], device="cpu")
    task = cfg.task(cfg.p_cot)
    model = new_model(cfg, task, seed).eval()
    hf = to_hf_gpt2(model).eval()
    x = task.sample_prompts(cfg.rl_batch, seeds.generator("rl_data", seed))
    width, temp = task.max_new_tokens, cfg.temperature
    gen = torch.Generator().manual_seed(seed)
    # eos=-1 / eos_token_id=None: no row stops early, both write exactly `width` tokens per row
    # (with EOS the lengths would be random and differ between the two samplers)
    ours = lambda: generate(model, x, width, temp, eos=-1, generator=gen)  # noqa: E731
    theirs = lambda: hf.generate(  # noqa: E731
        input_ids=x, attention_mask=torch.ones_like(x), do_sample=True, temperature=temp, top_k=0,
        top_p=1.0, max_new_tokens=width, eos_token_id=None, pad_token_id=task.eos)
    assert ours()[0].shape == theirs()[:, x.shape[1]:].shape == (x.shape[0], width)
    with Entry(threads) as e:
        t_ours = time_calls(ours, 2, b["sample_reps"])
        t_hf = time_calls(theirs, 2, b["sample_reps"])
        e.value = round(median(t_hf) / median(t_ours), 2)
        e.details = {"unit": "x (HF time / ours)", "ours_ms": round(1e3 * median(t_ours), 2),
                     "hf_generate_ms": round(1e3 * median(t_hf), 2),
                     "batch": x.shape[0], "prompt_len": x.shape[1], "new_tokens": width,
                     "temperature": temp, "reps": len(t_ours),
                     "notes": "sampling at temperature, top_k=0, top_p=1; EOS disabled in both so every "
                              "row is `new_tokens` long; HF with its default DynamicCache, sdpa"}
    return e


class _Done(Exception):
    """Raised from an evaluation callback to leave train_ntp / train_rl early."""


def bench_time_to_95(threads: int, b: dict[str, Any], cap_s: float, seed: int = 0,
                     target: float = 0.95) -> Entry:
    """A fresh model to greedy accuracy >= ``target`` with chapter 2's cpu settings.

    Pre-training (:func:`train_ntp`, its cosine schedule over ``pretrain_iters``) up to the RL
    branch step ``rl_branch``, then GRPO (:func:`train_rl`, e2e reward), greedy accuracy on the
    seed's ``eval_size`` test prompts checked at the chapter's evaluation intervals. The clock
    includes those greedy evaluations (``eval_s`` says how much they took) and the checkpoints;
    it stops at the first evaluation >= target, or at the first after ``cap_s``.
    """
    cfg = resolve(ParityRLConfig, preset=b["preset"], device="cpu")
    task = cfg.task(cfg.p_cot)
    x = seeds.test_prompts(task, cfg.eval_size, seed)
    trace: list[dict[str, Any]] = []
    state = {"eval_s": 0.0, "reached": None}

    def checker(phase: str) -> Callable[[torch.nn.Module, int], dict[str, float]]:
        def evaluate(model: torch.nn.Module, step: int) -> dict[str, float]:
            t = time.perf_counter()
            resp, lengths = generate(model, x, task.max_new_tokens, 0.0, task.eos)
            acc = task.correct(x, resp, lengths).float().mean().item()
            state["eval_s"] += time.perf_counter() - t
            elapsed = time.perf_counter() - t0
            trace.append({"phase": phase, "step": step, "acc_greedy": round(acc, 4),
                          "t_s": round(elapsed, 2)})
            if acc >= target:
                state["reached"] = trace[-1]
                raise _Done
            if elapsed > cap_s or (phase == "pretrain" and step >= cfg.rl_branch):
                raise _Done
            return {"acc_greedy": acc}
        return evaluate

    with Entry(threads) as e, tempfile.TemporaryDirectory(prefix="rlntp-t95-") as tmp:
        t0 = time.perf_counter()
        model = new_model(cfg, task, seed)
        try:
            train_ntp(model, task, cfg, seed=seed, run_dir=Path(tmp) / "pretrain",
                      evaluate=checker("pretrain"), desc="time_to_95 pretrain")
        except _Done:
            pass
        if state["reached"] is None and time.perf_counter() - t0 <= cap_s:
            try:
                train_rl(model, task, cfg, method="grpo", reward="e2e", temperature=cfg.temperature,
                         seed=seed, branch_step=cfg.rl_branch, run_dir=Path(tmp) / "rl",
                         evaluate=checker("rl"), n_eval=len(x),
                         desc="time_to_95 GRPO")
            except _Done:
                pass
        wall = time.perf_counter() - t0
        hit = state["reached"]
        stopped = "reached" if hit else "cap" if trace[-1]["t_s"] > cap_s else "end of rl_iters"
        e.value = hit["t_s"] if hit else None
        e.details = {
            "unit": "s", "reached": hit is not None, "stopped": stopped, "cap_s": cap_s,
            "target_acc_greedy": target,
            "at": ({"phase": hit["phase"], "step": hit["step"],
                    "pretrain_steps": hit["step"] if hit["phase"] == "pretrain" else cfg.rl_branch,
                    "rl_iters": hit["step"] if hit["phase"] == "rl" else 0} if hit else None),
            "eval_s": round(state["eval_s"], 2), "wall_s": round(wall, 2),
            "settings": {"d": task.d, "p_cot": task.p_cot, "seed": seed, "preset": b["preset"],
                         "pretrain_iters_schedule": cfg.pretrain_iters, "rl_branch": cfg.rl_branch,
                         "pretrain_batch_size": cfg.pretrain_batch_size, "rl_batch": cfg.rl_batch,
                         "eval_size": cfg.eval_size, "pretrain_eval_every": cfg.pretrain_eval_every,
                         "eval_every": cfg.eval_every, "rl_iters": cfg.rl_iters},
            "trace": trace,
        }
    return e


def bench_book(threads: int, run: bool) -> Entry | None:
    """The latest cpu book timing of :mod:`book_time`, measured afresh with ``run``."""
    with Entry(threads) as e:
        result = book_time.time_book("cpu") if run else book_time.latest("cpu")
        if result is None:
            return None
        chapters = {k: v for k, v in result["seconds"].items() if k != "html build"}
        e.value = {"chapters": chapters, "html_build": result["seconds"].get("html build"),
                   "total_s": result["total_s"]}
        source = book_time.result_path("cpu").relative_to(REPO).as_posix()
        e.details = {"unit": "s", "measured": result.get("date"), "source": source, "measured_here": run,
                     "book_time_machine": {k: result.get(k) for k in ("cpus", "processor", "machine",
                                                                       "commit")}}
    # read from a file, the entry's own stamp says when it was read; "measured" says when it was taken
    return e


# ---------------------------------------------------------------------------------------------


def summarize(entries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The headline numbers of the entries (None where not measured)."""
    def get(name: str, *path: str) -> Any:
        v: Any = entries.get(name)
        for p in path:
            v = None if v is None else v.get(p)
        return v

    ntp = {k.split("/", 1)[1]: v for k, v in entries.items() if k.startswith("ntp_step_gflops/")}
    return {
        "gemm_peak_gflops": get("gemm_peak_gflops", "value"),
        "ntp_step_gflops": {ch: v["value"] for ch, v in ntp.items()} or None,
        "ntp_fraction_of_peak": {ch: v["fraction_of_peak"] for ch, v in ntp.items()} or None,
        "rl_iter_s": get("rl_iter_s", "value"),
        "rl_iter_speedup_vs_trl": get("rl_iter_s", "speedup_vs_trl"),
        "sampling_speedup_vs_hf_generate": get("sampling_speedup_vs_hf_generate", "value"),
        "time_to_95_s": get("time_to_95_s", "value"),
        "time_to_95_reached": get("time_to_95_s", "reached"),
        "book_cpu_s": get("book_cpu_s", "value"),
    }


def goals(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Each goal with its value and ``met`` (True / False, None: not measured)."""
    def goal(name: str, value: Any, target: str, ok: Callable[[Any], bool]) -> dict[str, Any]:
        return {"goal": name, "target": target, "value": value,
                "met": None if value is None else bool(ok(value))}

    frac = (summary["ntp_fraction_of_peak"] or {}).get("01_parity_pretraining")
    t95 = summary["time_to_95_s"]
    if t95 is None and summary["time_to_95_reached"] is False:
        t95 = "not reached"  # measured, not reached within the cap
    book = summary["book_cpu_s"]
    return [
        goal("ntp_fraction_of_peak (chapter 1)", frac, f">= {GOALS['ntp_fraction_of_peak']}",
             lambda v: v >= GOALS["ntp_fraction_of_peak"]),
        goal("rl_iter_speedup_vs_trl", summary["rl_iter_speedup_vs_trl"],
             f">= {GOALS['rl_iter_speedup_vs_trl']:g}", lambda v: v >= GOALS["rl_iter_speedup_vs_trl"]),
        goal("time_to_95_s", t95, f"<= {GOALS['time_to_95_s']:g} s",
             lambda v: v != "not reached" and v <= GOALS["time_to_95_s"]),
        goal("book: every chapter (cpu)", max(book["chapters"].values()) if book else None,
             f"<= {GOALS['chapter_s']:g} s each", lambda v: v <= GOALS["chapter_s"]),
        goal("book: total (cpu)", book["total_s"] if book else None, f"<= {GOALS['book_s']:g} s",
             lambda v: v <= GOALS["book_s"]),
    ]


def _load(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return ""
    other = entry.get("other_load")
    text = f"{other:.2f}" if other is not None else f"{entry['loadavg_start'][0]:.2f} (loadavg)"
    return text + (" **busy: numbers distorted**" if is_busy(entry) else "")


def table(results: dict[str, Any]) -> str:
    """The results as a markdown table: metric, value, goal, other processes' load."""
    e, s = results["entries"], results["summary"]
    met = {g["goal"]: g for g in results["goals"]}

    def verdict(name: str) -> str:
        g = met[name]
        return f"{g['target']}: " + {True: "met", False: "**not met**", None: "not measured"}[g["met"]]

    rows = [("metric", "value", "goal", "other load (cores)")]
    for precision, peaks in (s["gemm_peak_gflops"] or {}).items():
        rows.append((f"gemm_peak_gflops {precision} (threads: GFLOP/s)",
                     ", ".join(f"{t}: {v:.0f}" for t, v in peaks.items()), "",
                     _load(e["gemm_peak_gflops"])))
    for ch, v in (s["ntp_step_gflops"] or {}).items():
        en = e[f"ntp_step_gflops/{ch}"]
        sh = en["shape"]
        frac = en["fraction_of_peak"]
        rows.append((f"ntp_step_gflops {ch} ({sh['n_layer']}x{sh['n_embd']}, B={sh['batch']}, "
                     f"T={sh['seq_len']})", f"{v:.1f} ({frac:.2f} of the {en['precision']} peak, "
                     f"{en['step_ms_median']:.1f} ms; "
                     f"pre-training floor {en['pretrain_floor_s']} s)" if frac is not None else f"{v:.1f}",
                     verdict("ntp_fraction_of_peak (chapter 1)") if ch == "01_parity_pretraining" else "",
                     _load(en)))
    if s["rl_iter_s"]:
        split = e["rl_iter_s"].get("ours_split_s")
        parts = f"; ours: rollout {split['rollout']:.3f} + update {split['update']:.3f}" if split else ""
        rows.append(("rl_iter_s (ours / TRL GRPOTrainer)",
                     f"{s['rl_iter_s']['ours']:.3f} / {s['rl_iter_s']['trl']:.3f} "
                     f"({s['rl_iter_speedup_vs_trl']:.1f}x{parts})", verdict("rl_iter_speedup_vs_trl"),
                     _load(e["rl_iter_s"])))
    if s["sampling_speedup_vs_hf_generate"]:
        en = e["sampling_speedup_vs_hf_generate"]
        rows.append(("sampling_speedup_vs_hf_generate", f"{en['value']:.1f}x ({en['ours_ms']:.1f} ms vs "
                     f"{en['hf_generate_ms']:.1f} ms)", "", _load(en)))
    if "time_to_95_s" in e:
        en = e["time_to_95_s"]
        at = en["at"]
        value = (f"{en['value']:.1f} s ({at['phase']} step {at['step']})" if en["reached"]
                 else f"not reached ({en['stopped']}: {en['wall_s']:.0f} s)")
        st = en["settings"]
        rows.append((f"time_to_95_s (d={st['d']}, p_cot={st['p_cot']:g})", value, verdict("time_to_95_s"),
                     _load(en)))
    book = e.get("book_cpu_s")
    if book:
        chapters = ", ".join(f"{k[:2]}: {v:.0f}" for k, v in book["value"]["chapters"].items())
        rows.append((f"book_cpu_s (measured {str(book['measured'])[:10]})",
                     f"{chapters}; total {book['value']['total_s']:.0f}",
                     f"{verdict('book: every chapter (cpu)')}; {verdict('book: total (cpu)')}", ""))
    else:
        rows.append(("book_cpu_s", "no runs/benchmarks/book_time-cpu.json (run with --book)",
                     f"{verdict('book: every chapter (cpu)')}; {verdict('book: total (cpu)')}", ""))
    lines = ["| " + " | ".join(r) + " |" for r in rows]
    lines.insert(1, "| " + " | ".join("---" for _ in rows[0]) + " |")
    return "\n".join(lines)


def header(results: dict[str, Any]) -> str:
    m = results["machine"]
    return (f"`{results['command']}` ({results['mode']}) on {results['date'][:10]}, commit "
            f"{results['commit'][:10]}{' (modified)' if results['commit'].endswith('+modified') else ''}: "
            f"{m['cpu']}, {m['cores']} cores, torch {m['torch']} at {results['threads']} thread(s).")


def rewrite_readme(results: dict[str, Any], readme: Path = README) -> None:
    """Replace the block between the benchmark markers of ``readme`` with the results' table."""
    text = readme.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{readme}: no {START} ... {END} block to rewrite")
    block = f"{START}\n{header(results)}\n\n{table(results)}\n{END}"
    readme.write_text(re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, text,
                             flags=re.S))


def run(mode: str, threads: int, only: tuple[str, ...], cap_s: float | None, book: bool,
        seed: int) -> dict[str, Any]:
    """Measure every entry of ``only``; return results.json's content."""
    b = budget(mode)
    cap_s = b["cap_s"] if cap_s is None else cap_s
    torch.set_num_threads(threads)
    entries: dict[str, Entry] = {}

    def note(name: str, e: Entry | None) -> None:
        if e is not None:
            entries[name] = e
            print(f"  {name}: {e.value}  ({e.stamp['elapsed_s']:.0f} s, other load "
                  f"{e.stamp['other_load']})", flush=True)

    if "gemm" in only:
        note("gemm_peak_gflops", bench_gemm(threads, b))
    gemm = entries["gemm_peak_gflops"].value if "gemm_peak_gflops" in entries else {}
    if "ntp" in only:
        for ch in ntp_chapters():
            note(f"ntp_step_gflops/{ch}",
                 bench_ntp(ch, threads, gemm, b))
    if "rl" in only:
        note("rl_iter_s", bench_rl(threads, b, seed))
    if "sampling" in only:
        note("sampling_speedup_vs_hf_generate", bench_sampling(threads, b, seed))
    if "time_to_95" in only:
        note("time_to_95_s", bench_time_to_95(threads, b, cap_s, seed))
    if "book" in only:
        note("book_cpu_s", bench_book(threads, book))
    records = {k: e.record() for k, e in entries.items()}
    summary = summarize(records)
    flag = {"quick": " --quick", "tiny": " --tiny", "full": ""}[mode]
    return {"schema": 1, "mode": mode, "command": f"benchmarks/run.py{flag}", "threads": threads,
            "machine": machine(threads), "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "commit": commit(),
            "flop_formula": FLOP_FORMULA, "summary": summary, "goals": goals(summary),
            "entries": records}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="fewer repetitions: about 1 minute")
    mode.add_argument("--tiny", action="store_true", help="smoke-preset shapes, seconds (for tests)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads of every model benchmark (default 1: the book runs one thread "
                         "per worker process)")
    ap.add_argument("--only", nargs="+", choices=ENTRIES, default=list(ENTRIES), help="entries to run")
    ap.add_argument("--cap-s", type=float, help="time_to_95 gives up after this many seconds "
                                                "(default 300; --quick 120)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--book", action="store_true", help="time a full cpu book build (~1 hour) first")
    ap.add_argument("--out", type=Path, default=HERE / "results.json")
    ap.add_argument("--readme", action="store_true", help="rewrite the README's benchmark table")
    ap.add_argument("--readme-only", action="store_true",
                    help="rewrite the README's table from --out without measuring")
    args = ap.parse_args(argv)
    if args.threads < 1:
        ap.error("--threads must be >= 1")
    if args.readme_only:
        rewrite_readme(json.loads(args.out.read_text()))
        return
    mode = "quick" if args.quick else "tiny" if args.tiny else "full"
    print(f"benchmarks ({mode}, {args.threads} thread(s)): {', '.join(args.only)}", flush=True)
    results = run(mode, args.threads, tuple(args.only), args.cap_s, args.book, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"\n{header(results)}\n\n{table(results)}\n\nwritten: {args.out}")
    if args.readme:
        rewrite_readme(results)
        print(f"rewritten: {README}")


if __name__ == "__main__":
    sys.exit(main())
