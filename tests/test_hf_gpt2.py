"""Our GPT is GPT-2: converted to Hugging Face's ``GPT2LMHeadModel`` it gives the same logits."""

import random
import subprocess
import sys

import pytest
import torch

from rlntp.models.gpt import GPT, GPTConfig
from rlntp.models.hf_gpt2 import to_hf_gpt2

transformers = pytest.importorskip("transformers")

TOL = 1e-5


def random_model(seed: int) -> GPT:
    """A random shape, with every parameter randomised so that biases and LayerNorms matter and the
    logits are O(1) (the default init gives logits of ~0.1, too small to tell GELU variants apart)."""
    rng = random.Random(seed)
    n_head = rng.randint(1, 4)
    cfg = GPTConfig(vocab_size=rng.randint(3, 20), block_size=rng.randint(8, 40), n_layer=rng.randint(1, 3),
                    n_head=n_head, n_embd=rng.choice([e for e in range(16, 65) if e % n_head == 0]))
    torch.manual_seed(seed)
    model = GPT(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 1:  # LayerNorm weights (1) and biases (0)
                p.add_(0.2 * torch.randn_like(p))
            else:
                p.normal_(0.0, p.shape[1] ** -0.5)
    return model


def max_diff(model: GPT, hf, seed: int) -> float:
    g = torch.Generator().manual_seed(seed)
    cfg, worst = model.cfg, 0.0
    for T in (1, cfg.block_size, int(torch.randint(2, cfg.block_size, (1,), generator=g))):
        x = torch.randint(0, cfg.vocab_size, (int(torch.randint(1, 5, (1,), generator=g)), T), generator=g)
        with torch.no_grad():
            ours, theirs = model(x)[0], hf(input_ids=x).logits
        assert ours.shape == theirs.shape == (*x.shape, cfg.vocab_size)
        assert ours.dtype == theirs.dtype == torch.float32
        worst = max(worst, (ours - theirs).abs().max().item())
    return worst


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("seed", range(6))
def test_logits_match_hf_gpt2(seed, attn):
    model = random_model(seed)
    hf = to_hf_gpt2(model, attn_implementation=attn)
    assert not hf.training and hf.config._attn_implementation == attn
    x = torch.randint(0, model.cfg.vocab_size, (2, model.cfg.block_size))
    assert model(x)[0].std() > 0.3  # the comparison below is not between near-zero logits
    diff = max_diff(model, hf, seed)
    print(f"seed={seed} {attn} {model.cfg}: max |diff| = {diff:.2e}")
    assert diff <= TOL


def test_the_tolerance_tells_gelu_from_its_tanh_approximation():
    """GPT-2's own ``gelu_new`` (tanh) would fail the parity test: the activation choice matters."""
    model = random_model(0)
    hf = to_hf_gpt2(model)
    for block in hf.transformer.h:
        block.mlp.act = transformers.activations.ACT2FN["gelu_new"]
    assert max_diff(model, hf, 0) > 10 * TOL


def test_parameter_counts_match():
    for seed in range(6):
        model = random_model(seed)
        hf = to_hf_gpt2(model)
        n_ours = sum(p.numel() for p in model.parameters())
        assert sum(p.numel() for p in hf.parameters()) == n_ours
        assert hf.num_parameters() == n_ours


def assert_untied(hf) -> None:
    assert not hf.config.tie_word_embeddings
    head, wte = hf.lm_head.weight, hf.transformer.wte.weight
    assert head is not wte and head.data_ptr() != wte.data_ptr()
    assert not torch.equal(head, wte)


def test_head_stays_untied_after_construction_tie_weights_and_reloading(tmp_path):
    model = random_model(1)
    hf = to_hf_gpt2(model)
    assert_untied(hf)
    assert torch.equal(hf.lm_head.weight, model.head.weight)
    assert torch.equal(hf.transformer.wte.weight, model.tok_emb.weight)
    hf.tie_weights()  # transformers re-reads the config: still untied
    assert_untied(hf)
    hf.save_pretrained(tmp_path)  # local round trip, nothing from a hub
    reloaded = transformers.GPT2LMHeadModel.from_pretrained(tmp_path).eval()
    assert_untied(reloaded)
    assert torch.equal(reloaded.lm_head.weight, model.head.weight)
    assert max_diff(model, reloaded, 1) <= TOL


def test_the_package_imports_without_transformers():
    code = ("import sys; sys.modules['transformers'] = None; import rlntp.models.hf_gpt2 as m; "
            "assert callable(m.to_hf_gpt2)")
    subprocess.run([sys.executable, "-c", code], check=True)
