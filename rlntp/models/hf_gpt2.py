"""Convert our :class:`~rlntp.models.gpt.GPT` into a Hugging Face ``GPT2LMHeadModel``.

The conversion is exact (logits agree to float32 round-off; see ``tests/test_hf_gpt2.py``), which
shows that ``GPT`` is GPT-2 up to two choices: the exact-erf GELU (GPT-2 uses the tanh approximation,
``gelu_new``) and an output head that is not tied to the token embedding. ``transformers`` is
imported only when the function is called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from rlntp.models.gpt import GPT

if TYPE_CHECKING:
    from transformers import GPT2LMHeadModel


def to_hf_gpt2(model: GPT, attn_implementation: str = "sdpa") -> GPT2LMHeadModel:
    """A freshly built ``GPT2LMHeadModel`` (no download) holding ``model``'s weights.

    Mapping (ours -> Hugging Face; HF's ``Conv1D`` stores ``weight`` as (in, out), the transpose of
    ``nn.Linear``, hence ``.T``)::

        tok_emb, pos_emb                -> transformer.wte, transformer.wpe
        blocks[i].ln1, ln2              -> transformer.h[i].ln_1, ln_2
        blocks[i].attn.qkv  (Linear)    -> transformer.h[i].attn.c_attn  (Conv1D; q|k|v rows, same order)
        blocks[i].attn.proj (Linear)    -> transformer.h[i].attn.c_proj  (Conv1D)
        blocks[i].mlp[0], mlp[2]        -> transformer.h[i].mlp.c_fc, c_proj  (Conv1D)
        ln_f                            -> transformer.ln_f
        head (no bias, untied)          -> lm_head  (tie_word_embeddings=False)

    Dropouts are 0, so the copy is meant for inference; it is returned in ``model``'s train/eval
    mode, on its device and in its dtype.
    """
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = model.cfg
    hf = GPT2LMHeadModel(GPT2Config(
        vocab_size=cfg.vocab_size, n_positions=cfg.block_size, n_embd=cfg.n_embd, n_layer=cfg.n_layer,
        n_head=cfg.n_head, activation_function="gelu", layer_norm_epsilon=1e-5, tie_word_embeddings=False,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=None, eos_token_id=None,
        attn_implementation=attn_implementation,
    ))
    ours = model.state_dict()
    sd = {"transformer.wte.weight": ours["tok_emb.weight"], "transformer.wpe.weight": ours["pos_emb.weight"],
          "transformer.ln_f.weight": ours["ln_f.weight"], "transformer.ln_f.bias": ours["ln_f.bias"],
          "lm_head.weight": ours["head.weight"]}
    names = {"ln1": "ln_1", "ln2": "ln_2", "attn.qkv": "attn.c_attn", "attn.proj": "attn.c_proj",
             "mlp.0": "mlp.c_fc", "mlp.2": "mlp.c_proj"}
    for i in range(cfg.n_layer):
        for src, dst in names.items():
            w = ours[f"blocks.{i}.{src}.weight"]
            sd[f"transformer.h.{i}.{dst}.weight"] = w if src.startswith("ln") else w.T
            sd[f"transformer.h.{i}.{dst}.bias"] = ours[f"blocks.{i}.{src}.bias"]
    with torch.no_grad():
        hf.load_state_dict({k: v.contiguous() for k, v in sd.items()}, strict=True)
    p = next(model.parameters())
    return hf.to(device=p.device, dtype=p.dtype).train(model.training)
