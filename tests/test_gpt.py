import pytest
import torch

from rlntp.models.gpt import GPT, GPTConfig, generate


@pytest.fixture
def model():
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=3, block_size=20, n_layer=2, n_head=2, n_embd=32))


def test_logits_shape_and_causality(model):
    x = torch.randint(0, 3, (4, 12))
    logits, _ = model(x)
    assert logits.shape == (4, 12, 3)
    y = x.clone()
    y[:, 8:] = (y[:, 8:] + 1) % 3  # changing later tokens leaves earlier logits unchanged
    logits2, _ = model(y)
    assert torch.allclose(logits[:, :8], logits2[:, :8], atol=1e-6)


def test_kv_cache_matches_full_forward(model):
    x = torch.randint(0, 3, (3, 15))
    full, _ = model(x)
    step, cache = model(x[:, :10])
    parts = [step]
    for t in range(10, 15):
        step, cache = model(x[:, t:t + 1], cache)
        parts.append(step)
    assert torch.allclose(full, torch.cat(parts, 1), atol=1e-5)


def test_too_long_sequence_is_rejected(model):
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(1, 21, dtype=torch.long))


def test_generate_greedy_and_sampled(model):
    prompts = torch.randint(0, 2, (16, 8))
    r1, l1 = generate(model, prompts, 9, 0.0, eos=2)
    r2, l2 = generate(model, prompts, 9, 0.0, eos=2)
    assert torch.equal(r1, r2) and r1.shape == (16, 9)
    g = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    s1, m1 = generate(model, prompts, 9, 1.0, eos=2, generator=g())
    s2, m2 = generate(model, prompts, 9, 1.0, eos=2, generator=g())
    assert torch.equal(s1, s2) and torch.equal(m1, m2)
    for resp, n in zip(s1, m1, strict=True):  # EOS padding after the first EOS; length = tokens before it
        if n < 9:
            assert resp[n] == 2 and (resp[n:] == 2).all() and (resp[:n] != 2).all()
    assert model.training


def test_generate_greedy_follows_argmax(model):
    prompts = torch.randint(0, 2, (4, 8))
    resp, lengths = generate(model, prompts, 1, 0.0, eos=2)
    logits, _ = model(prompts)
    assert torch.equal(resp[:, 0], logits[:, -1].argmax(-1))


def test_bf16_matmuls_keep_weights_logits_gradients_and_the_cache_in_float32(model):
    """bf16 products (autocast) in the blocks only: the same weights give logits close to the
    float32 model's, and everything a training step or the KV cache keeps stays float32."""
    bf16 = GPT(GPTConfig(vocab_size=3, block_size=20, n_layer=2, n_head=2, n_embd=32, bf16_matmuls=True))
    bf16.load_state_dict(model.state_dict())
    x = torch.randint(0, 3, (4, 12))
    logits, cache = bf16(x)
    assert logits.dtype == torch.float32 and all(t.dtype == torch.float32 for kv in cache for t in kv)
    ref, _ = model(x)
    assert (logits - ref).abs().max() < 0.05 and not torch.equal(logits, ref)  # bf16 ran
    logits.square().mean().backward()
    assert all(p.dtype == p.grad.dtype == torch.float32 for p in bf16.parameters())
    out, lengths = generate(bf16, x[:, :5], max_new_tokens=6, temperature=0.0, eos=2)
    assert out.shape == (4, 6) and lengths.max() <= 6
