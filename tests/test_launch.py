"""The submitit launcher: chapter runs as jobs (submitit's local executor: real subprocesses),
resubmission of a killed job, and resource requests checked before anything is submitted."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cloudpickle
import pytest
import torch
from conftest import copy_book

from rlntp.book import launch_runs, run_notebook
from rlntp.config import ConfigError
from rlntp.experiments import parity_pretrain
from rlntp.experiments.runs import pretrain_dir, pretrain_run
from rlntp.launch import Resources, launch
from rlntp.parallel import Stage
from rlntp.params import resolve

REPO = Path(__file__).resolve().parent.parent
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # job functions defined here


@pytest.mark.parametrize(("fields", "name"), [({"gpus": -1}, "gpus"), ({"cpus": 0}, "cpus"),
                                              ({"time_min": 0}, "time_min"), ({"retries": -2}, "retries")])
def test_bad_resources_are_named(fields, name):
    with pytest.raises(ConfigError, match=name):
        Resources(**fields)


def test_resources_from_yaml(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("partition: gpu\ngpus: 1\n")
    assert Resources.from_yaml(good, gpus=2, cpus=None) == Resources(partition="gpu", gpus=2)
    bad = tmp_path / "bad.yaml"
    bad.write_text("partiton: gpu\n")
    with pytest.raises(ConfigError, match="partiton"):
        Resources.from_yaml(bad)


@pytest.mark.parametrize(("flags", "needle"), [(["--gpus", "-1"], "gpus"),
                                               (["--partiton", "gpu"], "--partiton")])
def test_runner_rejects_a_bad_request_before_submitting(tmp_path, flags, needle):
    out = subprocess.run([sys.executable, "-m", "rlntp.book", "--preset", "smoke", "--launcher", "local",
                          "--only", "01_parity_pretraining", "--runs-dir", str(tmp_path), *flags],
                         capture_output=True, text=True, cwd=REPO)
    assert out.returncode != 0 and needle in out.stderr
    assert not list(tmp_path.rglob("*")), "nothing may be written or submitted"


def _kill_after_first_checkpoint(marker: str, cfg, task, seed: int):
    """``pretrain_run`` that, on its first try only, kills its own process (SIGKILL) as soon as
    the run has saved its first resume state: a job lost mid-run."""
    if not os.path.exists(marker):
        Path(marker).touch()
        state = pretrain_dir(cfg, task, seed) / "state.pt"

        def watch():
            while not state.exists():
                time.sleep(0.01)
            os.kill(os.getpid(), signal.SIGKILL)

        threading.Thread(target=watch, daemon=True).start()
    return pretrain_run(cfg, task, seed)


@pytest.mark.slow
def test_a_killed_job_is_resubmitted_and_resumes_to_the_same_result(tmp_path):
    threads = torch.get_num_threads()
    cfg = resolve(parity_pretrain.ParityPretrainConfig, preset="smoke", p_cot_values=[0.5],
                  out_dir=str(tmp_path / "launched"))
    task = cfg.task(0.5)
    marker = tmp_path / "killed-once"
    stage = Stage("pre-training", _kill_after_first_checkpoint, [(str(marker), cfg, task, 0)])
    launch([stage], "local", tmp_path / "jobs", Resources(cpus=threads, retries=1))
    assert marker.exists()  # the first try ran and was killed
    ckpt = pretrain_dir(cfg, task, 0)
    assert (ckpt / "state.pt").exists()
    launched = pretrain_run(cfg, task, 0)  # finished: loaded, not trained again
    direct = pretrain_run(resolve(parity_pretrain.ParityPretrainConfig, preset="smoke",
                                  p_cot_values=[0.5], out_dir=str(tmp_path / "direct")), task, 0)
    assert launched == direct


@pytest.mark.slow
def test_failing_job_gives_up_after_its_retries(tmp_path):
    stage = Stage("always fails", _always_fails, [(1,)])
    with pytest.raises(RuntimeError, match="failed 2 times"):
        launch([stage], "local", tmp_path, Resources(retries=1))


def _always_fails(x: int) -> int:
    raise ValueError(f"no {x}")


@pytest.mark.slow
def test_chapter_1_through_the_local_launcher_equals_the_in_process_run(tmp_path):
    """Chapter 1 at smoke: its runs as submitit jobs (real subprocesses), then the notebook, which
    recomputes nothing; metrics.csv equals the in-process run's byte for byte."""
    name = "01_parity_pretraining"
    book = copy_book(tmp_path / "book")
    run_notebook(name, "smoke", book, tmp_path / "in_process")
    out = tmp_path / "launched" / "smoke" / name
    # the jobs use the thread count a fresh process (like the notebook's kernel) has: results of
    # float sums depend on it
    threads = int(subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
                                 capture_output=True, text=True, check=True).stdout)
    launch_runs(name, "smoke", out, {}, "local", Resources(cpus=threads, parallel=1))
    assert list((out / "jobs").glob("*_log.err")), "job logs go beside the run folders"
    runs = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("*.pt")}
    assert any(p.name == "state.pt" for p in runs)
    run_notebook(name, "smoke", book, tmp_path / "launched")
    assert {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("*.pt")} == runs  # nothing retrained
    in_process = (tmp_path / "in_process" / "smoke" / name / "metrics.csv").read_bytes()
    assert (out / "metrics.csv").read_bytes() == in_process


def test_every_chapter_has_stages_of_picklable_jobs():
    """The runner and the launcher call ``stages(cfg)`` of every chapter."""
    import pickle

    from rlntp.experiments import chapters

    for name, chapter in chapters().items():
        cfg = resolve(chapter.config, preset="smoke")
        for stage in chapter.stages(cfg):
            assert stage.jobs and callable(stage.fn), name
            pickle.dumps((stage.fn, stage.jobs))
            cloudpickle.dumps((stage.fn, stage.jobs[0]))
