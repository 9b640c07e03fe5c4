"""Issue 24, item 0: every chapter runs at ``smoke`` with each single method, reward, temperature,
branch, data set and p_cot subset, so that no cell indexes runs its parameters left out; item 3:
chapter 5 reads (and its stamp hashes) only the data sets it runs."""

import shutil
from pathlib import Path

import papermill as pm
import pytest
from conftest import copy_book

from rlntp import book
from rlntp.data.math_text import data_root

REPO = Path(__file__).resolve().parent.parent
SUBSETS = [
    ("01_parity_pretraining", {"p_cot_values": [0.1]}),
    ("01_parity_pretraining", {"p_cot_values": [0.5]}),
    *[("02_parity_rl", {"methods": [m]}) for m in ("grpo", "reinforce", "star")],
    *[("02_parity_rl", {"rewards": [r]}) for r in ("e2e", "cot")],
    ("02_parity_rl", {"temperatures": [1.5]}),
    ("02_parity_rl", {"branch_steps": [30], "rl_branch": 30}),
    ("02_parity_rl", {"seeds": [1]}),
    *[("03_linear_theory", {"rl_method": [m]}) for m in ("star", "reinforce")],
    *[("04_multiplication", {"methods": [m]}) for m in ("reinforce", "star")],
    ("04_multiplication", {"branch_steps": [40]}),
    ("05_pretrained_lm", {"datasets": ["math"]}),
    ("05_pretrained_lm", {"sft_checkpoints": [2]}),
]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "params"), SUBSETS, ids=[f"{n[:2]}-{p}" for n, p in SUBSETS])
def test_every_chapter_runs_with_each_single_subset(tmp_path, name, params):
    pm.execute_notebook(str(REPO / "notebooks" / f"{name}.ipynb"), str(tmp_path / "out.ipynb"),
                        parameters={"preset": "smoke", "out_dir": str(tmp_path), **params},
                        kernel_name="python3", progress_bar=False, cwd=str(REPO))
    assert (tmp_path / "metrics.csv").is_file() and (tmp_path / "config.json").is_file()


# item 3 ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_chapter5_reads_only_the_datasets_it_runs(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(data_root() / "gsm8k", data / "gsm8k")  # no math/: only gsm8k is asked for
    book_dir = copy_book(tmp_path / "book")
    params = {"data_dir": str(data), "datasets": ["gsm8k"]}
    assert book.run_notebook("05_pretrained_lm", "smoke", book_dir, tmp_path / "R", params) == "ran"
    (data / "math").mkdir()  # data the chapter does not read: no rerun
    (data / "math" / "sample_train.jsonl").write_text("{}\n")
    assert book.run_notebook("05_pretrained_lm", "smoke", book_dir, tmp_path / "R", params) == "skipped"
