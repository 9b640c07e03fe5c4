"""Every chapter's ``paper`` preset at its true shapes, only its counts cut, on a CPU.

    python -m rlntp.paper_shapes --out runs/paper_shapes            # `make paper-shapes`
    python -m rlntp.paper_shapes --out /tmp/ps --only 03_linear_theory --no-costs

:data:`CUTS` holds, per chapter, the only parameters changed from the ``paper`` preset: counts
(iterations, batch sizes, evaluation sizes, seeds, branch steps, rounds, sample counts, and subsets
of the preset's lists). :func:`cut_config` checks each against the chapter's config: a name that
is no parameter, a value that is not a smaller count (or a subset of the preset's list), or one of
the chapter's :data:`SHAPES` fields, stops with one message naming it. Chapter 5 alone changes
one more thing, said in its log: Llama 3.2 3B cannot be downloaded here, nor trained on a 24 GiB
machine, so a random ``LlamaForCausalLM`` with its width, heads, vocabulary and context, but
:data:`STAND_IN_LAYERS` of its 28 layers, stands in (:func:`stand_in_llama`).

Per chapter it writes ``OUT/<chapter>.log``: the shapes, the parameter count, one training step's
time and the peak memory at the preset's batch (max RSS of a fresh process, measured, or
extrapolated linearly from two measured batch sizes, said so), and whether the notebook executed
through papermill at the cut config. Unless ``--no-costs``, it also writes
``OUT/paper_costs.json`` from every chapter's ``OUT/<chapter>.json`` there (this run's or an
earlier one's; :mod:`rlntp.paper_costs`: FLOPs and projected GPU hours of the full preset, stamped
with commit and machine), which may be committed as ``results/paper_shapes/paper_costs.json`` for the book's
rerun page.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from rlntp.config import REPO, ConfigError, display_path
from rlntp.experiments import chapters
from rlntp.params import resolve

CUTS: dict[str, dict[str, Any]] = {
    "01_parity_pretraining": dict(
        seeds=(0,), p_cot_values=(0.25,), leap_p_cot_values=(0.25,), pretrain_iters=4,
        pretrain_batch_size=16, pretrain_eval_every=2, ckpt_every=2, eval_size=16),
    "02_parity_rl": dict(
        seeds=(0,), pretrain_iters=4, pretrain_batch_size=16, pretrain_eval_every=2, ckpt_every=2,
        eval_size=16, branch_steps=(2, 4), rl_branch=4, rl_iters=2, eval_every=1,
        prompts_per_iter=2, num_generations=2, star_rounds=1, star_samples=16, star_epochs=1,
        star_batch_size=8),
    "03_linear_theory": dict(
        seeds=(0,), sgd_steps_per_bit=1, long_demos_per_bit=1, batch_size=16,
        pretrain_budget=1024, rl_rounds=2, samples_per_round=64, rl_long_per_round=1,
        star_steps=2, eval_size=64),
    "04_multiplication": dict(
        seeds=(0,), pretrain_iters=2, pretrain_batch_size=4, pretrain_eval_every=2, ckpt_every=2,
        eval_size=4, branch_steps=(2,), rl_iters=1, eval_every=1, prompts_per_iter=2,
        num_generations=2),
    "05_pretrained_lm": dict(
        datasets=("gsm8k",), train_size=4, test_size=2, sft_epochs=1, sft_checkpoints=(1,),
        sft_batch_size=2, rl_iters=1, prompts_per_iter=1, num_generations=2, eval_every=1,
        eval_batch_size=2, sample_k=1),
}
SHAPES: dict[str, tuple[str, ...]] = {  # the fields that fix a chapter's shapes: never cut
    "01_parity_pretraining": ("d", "n_layer", "n_embd", "n_head", "chain_step", "leap_step"),
    "02_parity_rl": ("d", "n_layer", "n_embd", "n_head"),
    "03_linear_theory": ("d", "d_values"),
    "04_multiplication": ("digits", "n_layer", "n_embd", "n_head"),
    "05_pretrained_lm": ("model", "dtype", "max_completion_length"),
}
RUNTIME = dict(device="cpu", workers=1)  # where it runs, not what: every chapter on one CPU core
ALL = ("train_size", "test_size")  # counts whose 0 means "all" (any positive number is a cut)
STAND_IN_LAYERS = 1
LLAMA_3B = dict(  # meta-llama/Llama-3.2-3B's config.json (its public model card)
    vocab_size=128256, hidden_size=3072, intermediate_size=8192, num_hidden_layers=28,
    num_attention_heads=24, num_key_value_heads=8, head_dim=128, max_position_embeddings=131072,
    rope_theta=500000.0, rms_norm_eps=1e-5, tie_word_embeddings=True,
    rope_scaling=dict(factor=32.0, high_freq_factor=4.0, low_freq_factor=1.0,
                      original_max_position_embeddings=8192, rope_type="llama3"))
PROMPT_TOKENS = 128  # chapter 5's step probe: prompt tokens before the completion (ours)
MEMORY = "max RSS of a fresh process (resource.getrusage ru_maxrss): Python, torch, model and step"


def _is_cut(paper: Any, value: Any, name: str) -> bool:
    if isinstance(value, bool) or isinstance(paper, bool):
        return False
    if isinstance(paper, int) and isinstance(value, int):
        return 1 <= value <= paper or (name in ALL and paper == 0 and value >= 1)
    if isinstance(paper, tuple) and isinstance(value, tuple) and 0 < len(value) <= len(paper):
        ints = all(isinstance(v, int) for v in (*paper, *value))
        return all(v in paper or (ints and 0 <= v <= max(paper)) for v in value)
    return False


def cut_config(name: str, **runtime: Any) -> Any:
    """Chapter ``name``'s ``paper`` config with :data:`CUTS` applied (and ``runtime``: device,
    workers, out_dir), after checking that each cut is a parameter, not a shape, and a count no
    larger than the preset's (else ConfigError naming it)."""
    config = chapters()[name].config
    paper = resolve(config, preset="paper")
    fields = set(config.field_names())
    for key, value in CUTS[name].items():
        where = f"paper_shapes.CUTS[{name!r}][{key!r}]"
        if key not in fields:
            raise ConfigError(f"{where} is not a parameter of {config.__name__}")
        if key in SHAPES[name] or not _is_cut(getattr(paper, key), value, key):
            raise ConfigError(f"{where}={value!r} is not a cut count of the paper preset's "
                              f"{getattr(paper, key)!r}: only counts may be cut, shapes stay")
    return resolve(config, preset="paper", **CUTS[name], **{**RUNTIME, **runtime})


def stand_in_llama(n_layer: int = STAND_IN_LAYERS, vocab_size: int = LLAMA_3B["vocab_size"]
                   ) -> Any:
    """A random ``LlamaForCausalLM`` with Llama 3.2 3B's hyperparameters but ``n_layer`` layers,
    in bf16 (seeded). On the meta device (no memory) inside ``torch.device("meta")``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(**{**LLAMA_3B, "num_hidden_layers": n_layer, "vocab_size": vocab_size},
                      bos_token_id=1, eos_token_id=2, pad_token_id=2)
    return LlamaForCausalLM(cfg).to(torch.bfloat16)


def save_stand_in(folder: Path, model: Any = None) -> Path:
    """``model`` (default :func:`stand_in_llama`) saved with SmolLM2's tokenizer (ids < 49,152 of
    the 128,256 the stand-in's embedding has; a sampled id above decodes to nothing) as a local
    model folder."""
    from rlntp.llm.models import load_tokenizer

    (stand_in_llama() if model is None else model).save_pretrained(folder)
    load_tokenizer("smollm2-135m").save_pretrained(folder)
    return folder


def stand_in_inputs(folder: Path, model: Any = None, sizes: dict[str, int] | None = None
                    ) -> tuple[dict[str, str], str]:
    """Chapter 5's parameters for a run without downloads, its files written under ``folder``:
    ``model``, :func:`save_stand_in` of ``model``, and, when there is no data folder
    (:func:`rlntp.data.math_text.data_root`), ``data_dir``, generated GSM8K-format records
    (:func:`rlntp.data.sample_records.write_sample_data`, ``sizes`` per split); and where the data
    comes from."""
    from rlntp.data.math_text import data_root
    from rlntp.data.sample_records import write_sample_data

    params = {"model": str(save_stand_in(folder / "llama-3.2-3b-shaped", model))}
    try:
        return params, display_path(data_root())
    except FileNotFoundError:  # a user's clone: GSM8K-format records of our own
        params["data_dir"] = str(write_sample_data(folder / "data", sizes))
        return params, "generated GSM8K-format records (rlntp.data.sample_records): no data folder"


def gpt_task(cfg: Any) -> Any:
    """The task of a GPT chapter's config (parity: at p_cot 0.25; the shapes do not depend on it)."""
    return cfg.task(0.25) if callable(cfg.task) else cfg.task


def gpt_shapes(cfg: Any) -> dict[str, Any]:
    from rlntp.experiments.runs import new_model
    from rlntp.flops import nonembedding_params

    task = gpt_task(cfg)
    model = new_model(cfg, task, 0)
    return {"model": f"GPT {cfg.n_layer} x {cfg.n_embd}", "heads": cfg.n_head,
            "seq_len": task.seq_len, "vocab": task.vocab_size, "task": task.label,
            "params": sum(p.numel() for p in model.parameters()),
            "params_nonembedding": nonembedding_params(model)}


def shapes(name: str, cfg: Any) -> dict[str, Any]:
    """What fixes the chapter's cost: task size, model, heads, sequence length, vocabulary, and
    parameter count (chapter 5: of the stand-in and of the real model)."""
    if name == "03_linear_theory":
        from rlntp.models.linear import VOCAB_SIZE, init_weights

        return {"model": "linear autoregressive (one weight tensor per model)", "d": cfg.d,
                "d_values": cfg.d_values, "seq_len": 2 * max(cfg.d_values) + 1, "vocab": VOCAB_SIZE,
                "params_per_model": {d: init_weights(1, d).numel() for d in (cfg.d, *cfg.d_values)}}
    if name == "05_pretrained_lm":
        with torch.device("meta"):
            full, cut = stand_in_llama(LLAMA_3B["num_hidden_layers"]), stand_in_llama()
        return {"model": f"LlamaForCausalLM {STAND_IN_LAYERS} x {LLAMA_3B['hidden_size']} "
                         f"(stand-in for {resolve(type(cfg), preset='paper').model}, "
                         f"{LLAMA_3B['num_hidden_layers']} x "
                         f"{LLAMA_3B['hidden_size']})",
                "heads": f"{LLAMA_3B['num_attention_heads']} (kv {LLAMA_3B['num_key_value_heads']})",
                "seq_len": f"{cfg.max_completion_length} completion tokens (+ prompt)",
                "vocab": LLAMA_3B["vocab_size"], "dtype": cfg.dtype,
                "tokenizer": "SmolLM2's (49,152 ids of the embedding's 128,256; Llama 3.2's "
                             "tokenizer cannot be downloaded here)",
                "params": sum(p.numel() for p in cut.parameters()),
                "params_real_model": sum(p.numel() for p in full.parameters()),
                "depth": f"cut from {LLAMA_3B['num_hidden_layers']} to {STAND_IN_LAYERS}: memory "
                         "(3.2B parameters x (bf16 weights, gradients, 2 Adam states) do not fit "
                         "a 24 GiB CPU machine) and the weights cannot be downloaded here"}
    return gpt_shapes(cfg)


def _step(name: str, batch: int) -> Callable[[], None]:
    """One training step of chapter ``name`` at the paper preset's shapes, on ``batch`` sequences."""
    cfg = resolve(chapters()[name].config, preset="paper", **RUNTIME)
    if name == "03_linear_theory":
        from rlntp.models.linear import init_weights, linear_ntp_loss, sample_mixture, sgd_step

        d, gen = max(cfg.d_values), torch.Generator().manual_seed(0)
        W, p = init_weights(len(cfg.p_cot_values), d), torch.tensor(cfg.p_cot_values)
        return lambda: sgd_step(W, linear_ntp_loss(W, sample_mixture(p, batch, d, gen)), 0.1)
    if name == "05_pretrained_lm":
        model = stand_in_llama()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
        ids = torch.randint(0, LLAMA_3B["vocab_size"],
                            (batch, PROMPT_TOKENS + cfg.max_completion_length))

        def llm_step() -> None:
            opt.zero_grad(set_to_none=True)
            model(input_ids=ids, labels=ids).loss.backward()
            opt.step()
        return llm_step
    from rlntp.experiments.runs import new_model
    from rlntp.train import make_optimizer, ntp_loss, optimizer_step

    task = gpt_task(cfg)
    model, gen = new_model(cfg, task, 0), torch.Generator().manual_seed(0)
    opt = make_optimizer(model, 1e-4, cfg)
    b = task.sample_batch(batch, gen)
    groups = b.is_long if cfg.group_by_length else None
    return lambda: optimizer_step(model, opt, ntp_loss(model, b.tokens, b.target_mask, groups),
                                  cfg.max_grad_norm)


def _probe(name: str, batch: int) -> dict[str, float]:
    """In a fresh process: one warm-up step, then one timed; the process's max RSS."""
    torch.set_num_threads(1)
    step = _step(name, batch)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    step()
    t0 = time.perf_counter()
    step()
    return {"batch": batch, "step_s": round(time.perf_counter() - t0, 3),
            "rss_before_step_mib": round(before),
            "max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def probe(name: str, batch: int) -> dict[str, float]:
    """:func:`_probe` in a spawned process (so ru_maxrss is this step's alone)."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_probe, (name, batch))


def preset_batch(name: str) -> int:
    """The batch of one training step of the paper preset (pre-training, SGD or SFT)."""
    cfg = resolve(chapters()[name].config, preset="paper")
    return {"03_linear_theory": getattr(cfg, "batch_size", 0),
            "05_pretrained_lm": getattr(cfg, "sft_batch_size", 0)}.get(
        name, getattr(cfg, "pretrain_batch_size", 0))


PROBE_BATCHES = {"04_multiplication": (4, 8), "05_pretrained_lm": (1, 2)}  # too slow at 256 / 64


def step_cost(name: str) -> dict[str, Any]:
    """One step's time and peak memory at the preset's batch: measured, or extrapolated from the
    two batches of :data:`PROBE_BATCHES` (said so): memory linearly through both, time in
    proportion to the larger (a line through two small, noisy timings magnifies their noise)."""
    want = preset_batch(name)
    if name not in PROBE_BATCHES:
        return {**probe(name, want), "how": f"measured at the preset's batch {want}"}
    b1, b2 = PROBE_BATCHES[name]
    m1, m2 = probe(name, b1), probe(name, b2)
    rss = m1["max_rss_mib"] + (m2["max_rss_mib"] - m1["max_rss_mib"]) * (want - b1) / (b2 - b1)
    return {"batch": want, "step_s": round(m2["step_s"] * want / b2, 2), "max_rss_mib": round(rss),
            "how": f"extrapolated to the preset's batch {want}: memory linearly from batches {b1} "
                   f"and {b2}, time in proportion to batch {b2}'s", "measured": [m1, m2]}


def run_notebook(name: str, cfg_params: dict[str, Any], out_dir: Path) -> tuple[bool, str]:
    """Execute chapter ``name``'s notebook through papermill at the ``paper`` preset with
    ``cfg_params``; (executed, what happened)."""
    import papermill as pm

    params = {k: list(v) if isinstance(v, tuple) else v for k, v in cfg_params.items()}
    t0 = time.perf_counter()
    try:
        pm.execute_notebook(str(REPO / "notebooks" / f"{name}.ipynb"), str(out_dir / f"{name}.ipynb"),
                            parameters={"preset": "paper", **params, "out_dir": str(out_dir / name)},
                            kernel_name="python3", cwd=str(REPO), progress_bar=False)
    except Exception as e:  # the log says what broke; the next chapter still runs
        why = f"{e.ename}: {e.evalue}" if isinstance(e, pm.PapermillExecutionError) else repr(e)
        return False, f"FAILED after {time.perf_counter() - t0:.0f} s: {why}"
    return True, f"executed in {time.perf_counter() - t0:.0f} s"


def chapter_log(name: str, out: Path, notebook: bool = True) -> dict[str, Any]:
    """Shapes, one step's cost, and the notebook at the cut config; written to ``OUT/NAME.log``."""
    params = {**CUTS[name], **RUNTIME}
    with tempfile.TemporaryDirectory() as tmp:
        cut_config(name)  # the check of the cuts
        log = {"chapter": name, "cuts": CUTS[name], "runtime": RUNTIME}
        if name == "05_pretrained_lm":
            stand_in, log["data"] = stand_in_inputs(Path(tmp))
            params |= stand_in
        cfg = resolve(chapters()[name].config, preset="paper", **params)
        log |= {"shapes": shapes(name, cfg), "step": step_cost(name), "memory": MEMORY}
        log["notebook"] = run_notebook(name, params, out)[1] if notebook else "not run (--no-notebooks)"
    lines = [f"{name}: paper preset, shapes kept, counts cut", *(f"  {k}: {v}" for k, v in log.items())]
    (out / f"{name}.log").write_text("\n".join(lines) + "\n")
    (out / f"{name}.json").write_text(json.dumps(log, indent=1) + "\n")
    print("\n".join(lines), flush=True)
    return log


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "paper_shapes")
    ap.add_argument("--only", nargs="+", choices=tuple(CUTS), metavar="CHAPTER")
    ap.add_argument("--no-notebooks", action="store_true", help="shapes and step costs only")
    ap.add_argument("--no-costs", action="store_true", help="skip paper_costs.json")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    missing = sorted(set(chapters()) - set(CUTS))
    if missing:
        raise SystemExit(f"paper_shapes.CUTS has no entry for chapter(s) {', '.join(missing)}")
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.only or CUTS:
        try:
            chapter_log(name, args.out, not args.no_notebooks)
        except Exception:  # recorded; the next chapter still runs
            (args.out / f"{name}.json").unlink(missing_ok=True)
            (args.out / f"{name}.log").write_text(f"{name}: FAILED\n{traceback.format_exc()}")
            print(f"{name}: FAILED\n{traceback.format_exc()}", flush=True)
    if not args.no_costs:  # from every chapter's log in OUT, this run's or an earlier one's
        from rlntp.paper_costs import write_costs

        logs = {n: json.loads((args.out / f"{n}.json").read_text()) for n in CUTS
                if (args.out / f"{n}.json").is_file()}
        print(f"wrote {write_costs(args.out / 'paper_costs.json', logs)}")


if __name__ == "__main__":
    main()
