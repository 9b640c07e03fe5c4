"""What sits on the task layer: the resumable RL loop and its methods, notebook parameters, and
safe checkpoint loading (the Task protocol itself: ``test_task_protocol.py``)."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest
import torch

from rlntp.config import ConfigError
from rlntp.data.parity import ParityTask
from rlntp.evaluate import evaluate
from rlntp.experiments.parity_pretrain import ParityPretrainConfig
from rlntp.experiments.parity_rl import ParityRLConfig
from rlntp.experiments.runs import new_model
from rlntp.params import parameters_cell, resolve, resolve_notebook
from rlntp.results import CheckpointError, UnsafeCheckpoint, cached, load_checkpoint_file
from rlntp.rl.train import METHODS, train_rl

TASK = ParityTask(4, 0.5)


def _cfg(**params) -> ParityRLConfig:
    """A tiny one-layer RL config on the CPU that never stops early."""
    base = dict(device="cpu", n_layer=1, n_head=2, n_embd=16, rl_iters=4, prompts_per_iter=4,
                num_generations=4, learning_rate=1e-2, eval_every=1, stop_after=0, star_rounds=3,
                star_samples=32, star_epochs=1, star_batch_size=8, star_learning_rate=1e-2)
    return resolve(ParityRLConfig, preset="smoke", **{**base, **params})


# 1. train_rl resumes --------------------------------------------------------------------------


class Interrupt(Exception):
    pass


def _train_rl(run_dir: Path, cfg: ParityRLConfig, method: str, crash_after: int | None = None):
    """One RL run from a fresh model; ``evaluate`` raises once it has run ``crash_after`` times."""
    model = new_model(cfg, TASK, seed=0)
    x = TASK.sample_prompts(16, torch.Generator().manual_seed(123))
    calls = []

    def ev(m: torch.nn.Module, it: int) -> dict:
        if crash_after is not None and len(calls) == crash_after:
            raise Interrupt
        calls.append(it)
        return evaluate(m, TASK, x, seed=1000 + it, return_lengths=True)

    hist = train_rl(model, TASK, cfg, method=method, reward="e2e", temperature=1.5, seed=0,
                    branch_step=0, run_dir=run_dir, evaluate=ev, n_eval=len(x), desc=method)
    return model, hist, calls


@pytest.mark.parametrize(("method", "beta"), [("grpo", 0.0), ("grpo", 0.04), ("star", 0.0)])
def test_train_rl_resumes_with_the_same_numbers(tmp_path: Path, method: str, beta: float) -> None:
    cfg = _cfg(beta=beta, num_iterations=2 if beta else 1)
    straight_model, straight, calls = _train_rl(tmp_path / "a", cfg, method)
    n = cfg.rl_iters if method != "star" else cfg.star_rounds
    assert calls == list(range(n + 1))  # eval_every=1: every iteration, iteration 0 first
    assert [it for it, _, _ in straight] == list(range(n + 1))
    with pytest.raises(Interrupt):  # killed in the 3rd evaluation: state saved after iteration 1
        _train_rl(tmp_path / "b", cfg, method, crash_after=2)
    resumed_model, resumed, calls = _train_rl(tmp_path / "b", cfg, method)
    assert calls == list(range(2, n + 1))  # it went on from iteration 2, not from the start
    assert resumed == straight
    a, b = straight_model.state_dict(), resumed_model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# 2. every method learns -----------------------------------------------------------------------


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_changes_the_parameters_in_one_iteration(tmp_path: Path, method: str) -> None:
    assert set(METHODS) == {"grpo", "reinforce", "star"}
    cfg = _cfg(rl_iters=1, star_rounds=1, prompts_per_iter=8, star_samples=64)
    model = new_model(cfg, TASK, seed=0)  # fresh: at tau = 1.5 some responses are rewarded
    before = {k: v.clone() for k, v in model.state_dict().items()}
    hist = train_rl(model, TASK, cfg, method=method, reward="e2e", temperature=1.5, seed=0,
                    branch_step=0, run_dir=tmp_path, evaluate=lambda m, it: {"acc_greedy": 0.0},
                    n_eval=16)
    it, seqs, m = hist[-1]
    assert it == 1 and len(hist) == 2
    assert seqs == (cfg.star_samples if method == "star" else cfg.rl_batch)
    assert 0 < m["reward_mean"] < 1  # rewards with variance
    if method == "star":
        assert m["kept_frac"] == m["reward_mean"] > 0  # something was kept to fine-tune on
    assert torch.isfinite(torch.tensor(m["loss"]))
    after = model.state_dict()
    assert any(not torch.equal(after[k], v) for k, v in before.items())


@pytest.mark.parametrize(("acc", "stops"), [(0.96, False), (0.99, True)])
def test_the_rl_loop_stops_only_on_the_interval_rule_the_claims_call_learned(
        tmp_path: Path, acc: float, stops: bool) -> None:
    """0.96 on 640 prompts has a 95% interval starting at 0.944 (not learned): the run goes on;
    0.99 starts at 0.980: it stops after ``stop_after`` evaluations in a row."""
    cfg = _cfg(rl_iters=6, stop_after=2)
    hist = train_rl(new_model(cfg, TASK, seed=0), TASK, cfg, method="grpo", reward="e2e",
                    temperature=1.5, seed=0, branch_step=0, run_dir=tmp_path,
                    evaluate=lambda m, it: {"acc_greedy": acc}, n_eval=640)
    assert [h[0] for h in hist] == ([0, 1, 2] if stops else list(range(7)))
    assert hist[-1][2]["stopped"] == float(stops)


# 3. notebook parameters -----------------------------------------------------------------------


def test_resolve_notebook_rejects_a_misspelt_parameter() -> None:
    ns = {name: None for name in ParityPretrainConfig.field_names()}
    ns["itres"] = 10
    with pytest.raises(ConfigError, match="itres"):
        resolve_notebook(ParityPretrainConfig, ns)


def test_resolve_notebook_ignores_what_is_not_a_parameter() -> None:
    import math

    class Helper:
        pass

    def helper() -> None:
        pass

    ns = {name: None for name in ParityPretrainConfig.field_names()}
    ns |= {"preset": "smoke", "d": 6, "seeds": [0, 1], "math": math, "torch": torch,
           "helper": helper, "Helper": Helper, "_private": 3, "_": "last output",
           "In": ["", "x = 1"], "Out": {1: 2}, "CONSTANT": 7}
    cfg = resolve_notebook(ParityPretrainConfig, ns)
    assert cfg == resolve(ParityPretrainConfig, preset="smoke", d=6, seeds=[0, 1])


def test_parameters_cell_resolves_to_the_cpu_preset() -> None:
    ns: dict = {}
    exec(parameters_cell(ParityRLConfig), ns)  # noqa: S102 - our own generated source
    del ns["__builtins__"]
    assert set(ns) == set(ParityRLConfig.field_names())
    assert resolve_notebook(ParityRLConfig, ns) == resolve(ParityRLConfig)


# 4. checkpoints are loaded safely -------------------------------------------------------------


class RunsACommand:
    """Unpickling this calls os.system (what a planted checkpoint could do)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def _plant(path: Path, marker: Path) -> Path:
    torch.save({"model": {"w": torch.zeros(2)}, "x": RunsACommand(f"touch {shlex.quote(str(marker))}")},
               path)
    return path


def _truncated(path: Path) -> Path:
    torch.save({"w": torch.arange(1000.0), "history": [(0, {"acc": 0.5})]}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def test_load_checkpoint_file_refuses_a_pickle_that_runs_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = _plant(tmp_path / "state.pt", marker)
    with pytest.raises(UnsafeCheckpoint, match="refused") as e:
        load_checkpoint_file(path)
    assert str(path) in str(e.value)
    assert not marker.exists()  # the command did not run
    RunsACommand(f"touch {shlex.quote(str(marker))}").__reduce__()[0](f"touch {shlex.quote(str(marker))}")
    assert marker.exists()  # the plant is real: what it would run on an unsafe load does run


def test_load_checkpoint_file_names_a_truncated_file(tmp_path: Path) -> None:
    path = _truncated(tmp_path / "ckpt_000010.pt")
    with pytest.raises(CheckpointError) as e:
        load_checkpoint_file(path)
    assert not isinstance(e.value, UnsafeCheckpoint)
    assert str(path) in str(e.value)


def test_cached_recomputes_a_truncated_file_but_refuses_an_unsafe_one(tmp_path: Path) -> None:
    calls = []

    def compute() -> dict:
        calls.append(1)
        return {"v": torch.ones(3)}

    path = _truncated(tmp_path / "run.pt")
    assert torch.equal(cached(path, compute)["v"], torch.ones(3))
    assert len(calls) == 1
    assert torch.equal(load_checkpoint_file(path)["v"], torch.ones(3))  # rewritten whole
    assert torch.equal(cached(path, compute)["v"], torch.ones(3)) and len(calls) == 1

    marker = tmp_path / "pwned"
    unsafe = _plant(tmp_path / "planted.pt", marker)
    with pytest.raises(UnsafeCheckpoint, match=re.escape(str(unsafe))):
        cached(unsafe, compute)
    assert len(calls) == 1 and not marker.exists()
    assert unsafe.exists()  # left for a person to look at, not overwritten
