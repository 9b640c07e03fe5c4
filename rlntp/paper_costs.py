"""What the full ``paper`` preset of each chapter will cost: parameters, FLOPs, peak memory of a
training step at the preset's batch, and GPU hours projected from the FLOPs.

FLOPs follow :data:`rlntp.flops.FLOP_FORMULA`, every run of the preset counted
(:meth:`rlntp.chapter.Chapter.stages`): pre-training steps at the widths ``ntp_loss`` forwards;
every RL iteration at full response width (an upper bound: no early stop, every response as long
as allowed; STaR's round priced as ``star_samples / rl_batch`` GRPO iterations); evaluations not
counted. Chapter 5 (Llama 3.2 3B) counts SFT, the control, GRPO and every greedy and sampled
evaluation with every sequence at ``PROMPT_TOKENS + max_completion_length`` tokens (an upper bound)
on the public sizes of GSM8K and MATH (:data:`SPLIT_SIZES`). GPU hours are a PROJECTION: the
FLOPs at :data:`MFU` of :data:`PEAK_TFLOPS`. The measured side (step time, memory) comes from
:mod:`rlntp.paper_shapes`, on the machine named in the file; the H200 runs committed under
``results/paper`` are cited where they exist.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rlntp.config import REPO
from rlntp.experiments import chapters
from rlntp.flops import FLOP_FORMULA, mean_step_flops, rl_iter_flops_full_width, train_flops
from rlntp.params import resolve
from rlntp.results import atomic_write_text, cpu_model

GPU = "H100 SXM / H200"
PEAK_TFLOPS = 989.4  # dense bf16, the datasheet's figure for both
MFU = 0.40  # assumed fraction of the peak
SPLIT_SIZES = {"gsm8k": (7473, 1319), "math": (7500, 5000)}  # (train, test), the public splits
COSTS_JSON = REPO / "results" / "paper_shapes" / "paper_costs.json"
H200 = REPO / "results" / "paper"


def _gpt_flops(name: str, cfg: Any) -> tuple[float, str]:
    from rlntp.experiments.runs import new_model

    models, steps, total = {}, {}, 0.0  # one model per shape, one step count per task
    for stage in chapters()[name].stages(cfg):
        for _, task, what in stage.jobs:
            shape = (task.vocab_size, task.seq_len)
            if shape not in models:
                models[shape] = new_model(cfg, task, 0)
            model = models[shape]
            if isinstance(what, int):  # a pre-training run (its seed)
                if task.label not in steps:
                    steps[task.label] = mean_step_flops(cfg, task, model)
                total += cfg.pretrain_iters * steps[task.label]
            else:  # an RL run
                it = rl_iter_flops_full_width(cfg, task, model)
                total += (cfg.star_rounds * cfg.star_samples / cfg.rl_batch * it
                          if what.method == "star" else cfg.rl_iters * it)
    return total, ("pre-training steps at their forwarded widths + every RL iteration at full "
                   "response width (upper bound); evaluations not counted")


LLAMA_3B_PARAMS = 3_212_749_824  # meta-llama/Llama-3.2-3B, its tied head counted once


def llm_sequence_flops(tokens: int, n: int = LLAMA_3B_PARAMS, layers: int | None = None,
                       width: int | None = None) -> float:
    """FLOPs of training on one sequence of ``tokens`` tokens (forward and backward; a forward
    alone is a third) through a Llama of ``n`` parameters (default: Llama 3.2 3B's shapes)."""
    from rlntp.paper_shapes import LLAMA_3B

    return train_flops(n, layers or LLAMA_3B["num_hidden_layers"], width or LLAMA_3B["hidden_size"],
                       1, tokens)


def llm_sequences(cfg: Any) -> dict[str, tuple[float, float]]:
    """Chapter 5's preset ``cfg`` per part (``sft``, ``grpo``, ``control``, ``evaluations``):
    the sequences it runs, every dataset and seed, on the public split sizes
    (:data:`SPLIT_SIZES`), and what one costs in trained sequences (an evaluation's forward: 1/3;
    GRPO's: its generation plus ``num_iterations`` updates)."""
    weight = {"sft": 1.0, "grpo": 1 / 3 + cfg.num_iterations, "control": 1.0, "evaluations": 1 / 3}
    seqs = dict.fromkeys(weight, 0.0)
    for dataset in cfg.datasets:
        n_train, n_test = SPLIT_SIZES[dataset]
        evals = (len(cfg.sft_checkpoints) * n_test * (1 + cfg.sample_k)
                 + 2 * (cfg.rl_iters // cfg.eval_every + 1) * n_test)
        for part, n in (("sft", cfg.sft_epochs * n_train), ("grpo", cfg.branch_sequences),
                        ("control", cfg.branch_sequences), ("evaluations", evals)):
            seqs[part] += len(cfg.seeds) * n
    return {part: (seqs[part], weight[part]) for part in weight}


def llm_flops(cfg: Any) -> tuple[float, str]:
    """FLOPs of chapter 5's preset ``cfg`` (:func:`llm_sequences`, every sequence
    ``PROMPT_TOKENS + max_completion_length`` tokens) and how they were counted."""
    from rlntp.paper_shapes import PROMPT_TOKENS

    t = PROMPT_TOKENS + cfg.max_completion_length
    total = sum(n * w for n, w in llm_sequences(cfg).values()) * llm_sequence_flops(t)
    return total, (f"Llama 3.2 3B ({LLAMA_3B_PARAMS / 1e9:.2f}B parameters, tied head counted "
                   f"once), every sequence {t} tokens (upper bound); SFT, GRPO, control and every "
                   f"evaluation on GSM8K and MATH's public splits {SPLIT_SIZES}")


def preset_flops(name: str) -> tuple[float | None, str]:
    """FLOPs of chapter ``name``'s full ``paper`` preset and how they were counted."""
    cfg = resolve(chapters()[name].config, preset="paper", device="cpu")
    if name == "03_linear_theory":
        return None, "linear models on the CPU (the chapter runs in minutes there): no GPU needed"
    if name == "05_pretrained_lm":
        return llm_flops(cfg)
    return _gpt_flops(name, cfg)


def h200(name: str) -> str | None:
    """What ``results/paper`` measured on an H200 for chapter ``name`` (1 also covers 2), or None."""
    src = {"02_parity_rl": "01_parity_pretraining"}.get(name, name)
    try:
        b = json.loads((H200 / src / "config.json").read_text())["benchmark"]
    except (OSError, ValueError, KeyError):
        return None
    s = b["PROJECTION_paper_preset_s"]
    hours = s.get({"01_parity_pretraining": "chapter1_s", "02_parity_rl": "chapter2_s"}.get(
        name, "total_s")) / 3600
    gib = b["gpu_memory_pretrain"]["max_allocated_gib"]
    same = " (chapter 1's run)" if src != name else ""
    return f"{b['pretrain_it_per_s']:.1f} it/s, {gib:.2f} GiB{same}; {hours:.1f} GPU-h at those rates"


def costs(logs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per chapter: parameters, preset FLOPs, step memory and time (from ``logs``), projected
    GPU hours."""
    out = {}
    for name, log in logs.items():
        flops, how = preset_flops(name)
        sh = log["shapes"]
        out[name] = {
            "params": sh.get("params_real_model", sh.get("params", sh.get("params_per_model"))),
            "flops": flops, "flops_how": how, "step": log["step"], "shapes": sh,
            "PROJECTION_gpu_hours": None if flops is None else
            round(flops / (MFU * PEAK_TFLOPS * 1e12) / 3600, 2)}
    return out


def write_costs(path: Path, logs: dict[str, dict[str, Any]]) -> Path:
    """Write :func:`costs` of ``logs`` (:func:`rlntp.paper_shapes.chapter_log`) to ``path`` as
    JSON, stamped with the commit, machine and date it was measured on."""
    from rlntp.results import git_commit, git_modified

    info = {"commit": (git_commit() or "unknown") + ("+modified" if git_modified() else ""),
            "machine": f"{cpu_model()}, 1 torch thread", "date": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                                time.gmtime()),
            "gpu": GPU, "peak_tflops": PEAK_TFLOPS, "mfu": MFU, "flop_formula": FLOP_FORMULA,
            "chapters": costs(logs)}
    atomic_write_text(path, json.dumps(info, indent=1, default=str) + "\n")
    return path


def _mib(x: float) -> str:
    return f"{x / 1024:.1f} GiB" if x >= 1024 else f"{x:.0f} MiB"


def _count(x: Any) -> str:
    if isinstance(x, dict):  # per d: the range
        return f"{min(x.values()):,} to {max(x.values()):,} (by d)"
    return f"{x / 1e9:.2f}B" if x >= 1e9 else f"{x / 1e6:,.1f}M" if x >= 1e6 else f"{x:,}"


def costs_table(path: Path = COSTS_JSON) -> str:
    """The rerun page's table from the committed ``path`` (a sentence when there is none): short
    cells a phone can show, and below it, per chapter, how its FLOPs and step were obtained."""
    try:
        info = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return ("*Not measured in this repository yet: run `make paper-shapes` and commit "
                "`results/paper_shapes/paper_costs.json`.*\n")
    lines = [f"Measured by `make paper-shapes` at commit `{info['commit'][:12]}` on {info['machine']}, "
             f"{info['date']} (a committed file: not rerun when the book builds). GPU hours are a "
             f"**PROJECTION**: the preset's FLOPs at {info['mfu']:.0%} of the {info['gpu']} dense bf16 "
             f"peak of {info['peak_tflops']} TFLOP/s, not a measurement. Where an H200 run was "
             "committed (`results/paper/README.md`), its own projection from its measured rates "
             "stands beside it: far above the FLOP count for the small parity model, whose steps are "
             "bound by kernel launches and host work, not FLOPs.",
             "", "| Chapter | Model | Parameters | FLOPs, full preset | CPU step at the preset's batch "
             "| PROJECTED GPU-h | H200, measured |", "|---|---|---|---|---|---|---|"]
    notes = [f"FLOPs: {info['flop_formula']}."]
    for name, c in info["chapters"].items():
        sh, st = c["shapes"], c["step"]
        model = sh.get("model", "").split(" (")[0] + (" (a stand-in: below)" if "depth" in sh else "")
        model += f", {sh['heads']} heads" if "heads" in sh else ""
        model += f", seq {sh['seq_len']}, vocab {sh['vocab']:,}"
        extrapolated = " (extrapolated)" if st["how"].startswith("extrapolated") else ""
        step = f"{st['step_s']:.2f} s, {_mib(st['max_rss_mib'])}{extrapolated}"
        hours = "–" if c["PROJECTION_gpu_hours"] is None else f"{c['PROJECTION_gpu_hours']:,.2f}"
        flops = "–" if c["flops"] is None else f"{c['flops']:.2e}"
        cells = [f"{{doc}}`{name[:2]} </chapters/{name}>`", model, _count(c["params"]), flops, step,
                 hours, h200(name) or "not run"]
        lines.append("| " + " | ".join(str(x).replace("|", "\\|") for x in cells) + " |")
        note = (f"Chapter {name[:2]}: FLOPs: {c['flops_how']}; step: {st['how']} (its time, and the "
                "max RSS of a fresh process)")
        if "depth" in sh:  # chapter 5's stand-in: what the real model's state alone needs
            note += (f". {sh['model']}: depth {sh['depth']}; the real model's weights, gradients "
                     f"and two Adam states in bf16 alone: {sh['params_real_model'] * 8 / 2**30:.0f} GiB "
                     "(counted, not measured)")
        notes.append(note + ".")
    return "\n".join(lines + [""] + [f"- {n}" for n in notes]) + "\n"
