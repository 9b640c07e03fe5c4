"""Chapter 5 plumbing: the config, the model cache, greedy generation and the smoke preset."""

import ipaddress
import socket
import time

import pytest
import torch

from rlntp.config import ConfigError
from rlntp.experiments.pretrained_lm import CHAPTER, PretrainedLMConfig, sample_responses
from rlntp.llm import models
from rlntp.llm.models import TINY, load_model, load_tokenizer, smollm2_gguf
from rlntp.llm.train import generate
from rlntp.params import resolve


def test_presets_resolve_and_bad_values_are_named():
    smoke = resolve(PretrainedLMConfig, preset="smoke")
    assert smoke.model == TINY and smoke.dataset == "words"
    cpu = resolve(PretrainedLMConfig, preset="cpu")
    assert cpu.datasets == ("words",) and cpu.test_size >= 200 and cpu.num_generations >= 8
    assert cpu.only("gsm8k").datasets == ("gsm8k",) and not cpu.uses_hub
    assert cpu.branch_sequences == cpu.rl_iters * cpu.prompts_per_iter * cpu.num_generations
    paper = resolve(PretrainedLMConfig, preset="paper", device="cpu")
    assert paper.sft_checkpoints == tuple(range(1, 31)) and paper.p_cot == 0.05
    assert paper.train_size == 0 and paper.dtype == "bfloat16"
    assert paper.datasets == ("gsm8k", "math") and paper.gated_epoch == 30
    for params, name in [(dict(datasets=["svamp"]), "datasets"), (dict(datasets=[]), "datasets"),
                         (dict(datasets=["math", "math"]), "datasets"),
                         (dict(num_generations=1), "num_generations"),
                         (dict(sft_checkpoints=[3]), "sft_checkpoints"), (dict(p_cot=2.0), "p_cot"),
                         (dict(dtype="float16"), "dtype"), (dict(loss_type="ppo"), "loss_type"),
                         (dict(sft_batch_size=3), "sft_batch_size"), (dict(steps=0), "steps"),
                         (dict(max_value=10), "max_value")]:
        with pytest.raises(ConfigError, match=name):
            resolve(PretrainedLMConfig, preset="smoke", **params)


def test_cache_is_built_once_and_atomically(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert models.cache_root() == tmp_path / "rlntp"
    calls = []

    def build(out):
        calls.append(out)
        (out / "weights").write_text("w")

    whole = lambda path: None  # noqa: E731 - every cached folder is whole
    path = models._cached_dir("thing", build, whole)
    assert (path / "weights").read_text() == "w"
    assert models._cached_dir("thing", build, whole) == path and len(calls) == 1

    def broken(out):
        (out / "half").write_text("h")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        models._cached_dir("other", broken, whole)
    assert sorted(p.name for p in (tmp_path / "rlntp").iterdir()) == ["thing"]  # no half model


def test_smollm2_gguf_is_shipped_by_the_package():
    path = smollm2_gguf()
    assert path.name == models.GGUF_NAME and path.stat().st_size > 50_000_000


def test_tiny_model_generates_within_the_budget():
    tok = load_tokenizer(TINY)
    assert tok.chat_template and tok.padding_side == "left"
    model = load_model(TINY, tok, seed=0)
    texts, lengths = generate(model, tok, ["<|im_start|>user\nhi", "2+2"], 5, 2)
    assert len(texts) == 2 and all(0 <= n <= 5 for n in lengths)
    torch.manual_seed(0)
    sampled, lengths = generate(model, tok, ["2+2"] * 3, 5, 2, temperature=1.0)
    assert len(sampled) == 3 and all(0 <= n <= 5 for n in lengths)
    again = load_model(TINY, tok, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), again.parameters(), strict=True))


@pytest.fixture
def no_network(monkeypatch):
    """Record (and refuse) every DNS lookup or connect() to a non-local address."""
    attempts = []

    def local(host):
        try:
            return host in ("localhost", "") or ipaddress.ip_address(str(host)).is_loopback
        except ValueError:
            return False

    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect

    def getaddrinfo(host, *args, **kwargs):
        if not local(host):
            attempts.append(f"getaddrinfo {host}")
            raise OSError(101, "no network in this test")
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not local(address[0]):
            attempts.append(f"connect {address}")
            raise OSError(101, "no network in this test")
        return real_connect(self, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    return attempts


def test_smoke_preset_end_to_end(tmp_path, no_network):
    cfg = resolve(PretrainedLMConfig, preset="smoke", out_dir=str(tmp_path),
                  datasets=["words", "gsm8k"])
    run = CHAPTER.run(cfg)
    df = run.metrics
    rows, sfts = df.to_dict("records"), {(one.dataset, seed): r for (one, seed, _), r in
                                         run.done["SFT runs"]}
    time.sleep(0.5)  # telemetry (if any) is sent from a thread
    assert no_network == [], "chapter 5 at smoke tried to reach the network"
    assert sfts["words", 0]["n_long"] == round(cfg.p_cot * cfg.train_size) == 2
    assert {r["experiment"] for r in rows} == {"words", "gsm8k"}
    stars = df[(df.phase == "sft") & df.method.isna()]
    assert set(stars.metric) == {"acc_greedy", "len_mean_greedy", "frac_long_greedy",
                                 "frac_truncated_greedy", "acc_sample_long", "acc_sample_short",
                                 "n_sample_long", "n_sample_short", "frac_long_sample", "loss",
                                 "n_long_train", "wall_s", "wall_s_sft"}
    counts = stars[stars.metric.isin(["n_sample_long", "n_sample_short"])].value
    assert counts.sum() == 2 * 2 * cfg.test_size * cfg.sample_k  # 2 datasets x 2 checkpoints
    assert set(zip(stars.step, stars.sequences_seen, strict=True)) == {(1, 8), (2, 16)}
    grpo, control = df[df.method == "grpo"], df[df.method == "control"]
    assert set(grpo.phase) == {"rl"} and set(control.phase) == {"sft"}
    for b in (grpo, control):  # every generation counts; both branches see as many sequences
        assert (b.sequences_seen == b.branch_step * 8 + b.step * cfg.rl_batch).all()
        assert set(b.step[b.metric == "acc_greedy"]) == {0, 1, 2}
    assert {"reward_mean", "frac_reward_zero_std", "frac_truncated_rollout"} <= set(grpo.metric)
    assert df[df.metric.isin(["acc_greedy", "frac_long_greedy"])].value.between(0, 1).all()
    assert (df[df.metric == "len_mean_greedy"].value <= cfg.max_completion_length).all()
    assert "Problem:" in sample_responses(run.done, cfg)
    for claim in CHAPTER.claims:  # a random model: the gate fails, so nothing is decided
        r = claim.measure(df, cfg)
        assert r.holds is None and ("inconclusive: the gate failed" in r.why
                                    or claim.key == "math"), (claim.key, r)
    again = CHAPTER.run(cfg).metrics  # cached: the same rows (NaN where no sample was long or short)
    assert again.equals(df)


def test_grpo_stops_after_flat_steps_and_evaluates_there():
    from transformers import TrainerControl, TrainerState

    from rlntp.llm.train import _EvalAndStop

    evals = []
    cb = _EvalAndStop(every=10, flat=2, evaluate_fn=lambda m: evals.append(m) or {"acc": 0.0})
    state, control = TrainerState(max_steps=10), TrainerControl()
    for step, frac in enumerate([1.0, 0.5, 1.0, 1.0, 1.0], start=1):
        state.global_step = step
        cb.on_step_end(None, state, control, model="m")
        cb.on_log(None, state, control, logs={"frac_reward_zero_std": frac}, model="m")
        if control.should_training_stop:
            break
    assert cb.stopped_at == 4 and list(cb.results) == [4] and len(evals) == 1
    never = _EvalAndStop(every=10, flat=0, evaluate_fn=lambda m: {})
    state, control = TrainerState(max_steps=10, global_step=3), TrainerControl()
    for _ in range(5):
        never.on_log(None, state, control, logs={"frac_reward_zero_std": 1.0})
    assert not control.should_training_stop and never.stopped_at is None
