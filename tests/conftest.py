import os
import shutil
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def llm_data(tmp_path_factory):
    """Chapter 5's data for every test (notebook kernels too, through the environment): a few
    records the tests write (``rlntp.data.sample_records``), never ``../shared``, which a user's
    clone lacks."""
    from rlntp.data.sample_records import write_sample_data

    root = write_sample_data(tmp_path_factory.mktemp("data"))
    before = os.environ.get("RLNTP_DATA_DIR")
    os.environ["RLNTP_DATA_DIR"] = str(root)
    yield root
    if before is None:
        os.environ.pop("RLNTP_DATA_DIR")
    else:
        os.environ["RLNTP_DATA_DIR"] = before


def copy_book(dst: Path) -> Path:
    """A copy of the book's sources (no build, no executed chapters) at ``dst``."""
    shutil.copytree(REPO / "book", dst, ignore=shutil.ignore_patterns("_build", "*.ipynb", ".*.stamp"))
    return dst


@pytest.fixture(scope="session")
def smoke_book(tmp_path_factory):
    """The whole book built once at the smoke preset (every chapter executed, then the HTML, Sphinx
    warnings as errors), shared by the book and browser tests: (book_dir, runs/smoke, index.html)."""
    from rlntp.book import build_book

    root = tmp_path_factory.mktemp("smoke")
    book_dir = copy_book(root / "book")
    index = build_book("smoke", book_dir, root / "runs", strict=True)  # warnings are errors
    return book_dir, root / "runs" / "smoke", index
