"""The benchmark scripts: FLOP counting, the TRL baseline's task plumbing, results.json's schema
(``run.py --tiny``), the README block, and ``gpu_paper.py --tiny`` on the CPU."""

import csv
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

from rlntp.data.parity import ParityTask
from rlntp.models.gpt import GPT, GPTConfig
from rlntp.params import resolve
from rlntp.results import METRIC_COLUMNS
from rlntp.train import ntp_loss

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "benchmarks"


def load(name: str) -> ModuleType:
    """A module of benchmarks/ (they import each other as siblings, like scripts do)."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_model() -> GPT:
    return GPT(GPTConfig(vocab_size=3, block_size=8, n_layer=1, n_head=1, n_embd=4))


def test_flops_match_a_hand_count():
    flops = load("flops")
    model = tiny_model()
    # per block: ln1 2*4, qkv 4*12+12, proj 4*4+4, ln2 2*4, mlp 4*16+16 and 16*4+4; ln_f 2*4; head 4*3
    block = 8 + 60 + 20 + 8 + 80 + 68
    assert flops.nonembedding_params(model) == block + 8 + 12 == 264
    # 6 N B T + 12 L C B T^2 with B=2, T=5
    assert flops.train_flops(264, 1, 4, 2, 5) == 6 * 264 * 10 + 12 * 4 * 2 * 25


def test_forward_shapes_count_what_the_model_was_given():
    """With groups, ntp_loss forwards each group cut to its own width: two calls, counted apart."""
    flops = load("flops")
    model = tiny_model()
    tokens = torch.randint(0, 3, (3, 8))
    mask = torch.zeros(3, 7, dtype=torch.bool)
    mask[0, :6] = True      # a long row: targets up to column 5 -> width 6
    mask[1:, :2] = True     # short rows: width 2
    groups = torch.tensor([True, False, False])
    with flops.ForwardShapes(model) as shapes:
        ntp_loss(model, tokens, mask, groups)
    assert shapes.shapes == [(1, 6), (2, 2)]
    n = flops.nonembedding_params(model)
    assert shapes.train_flops() == flops.train_flops(n, 1, 4, 1, 6) + flops.train_flops(n, 1, 4, 2, 2)


def test_gemm_gflops_is_positive_and_restores_threads():
    flops = load("flops")
    before = torch.get_num_threads()
    assert flops.gemm_gflops(threads=1, n=64, min_s=0.01) > 0
    assert flops.gemm_gflops(threads=1, n=64, min_s=0.01, dtype=torch.bfloat16) > 0
    assert torch.get_num_threads() == before


def test_trl_baseline_sees_the_same_tokens_and_rewards():
    """TRL's side: prompt text tokenizes to our ids, and its reward is the task's e2e reward."""
    trl_baseline = load("trl_baseline")
    task = ParityTask(4, 0.5)
    prompts = torch.tensor([[1, 0, 1, 1], [0, 0, 0, 1], [1, 1, 0, 0]])
    tok = trl_baseline.parity_tokenizer()
    assert tok(text=trl_baseline.prompt_text(prompts))["input_ids"] == prompts.tolist()
    reward = trl_baseline.make_reward(task)
    # right short answer + EOS; right long chain + EOS; truncated (no EOS within 5 tokens)
    completions = [[1, 2], [0, 0, 0, 1, 2], [0, 1, 0, 1, 0]]
    assert reward(trl_baseline.prompt_text(prompts), ["", "", ""], completions) == [1.0, 1.0, 0.0]


def test_run_tiny_writes_the_results_schema(tmp_path):
    out = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, str(BENCH / "run.py"), "--tiny", "--out", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())
    assert {"schema", "mode", "machine", "date", "commit", "threads", "flop_formula", "summary", "goals",
            "entries"} <= set(results)
    summary = results["summary"]
    assert set(summary["ntp_step_gflops"]) == set(load("run").ntp_chapters()) >= {
        "01_parity_pretraining", "02_parity_rl", "04_multiplication"}  # a new chapter is measured too
    for name, ch in load("run").ntp_chapters().items():  # the floor: runs x iters x FLOPs / peak
        en, cfg = results["entries"][f"ntp_step_gflops/{name}"], resolve(ch.config, "smoke", device="cpu")
        assert en["precision"] == ("bfloat16" if cfg.bf16_matmuls else "float32")  # its own peak
        peak_all = summary["gemm_peak_gflops"][en["precision"]][str(results["machine"]["cores"])]
        assert en["pretrain_runs"] == len(ch.stages(cfg)[0].jobs) >= 1
        floor = en["pretrain_runs"] * cfg.pretrain_iters * en["flops_per_step"] / (peak_all * 1e9)
        assert abs(en["pretrain_floor_s"] - floor) <= 0.5 + 1e-3 * floor
    assert summary["rl_iter_s"]["ours"] > 0 and summary["rl_iter_s"]["trl"] > 0
    assert summary["sampling_speedup_vs_hf_generate"] > 0
    for name, entry in results["entries"].items():
        stamp = {"value", "machine", "date", "commit", "loadavg_start", "loadavg_end", "other_load"}
        assert stamp <= set(entry), name
        assert {"cpu", "cores", "torch_threads"} <= set(entry["machine"])
    assert [g["goal"] for g in results["goals"]][:3] == [
        "ntp_fraction_of_peak (chapter 1)", "rl_iter_speedup_vs_trl", "time_to_95_s"]
    assert all(g["met"] in (True, False, None) for g in results["goals"])
    assert "| metric | value | goal |" in proc.stdout


def test_readme_block_is_rewritten_in_place(tmp_path):
    run = load("run")
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n\n{run.START}\nold table\n{run.END}\n\nafter\n")
    results = {"command": "benchmarks/run.py", "mode": "full", "date": "2026-01-01T00:00:00", "commit": "abc",
               "threads": 1, "machine": {"cpu": "CPU", "cores": 2, "torch": "2"},
               "entries": {}, "summary": run.summarize({}), "goals": run.goals(run.summarize({}))}
    run.rewrite_readme(results, readme)
    text = readme.read_text()
    assert "old table" not in text and text.startswith("# x\n\nbefore\n") and text.endswith("\n\nafter\n")
    assert text.count(run.START) == 1 and "| metric | value | goal |" in text


@pytest.mark.parametrize("flag", ["--tiny"])
def test_gpu_paper_tiny_runs_on_cpu(tmp_path, flag):
    out = tmp_path / "gpu"
    proc = subprocess.run([sys.executable, str(BENCH / "gpu_paper.py"), flag, "--budget-s", "20",
                           "--probe-steps", "2", "--out", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["01_parity_pretraining", "04_multiplication"]
    for chapter, experiments in (("01_parity_pretraining", {"parity_pretrain", "parity_rl"}),
                                 ("04_multiplication", {"multiplication"})):
        assert f"measured vs projected ({chapter}" in proc.stdout
        with open(out / chapter / "metrics.csv") as f:
            rows = list(csv.DictReader(f))
        assert tuple(rows[0]) == METRIC_COLUMNS
        assert {r["phase"] for r in rows} == {"pretrain", "rl"}
        assert {r["experiment"] for r in rows} == experiments
        metrics = {(r["phase"], r["metric"]) for r in rows}
        # what train_ntp and train_rl log, the loss and the rollout statistics included
        assert {("pretrain", "loss"), ("pretrain", "acc_greedy"), ("rl", "reward_mean"),
                ("rl", "loss")} <= metrics
        info = json.loads((out / chapter / "config.json").read_text())
        keys = {"device", "finished_at", "git_commit", "wall_time_s", "torch_version", "benchmark"}
        assert keys <= set(info)
        bench = info["benchmark"]
        assert bench["status"] == "done" and bench["chapter"] == chapter
        assert bench["PROJECTION_paper_preset_s"]["total_s"] > 0
        assert bench["pretrain_it_per_s"] > 0 and bench["projected_pretrain_it_per_s"] > 0
        assert set(bench["precision_probe"]) == {"fp32", "bf16"}  # on the CPU: no TF32
        # no checkpoints left
        assert sorted(p.name for p in (out / chapter).iterdir()) == ["config.json", "metrics.csv"]
    assert json.loads((out / "04_multiplication" / "config.json").read_text())["config"]["digits"] == 2
    # never papermill or trl (not available on the GPU machine)
    script = str(BENCH / "gpu_paper.py")
    check = (f"import runpy, sys\nsys.path.insert(0, {str(BENCH)!r})\nsys.argv = ['x', '--help']\n"
             f"try:\n    runpy.run_path({script!r}, "
             "run_name='__main__')\nexcept SystemExit:\n    pass\n"
             "assert 'papermill' not in sys.modules and 'trl' not in sys.modules, 'imported'")
    proc = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_gpu_paper_tiny_runs_chapter_5_on_cpu(tmp_path):
    """Chapter 5 through its own SFT and GRPO code on a random tiny Llama, offline, with the
    generated records (the tests' RLNTP_DATA_DIR, never ../shared): timings, projection, rows."""
    out = tmp_path / "gpu"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, str(BENCH / "gpu_paper.py"), "--tiny", "--chapters", "5",
                           "--budget-s", "20", "--out", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=REPO, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    chapter = "05_pretrained_lm"
    assert "measured vs projected (05_pretrained_lm" in proc.stdout and "PROJECTION" in proc.stdout
    assert sorted(p.name for p in (out / chapter).iterdir()) == ["config.json", "metrics.csv"]
    with open(out / chapter / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == METRIC_COLUMNS and {r["experiment"] for r in rows} == {"gsm8k"}
    assert {("sft", "loss"), ("sft", "acc_greedy"), ("rl", "reward_mean"), ("rl", "len_mean_rollout")
            } <= {(r["phase"], r["metric"]) for r in rows}
    info = json.loads((out / chapter / "config.json").read_text())
    assert {"device", "finished_at", "git_commit", "wall_time_s", "torch_version",
            "transformers_version", "trl_version", "benchmark"} <= set(info)
    assert info["config"]["preset"] == "smoke" and info["config"]["datasets"] == ["gsm8k"]
    bench = info["benchmark"]
    assert bench["status"] == "done" and bench["chapter"] == chapter
    assert bench["shape"]["n_layer"] == 2 and bench["sft_steps_done"] == 3 and bench["rl_iters_done"] == 3
    assert bench["sft_step_s"] > 0 and bench["rl_iter_s"] > 0 and bench["eval_batch_s"] > 0
    assert bench["projected_sft_step_s"] > 0 and bench["projected_rl_iter_s"] > 0
    assert len(bench["rl_len_mean_rollout"]) == 3  # the generated lengths, recorded
    assert all(0 < x <= 8 for x in bench["rl_len_mean_rollout"])
    projected = bench["PROJECTION_paper_preset_s"]
    assert set(projected) == {"sft_s", "grpo_s", "control_s", "evaluations_s", "total_s"}
    assert projected["total_s"] == sum(v for k, v in projected.items() if k != "total_s") > 0
    assert bench["PROJECTION_paper_preset_gpu_hours_at_assumed_mfu_of_bf16_peak"] > 0


def test_gpu_paper_probe_only_tiny(tmp_path):
    out = tmp_path / "probe"
    proc = subprocess.run([sys.executable, str(BENCH / "gpu_paper.py"), "--tiny", "--probe-only",
                           "--probe-warmup", "1", "--probe-steps", "2", "--out", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for chapter in ("01_parity_pretraining", "04_multiplication"):
        info = json.loads((out / chapter / "precision_probe.json").read_text())
        probe = info["precision_probe"]
        assert set(probe) == {"fp32", "bf16", "bf16_no_cudnn_attention", "bf16_weight_cache",
                              "bf16_fixed_shapes"}  # on the CPU: no TF32
        assert all(v["step_s"] > 0 for v in probe.values())
        # autocast without its weight cache trains like fp32 (the cache kept the first step's weights)
        assert abs(probe["bf16"]["loss"] - probe["fp32"]["loss"]) < 0.02
