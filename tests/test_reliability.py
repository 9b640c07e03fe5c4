"""Issue 11 (reliability and safety): stale runner skips and cache keys, no network at smoke,
corrupt resume states, errors that name what is wrong, file modes, raw parameter text."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from conftest import copy_book

from rlntp import book, stamps
from rlntp.config import ConfigError
from rlntp.data.math_text import DataError, data_hash, data_root, load_problems
from rlntp.experiments import pretrained_lm as lm
from rlntp.experiments.pretrained_lm import PretrainedLMConfig, runs_root
from rlntp.params import resolve, seed_arg
from rlntp.results import atomic_write_bytes, atomic_write_text, current_umask

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data"  # the full data sets, beside a developer's checkout only
CHAPTER = "03_linear_theory"  # the cheapest chapter at smoke (seconds)


def _unwritable(tmp_path: Path) -> Path:
    """A folder that cannot be created, even by root: its parent is a file."""
    (tmp_path / "a_file").write_text("x")
    return tmp_path / "a_file" / "runs"


def _sample_data(root: Path) -> Path:
    """A copy of the GSM8K sample files (what the smoke preset reads) in ``root``."""
    (root / "gsm8k").mkdir(parents=True)
    for name in ("sample_train.jsonl", "sample_test.jsonl"):
        shutil.copy(data_root() / "gsm8k" / name, root / "gsm8k" / name)
    return root


# 1. runner skips and cache keys ------------------------------------------------------------------

@pytest.fixture(scope="module")
def ran_once(tmp_path_factory):
    """Chapter 3 at smoke through the runner, once, in a copy of the book."""
    root = tmp_path_factory.mktemp("runner")
    book_dir = copy_book(root / "book")
    assert book.run_notebook(CHAPTER, "smoke", book_dir, root / "X") == "ran"
    return book_dir, root


@pytest.mark.slow
def test_runner_skips_only_while_the_outputs_are_there(ran_once):
    book_dir, root = ran_once
    assert book.run_notebook(CHAPTER, "smoke", book_dir, root / "X") == "skipped"
    shutil.rmtree(root / "X" / "smoke" / CHAPTER)  # the issue: this was "skipped"
    assert book.run_notebook(CHAPTER, "smoke", book_dir, root / "X") == "ran"
    assert (root / "X" / "smoke" / CHAPTER / "metrics.csv").exists()
    assert book.run_notebook(CHAPTER, "smoke", book_dir, root / "X") == "skipped"


@pytest.mark.slow
def test_runner_reruns_for_another_runs_dir_and_for_changed_outputs(ran_once):
    book_dir, root = ran_once
    assert book.run_notebook(CHAPTER, "smoke", book_dir, root / "Y") == "ran"  # was "skipped"
    out = root / "Y" / "smoke" / CHAPTER
    assert (out / "metrics.csv").exists() and (out / "config.json").exists()
    with open(out / "metrics.csv", "a") as f:  # outputs no longer those of the stamped run
        f.write("x\n")
    assert book.run_notebook(CHAPTER, "smoke", book_dir, root / "Y") == "ran"


def test_runner_stamp_covers_data_environment_and_out_dir(tmp_path, monkeypatch):
    data = _sample_data(tmp_path / "data")
    params = {"data_dir": str(data), "datasets": ["gsm8k"]}
    name = "05_pretrained_lm"
    before = stamps.inputs_hash(name, "smoke", params, tmp_path / "runs")
    assert stamps.inputs_hash(name, "smoke", params, tmp_path / "runs") == before
    assert stamps.inputs_hash(name, "smoke", params, tmp_path / "other") != before
    with open(data / "gsm8k" / "sample_train.jsonl", "a") as f:
        f.write(json.dumps({"question": "1+1?", "answer": "2\n#### 2"}) + "\n")
    edited = stamps.inputs_hash(name, "smoke", params, tmp_path / "runs")
    assert edited != before  # the data the chapter reads changed
    env = stamps.environment()
    assert any(p.startswith("torch==") for p in env["packages"])
    monkeypatch.setattr(stamps, "environment", lambda: {**env, "packages": ["torch==0.0"]})
    assert stamps.inputs_hash(name, "smoke", params, tmp_path / "runs") != edited


def test_runner_stops_in_one_line_on_an_unwritable_runs_dir(tmp_path):
    bad = _unwritable(tmp_path)
    copy_book(tmp_path / "book")
    out = subprocess.run([sys.executable, "-m", "rlntp.book", "--preset", "smoke", "--only",
                          CHAPTER, "--no-html", "--book-dir", str(tmp_path / "book"),
                          "--runs-dir", str(bad)], capture_output=True, text=True, cwd=REPO)
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--runs-dir" in lines[0] and str(bad) in lines[0], out.stderr


def test_chapter5_cache_key_is_the_data_content_not_its_path(tmp_path):
    a = _sample_data(tmp_path / "a")
    b = _sample_data(tmp_path / "b")
    cfg_a = resolve(PretrainedLMConfig, preset="smoke", out_dir=str(tmp_path / "out"), data_dir=str(a),
                    datasets=["gsm8k"])
    cfg_b = resolve(PretrainedLMConfig, preset="smoke", out_dir=str(tmp_path / "out"), data_dir=str(b),
                    datasets=["gsm8k"])
    assert runs_root(cfg_a) == runs_root(cfg_b)  # same data, another folder: reused
    assert data_hash("gsm8k", a, sample=True) in runs_root(cfg_a).name
    with open(b / "gsm8k" / "sample_train.jsonl", "a") as f:
        f.write(json.dumps({"question": "1+1?", "answer": "2\n#### 2"}) + "\n")
    assert runs_root(cfg_a) != runs_root(cfg_b)


def _fake_sft(calls: list[int]):
    """A stand-in for chapter 5's SFT: counts its calls, saves tiny checkpoints."""
    from safetensors.torch import save_file

    def fake_sft(cfg, seed, root):
        problems = load_problems(cfg.dataset, "train", data_dir=cfg.data_dir, sample=True)
        calls.append(len(problems))
        for epoch in cfg.sft_checkpoints:
            ckpt = root / f"seed{seed}" / "sft" / f"epoch_{epoch}"
            ckpt.mkdir(parents=True, exist_ok=True)
            (ckpt / "config.json").write_text("{}")
            save_file({"w": torch.zeros(1000)}, str(ckpt / "model.safetensors"))
        return {"losses": {1: float(len(problems))}}

    return fake_sft


def test_chapter5_sft_is_recomputed_when_its_data_changes(tmp_path, monkeypatch):
    data = _sample_data(tmp_path / "data")
    cfg = resolve(PretrainedLMConfig, preset="smoke", out_dir=str(tmp_path / "out"),
                  data_dir=str(data), datasets=["gsm8k"])
    calls = []
    monkeypatch.setattr(lm, "sft_run", _fake_sft(calls))
    assert lm.cached_sft_run(cfg, 0, runs_root(cfg))["losses"] == {1: 64.0}
    assert lm.cached_sft_run(cfg, 0, runs_root(cfg))["losses"] == {1: 64.0}
    assert calls == [64]  # cached
    with open(data / "gsm8k" / "sample_train.jsonl", "a") as f:
        f.write(json.dumps({"question": "1+1?", "answer": "2\n#### 2"}) + "\n")
    assert lm.cached_sft_run(cfg, 0, runs_root(cfg))["losses"] == {1: 65.0}
    assert calls == [64, 65]  # the issue: the old losses were reused


def test_chapter5_sft_is_recomputed_when_a_checkpoint_is_damaged(tmp_path, monkeypatch):
    cfg = resolve(PretrainedLMConfig, preset="smoke", out_dir=str(tmp_path / "out"), datasets=["gsm8k"])
    calls = []
    monkeypatch.setattr(lm, "sft_run", _fake_sft(calls))
    root = runs_root(cfg)
    lm.cached_sft_run(cfg, 0, root)
    weights = root / "seed0" / "sft" / "epoch_2" / "model.safetensors"
    os.truncate(weights, 50)  # `truncate -s 50 model.safetensors`
    with pytest.warns(RuntimeWarning, match=str(weights)):
        lm.cached_sft_run(cfg, 0, root)
    assert len(calls) == 2
    from rlntp.llm.models import check_model_dir

    assert check_model_dir(weights.parent) is None  # written whole again
    lm.cached_sft_run(cfg, 0, root)
    assert len(calls) == 2


# 2. chapter 5 never reaches the network -------------------------------------------------------

def test_hf_libraries_are_offline_and_quiet_from_their_import():
    code = ("import rlntp.llm.models, rlntp.llm.train\n"
            "import huggingface_hub.constants as h, datasets.config as d\n"
            "print(h.HF_HUB_OFFLINE, h.HF_HUB_DISABLE_TELEMETRY, d.HF_HUB_OFFLINE)")
    env = {k: v for k, v in os.environ.items()  # the tests' data folder stays (conftest.llm_data)
           if not k.startswith(("HF_", "RLNTP_")) or k == "RLNTP_DATA_DIR"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env=env, check=True)
    assert out.stdout.split() == ["True", "True", "True"]


def test_hub_access_switches_already_imported_libraries():
    import datasets.config
    import huggingface_hub.constants

    from rlntp.hub import hub_access

    try:
        hub_access(True)
        assert not huggingface_hub.constants.HF_HUB_OFFLINE and os.environ["HF_HUB_OFFLINE"] == "0"
        assert huggingface_hub.constants.HF_HUB_DISABLE_TELEMETRY  # telemetry stays off
    finally:
        hub_access(False)
    assert huggingface_hub.constants.HF_HUB_OFFLINE and datasets.config.HF_HUB_OFFLINE
    assert os.environ["HF_HUB_OFFLINE"] == os.environ["HF_HUB_DISABLE_TELEMETRY"] == "1"


@pytest.mark.parametrize("model", ["smolm2-135m", "./no/such/model", "a/b/c"])
def test_a_model_typo_fails_at_once_naming_model(model):
    t0 = time.time()
    with pytest.raises(ConfigError, match="parameter model="):
        resolve(PretrainedLMConfig, preset="smoke", model=model)
    assert time.time() - t0 < 5


def test_models_that_need_the_hub_are_explicit(tmp_path):
    assert not resolve(PretrainedLMConfig, preset="smoke").uses_hub
    (tmp_path / "config.json").write_text("{}")  # a saved model folder
    assert not resolve(PretrainedLMConfig, preset="smoke", model=str(tmp_path)).uses_hub
    assert resolve(PretrainedLMConfig, preset="smoke", model="meta-llama/Llama-3.2-3B").uses_hub


GUARD = textwrap.dedent('''
    """Run a module as __main__, recording (and refusing) every non-local network attempt."""
    import atexit, ipaddress, json, runpy, socket, sys

    out, attempts = sys.argv[1], []
    atexit.register(lambda: open(out, "w").write(json.dumps(attempts)))

    def local(host):
        if host in (None, "localhost", "") or isinstance(host, bytes):
            return True
        try:
            return ipaddress.ip_address(host.split("%")[0]).is_loopback
        except ValueError:
            return False

    def refuse(what):
        attempts.append(what)
        raise OSError(101, "network is off in this test: " + what)

    real_getaddrinfo, real_connect, real_connect_ex = (
        socket.getaddrinfo, socket.socket.connect, socket.socket.connect_ex)

    def getaddrinfo(host, *args, **kw):
        if not local(host):
            refuse(f"getaddrinfo {host}")
        return real_getaddrinfo(host, *args, **kw)

    def check(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not local(address[0]):
            refuse(f"connect {address}")

    def connect(self, address):
        check(self, address)
        return real_connect(self, address)

    def connect_ex(self, address):
        check(self, address)
        return real_connect_ex(self, address)

    socket.getaddrinfo, socket.socket.connect, socket.socket.connect_ex = (
        getaddrinfo, connect, connect_ex)
    sys.argv = [sys.argv[2], *sys.argv[3:]]
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
''')


def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0


@pytest.mark.slow
def test_chapter5_smoke_runs_without_network(tmp_path):
    """Chapter 5's smoke experiment in a network namespace without network (``unshare -n``,
    where it can be made) and with a socket guard that records every non-local connect() or
    DNS lookup: it succeeds and tries none."""
    guard, record = tmp_path / "guard.py", tmp_path / "attempts.json"
    guard.write_text(GUARD)
    cmd = [sys.executable, str(guard), str(record), "rlntp.experiments.pretrained_lm", "--preset",
           "smoke", "-p", f"out_dir={tmp_path / 'out'}", "-p", 'datasets=["words", "gsm8k"]']
    isolated = _unshare_works()
    if isolated:
        cmd = ["unshare", "-n", *cmd]
    else:
        print("unshare -n is not available here (needs root or user namespaces): socket guard only")
    env = {k: v for k, v in os.environ.items()  # the tests' data folder stays (conftest.llm_data)
           if not k.startswith(("HF_", "RLNTP_")) or k == "RLNTP_DATA_DIR"}
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "out" / "metrics.csv").exists()
    assert json.loads(record.read_text()) == [], "chapter 5 tried to reach the network"


# 5. a corrupt resume state does not block reruns ------------------------------------------------

def _train(run_dir: Path, iters: int = 8):
    from rlntp.config import NTPPart
    from rlntp.data.parity import VOCAB_SIZE, ParityTask
    from rlntp.models.gpt import GPT, GPTConfig
    from rlntp.train import train_ntp

    task = ParityTask(5, 0.5)
    torch.manual_seed(0)
    model = GPT(GPTConfig(VOCAB_SIZE, task.seq_len, n_layer=1, n_head=2, n_embd=16))
    cfg = NTPPart(pretrain_iters=iters, pretrain_batch_size=16, pretrain_learning_rate=1e-2,
                  pretrain_eval_every=2, ckpt_every=4, warmup_steps=1)

    def evaluate(m, step):
        return {"w": sum(p.sum().item() for p in m.parameters())}

    return train_ntp(model, task, cfg, seed=0, run_dir=run_dir, evaluate=evaluate)


def test_a_truncated_state_is_set_aside_and_the_run_restarts(tmp_path):
    straight = _train(tmp_path / "a")
    _train(tmp_path / "b", iters=4)  # a run stopped at step 4 ...
    state = tmp_path / "b" / "state.pt"
    os.truncate(state, 50)  # ... whose resume state was damaged (`truncate -s 50 state.pt`)
    with pytest.warns(RuntimeWarning, match=str(state)):
        again = _train(tmp_path / "b")
    assert again == straight  # the same numbers as an uninterrupted run
    assert (tmp_path / "b" / "state.pt.corrupt").stat().st_size == 50
    assert _train(tmp_path / "b") == straight  # and the new state resumes normally
    assert not list((tmp_path / "b").glob("*.tmp")) and not list((tmp_path / "b").glob(".*"))


def _rl(run_dir: Path, iters: int = 4):
    from rlntp.config import RLLoopPart
    from rlntp.data.parity import VOCAB_SIZE, ParityTask
    from rlntp.models.gpt import GPT, GPTConfig
    from rlntp.rl.train import train_rl

    task = ParityTask(4, 0.5)
    torch.manual_seed(0)
    model = GPT(GPTConfig(VOCAB_SIZE, task.seq_len, n_layer=1, n_head=2, n_embd=16))
    cfg = RLLoopPart(rl_iters=iters, prompts_per_iter=2, num_generations=2, eval_every=2, stop_after=0)

    def evaluate(m, it):
        return {"acc_greedy": 0.0, "w": sum(p.sum().item() for p in m.parameters())}

    return train_rl(model, task, cfg, method="grpo", reward="e2e", temperature=1.0, seed=0,
                    branch_step=0, run_dir=run_dir, evaluate=evaluate, n_eval=16)


def test_a_truncated_rl_state_is_set_aside_as_in_pretraining(tmp_path):
    straight = _rl(tmp_path / "a")
    _rl(tmp_path / "b", iters=2)  # stopped after its first evaluation ...
    state = tmp_path / "b" / "rl_state.pt"
    os.truncate(state, 50)  # ... and its state damaged
    with pytest.warns(RuntimeWarning, match=str(state)):
        again = _rl(tmp_path / "b")
    assert again == straight and (tmp_path / "b" / "rl_state.pt.corrupt").stat().st_size == 50


def test_an_unsafe_state_is_refused_and_kept(tmp_path):
    from rlntp.results import UnsafeCheckpoint

    marker = tmp_path / "pwned"
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"model": {}, "x": _RunsACommand(f"touch {marker}")}, run / "state.pt")
    with pytest.raises(UnsafeCheckpoint, match=str(run / "state.pt")):
        _train(run)
    assert not marker.exists() and (run / "state.pt").exists()


class _RunsACommand:
    def __init__(self, cmd: str):
        self.cmd = cmd

    def __reduce__(self):
        return os.system, (self.cmd,)


# 6. errors that name what is wrong ---------------------------------------------------------------

def test_an_unwritable_out_dir_is_a_config_error_naming_it(tmp_path):
    bad = _unwritable(tmp_path)
    cfg = resolve(PretrainedLMConfig, preset="smoke", out_dir=str(bad))
    with pytest.raises(ConfigError, match=f"out_dir='{bad}'"):
        cfg.prepare()


def _write(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))
    return path


GOOD = json.dumps({"question": "1+1?", "answer": "one and one\n#### 2"})


def test_malformed_json_names_the_file_and_line(tmp_path):
    f = _write(tmp_path / "gsm8k" / "sample_train.jsonl", [GOOD, "", '{"question": "x", "answer'])
    with pytest.raises(DataError, match=f"{f} line 3: not valid JSON"):
        load_problems("gsm8k", "train", data_dir=tmp_path, sample=True)


def test_a_missing_answer_names_file_line_and_field(tmp_path):
    f = _write(tmp_path / "gsm8k" / "sample_train.jsonl", [GOOD, json.dumps({"question": "x"})])
    with pytest.raises(DataError, match=f"{f} line 2: field 'answer' is missing"):
        load_problems("gsm8k", "train", data_dir=tmp_path, sample=True)


def test_a_math_row_without_box_or_answer_is_an_error(tmp_path):
    ok = json.dumps({"problem": "2+2?", "solution": "It is $\\boxed{4}$."})
    f = _write(tmp_path / "math" / "sample_test.jsonl",
               [ok, json.dumps({"problem": "3+3?", "solution": "It is six."})])
    with pytest.raises(DataError, match=f"{f} line 2: the solution has no"):
        load_problems("math", "test", data_dir=tmp_path, sample=True)


def test_an_empty_data_file_is_an_error_naming_it(tmp_path):
    f = _write(tmp_path / "gsm8k" / "sample_test.jsonl", [])
    with pytest.raises(DataError, match=f"{f}: the file has no records"):
        load_problems("gsm8k", "test", data_dir=tmp_path, sample=True)


@pytest.mark.skipif(not SHARED.is_dir(), reason="no ../shared/data beside this checkout (a user's clone)")
def test_the_shared_data_loads_whole():
    assert len(load_problems("math", "train", data_dir=SHARED)) == 7500
    assert len(load_problems("gsm8k", "test", data_dir=SHARED)) == 1319


def test_huge_seeds_are_rejected_cleanly():
    import argparse

    with pytest.raises(argparse.ArgumentTypeError, match="0..4294967295"):
        seed_arg("1" * 25)
    assert seed_arg("7") == 7
    with pytest.raises(ConfigError, match="seeds"):
        resolve(PretrainedLMConfig, preset="smoke", seeds=[10**25])


def test_config_error_renders_as_one_line_in_a_notebook():
    try:
        resolve(PretrainedLMConfig, preset="smoke", p_cot=2.0)
    except ConfigError as e:
        rendered = e._render_traceback_()
    assert rendered == ["ConfigError: parameter p_cot=2.0 is not allowed: a number in [0, 1]"]


@pytest.mark.slow
def test_papermill_shows_the_config_error_last_and_short(tmp_path):
    import papermill as pm

    with pytest.raises(pm.PapermillExecutionError) as err:
        pm.execute_notebook(str(REPO / "notebooks" / f"{CHAPTER}.ipynb"), str(tmp_path / "o.ipynb"),
                            parameters={"preset": "smoke", "out_dir": str(tmp_path), "d": 1},
                            kernel_name="python3", progress_bar=False, cwd=str(REPO))
    lines = [line for line in str(err.value).splitlines() if line.strip("- ")]
    assert lines[-1].startswith("ConfigError: parameter d=1 is not allowed")
    assert len(lines) <= 4, "\n".join(lines)  # was 40 lines of traceback through rlntp


# 7. minor --------------------------------------------------------------------------------------

@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_outputs_get_the_users_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        path = atomic_write_text(tmp_path / "metrics.csv", "a\n")
        atomic_write_bytes(tmp_path / "x.pt", b"x")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    assert (tmp_path / "x.pt").stat().st_mode & 0o777 == 0o666 & ~umask


def test_current_umask_is_the_process_umask():
    old = os.umask(0o027)
    try:
        assert current_umask() == 0o027
    finally:
        os.umask(old)
    assert current_umask() == old


def test_raw_text_parameters_are_read_like_list_ones():
    """``papermill -r p_cot 0.5`` passes text, as ``-r p_cot_values 0.5`` does: both are read."""
    cfg = resolve(PretrainedLMConfig, preset="smoke", p_cot="0.5", rl_iters="3", workers="1",
                  sample_data="true", sft_checkpoints="1")
    assert (cfg.p_cot, cfg.rl_iters, cfg.workers, cfg.sample_data) == (0.5, 3, 1, True)
    assert cfg.sft_checkpoints == (1,)
    for name, text in [("p_cot", "inf"), ("p_cot", "half"), ("rl_iters", "2.5")]:
        with pytest.raises(ConfigError, match=name):
            resolve(PretrainedLMConfig, preset="smoke", **{name: text})


def test_no_socket_use_when_resolving_configs(monkeypatch):
    """Resolving chapter 5's config (what the runner does to hash its data) is local."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network: {args}")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    resolve(PretrainedLMConfig, preset="smoke")
    stamps.inputs_hash("05_pretrained_lm", "smoke", {}, REPO / "runs")
