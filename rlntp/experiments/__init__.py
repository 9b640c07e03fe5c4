"""Experiments: one module per chapter, each with its config dataclass, its ``stages(cfg)`` (the
independent runs, see :class:`rlntp.parallel.Stage`) and its driver ``run_all``.

:data:`CHAPTERS` maps a chapter (its notebook's name) to its module and config class, for the
runner and the cluster launcher.
"""

from __future__ import annotations

import importlib
from typing import Any

CHAPTERS: dict[str, tuple[str, str]] = {
    "01_parity_pretraining": ("parity_pretrain", "ParityPretrainConfig"),
    "02_parity_rl": ("parity_rl", "ParityRLConfig"),
    "03_linear_theory": ("linear_theory", "LinearTheoryConfig"),
    "04_multiplication": ("multiplication", "MultiplicationConfig"),
    "05_gsm8k_math": ("gsm8k_math", "GSM8KMathConfig"),
}


def chapter(name: str) -> tuple[Any, type]:
    """The module and the config class of chapter ``name``."""
    module_name, config = CHAPTERS[name]
    module = importlib.import_module(f"rlntp.experiments.{module_name}")
    return module, getattr(module, config)
