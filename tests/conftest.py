import shutil
from pathlib import Path

import torch

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parent.parent


def copy_book(dst: Path) -> Path:
    """A copy of the book's sources (no build, no executed chapters) at ``dst``."""
    shutil.copytree(REPO / "book", dst, ignore=shutil.ignore_patterns("_build", "*.ipynb", ".*.stamp"))
    return dst
