import math

import pytest
import torch

from rlntp.config import NTPPart
from rlntp.data.parity import VOCAB_SIZE, ParityTask
from rlntp.models.gpt import GPT, GPTConfig
from rlntp.train import checkpoint_path, lr_factor, ntp_loss, train_ntp


def small_model(task: ParityTask) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(VOCAB_SIZE, task.seq_len, n_layer=1, n_head=2, n_embd=16))


def test_ntp_loss_matches_a_direct_formula():
    task = ParityTask(5, 0.5)
    model = small_model(task)
    b = task.sample_batch(8, torch.Generator().manual_seed(0))
    loss = ntp_loss(model, b.tokens, b.target_mask)
    logits, _ = model(b.tokens[:, :-1])
    logp = torch.log_softmax(logits, -1)
    total, count = 0.0, 0
    for i in range(8):
        for t in range(task.seq_len - 1):
            if b.target_mask[i, t]:
                total -= logp[i, t, b.tokens[i, t + 1]].item()
                count += 1
    assert math.isclose(loss.item(), total / count, rel_tol=1e-5)


class Interrupt(Exception):
    pass


def _train(tmp_path, iters, stop_at=None):
    task = ParityTask(5, 0.5)
    model = small_model(task)
    cfg = NTPPart(pretrain_iters=iters, pretrain_batch_size=16, pretrain_learning_rate=1e-2,
                  pretrain_eval_every=2, ckpt_every=4, warmup_steps=1)

    def evaluate(m, step):
        if step == stop_at:
            raise Interrupt
        return {"w": sum(p.sum().item() for p in m.parameters())}

    return model, train_ntp(model, task, cfg, seed=0, run_dir=tmp_path, evaluate=evaluate)


def test_parameters_change_and_checkpoints_are_written(tmp_path):
    task = ParityTask(5, 0.5)
    before = [p.detach().clone() for p in small_model(task).parameters()]
    model, hist = _train(tmp_path, 8)
    after = list(model.parameters())
    assert all(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert [s for s, _ in hist] == [0, 2, 4, 6, 8]
    assert "loss" in hist[1][1]
    assert checkpoint_path(tmp_path, 4).exists() and checkpoint_path(tmp_path, 8).exists()


def test_resume_reproduces_an_uninterrupted_run(tmp_path):
    _, straight = _train(tmp_path / "a", 8)
    with pytest.raises(Interrupt):  # killed at step 6, after the step-4 checkpoint
        _train(tmp_path / "b", 8, stop_at=6)
    _, resumed = _train(tmp_path / "b", 8)
    assert resumed == straight


def test_lr_schedule_warms_up_then_decays_to_the_floor():
    assert lr_factor(0, 100, 10, 0.1) == 0.1
    assert lr_factor(9, 100, 10, 0.1) == 1.0
    assert lr_factor(10, 100, 10, 0.1) == 1.0
    assert abs(lr_factor(100, 100, 10, 0.1) - 0.1) < 1e-12
    assert lr_factor(50, 100, 10, 0.1) > lr_factor(80, 100, 10, 0.1)


def test_grouped_loss_equals_the_plain_loss_and_its_gradient():
    """``ntp_loss(..., groups)`` (long and short rows apart, each cut after its last target) is a
    speed trick: the same loss and gradient as the plain masked loss, to float rounding."""
    from rlntp.data.multiplication import MultiplicationTask

    for task in (ParityTask(6, 0.3), MultiplicationTask(3, 0.25)):
        torch.manual_seed(0)
        model = GPT(GPTConfig(task.vocab_size, task.seq_len, n_layer=2, n_head=2, n_embd=32))
        b = task.sample_batch(64, torch.Generator().manual_seed(1))
        assert b.is_long.any() and (~b.is_long).any()
        grads = []
        for groups in (None, b.is_long):
            model.zero_grad()
            loss = ntp_loss(model, b.tokens, b.target_mask, groups)
            loss.backward()
            grads.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
        (plain, g_plain), (grouped, g_grouped) = grads
        assert torch.allclose(plain, grouped, atol=1e-6)
        assert all(torch.allclose(a, c, atol=1e-6) for a, c in zip(g_plain, g_grouped, strict=True))
