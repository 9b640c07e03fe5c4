"""Chapter 5 plumbing: the config, the model cache, greedy generation and the smoke preset."""

import ipaddress
import socket
import time

import pytest
import torch

from rlntp.config import ConfigError
from rlntp.experiments.gsm8k_math import CHAPTER, GSM8KMathConfig, pick_prompts
from rlntp.llm import models
from rlntp.llm.models import TINY, load_model, load_tokenizer, smollm2_gguf
from rlntp.llm.train import generate
from rlntp.params import resolve


def test_presets_resolve_and_bad_values_are_named():
    smoke = resolve(GSM8KMathConfig, preset="smoke")
    assert smoke.model == TINY and smoke.sample_data and smoke.dataset == "gsm8k"
    cpu = resolve(GSM8KMathConfig, preset="cpu")
    assert cpu.datasets == ("gsm8k", "math") and cpu.dataset == "gsm8k+math"
    assert cpu.only("math").datasets == ("math",) and cpu.num_generations >= 8
    paper = resolve(GSM8KMathConfig, preset="paper", device="cpu")
    assert paper.sft_checkpoints == tuple(range(1, 31)) and paper.p_cot == 0.05
    assert paper.train_size == 0 and paper.dtype == "bfloat16"
    for params, name in [(dict(datasets=["svamp"]), "datasets"), (dict(datasets=[]), "datasets"),
                         (dict(datasets=["math", "math"]), "datasets"),
                         (dict(stop_flat=-1), "stop_flat"), (dict(num_generations=1),
                         "num_generations"), (dict(sft_checkpoints=[3]), "sft_checkpoints"),
                         (dict(p_cot=2.0), "p_cot"),
                         (dict(dtype="float16"), "dtype")]:
        with pytest.raises(ConfigError, match=name):
            resolve(GSM8KMathConfig, preset="smoke", **params)


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


def test_pick_prompts_keeps_the_solved_and_fills_a_batch():
    records = [{"prompt": str(i), "answer": "1"} for i in range(5)]
    kept, frac = pick_prompts(records, [0, 2, 0, 1, 0], at_least=1)
    assert [r["prompt"] for r in kept] == ["1", "3"] and frac == 0.4
    kept, frac = pick_prompts(records, [0, 0, 0, 0, 1], at_least=3)
    assert [r["prompt"] for r in kept] == ["0", "1", "4"] and frac == 0.2


def test_smoke_preset_end_to_end(tmp_path, no_network):
    cfg = resolve(GSM8KMathConfig, preset="smoke", out_dir=str(tmp_path),
                  datasets=["gsm8k", "math"])
    run = CHAPTER.run(cfg)
    rows, sfts = run.metrics.to_dict("records"), {(one.dataset, seed): r for (one, seed, _), r in
                                                   run.done["SFT runs"]}
    time.sleep(0.5)  # telemetry (if any) is sent from a thread
    assert no_network == [], "chapter 5 at smoke tried to reach the network"
    assert sfts["gsm8k", 0]["n_long"] == round(cfg.p_cot * cfg.train_size) == 2
    assert {r["experiment"] for r in rows} == {"gsm8k", "math"}
    metrics = {r["metric"] for r in rows}
    assert metrics == {"acc_greedy", "len_mean_greedy", "frac_long_greedy", "loss", "reward_mean",
                       "frac_reward_zero_std", "stopped_early", "prepass_solved",
                       "acc_sample_long", "acc_sample_short", "n_sample_long", "n_sample_short"}
    counts = [r["value"] for r in rows if r["phase"] == "sft"
              and r["metric"] in ("n_sample_long", "n_sample_short")]
    assert sum(counts) == 2 * 2 * cfg.test_size * cfg.sample_k  # 2 datasets x 2 checkpoints
    stars = {(r["step"], r["sequences_seen"]) for r in rows if r["phase"] == "sft"}
    assert stars == {(0, 0), (1, 8), (2, 16)}
    rl = [r for r in rows if r["phase"] == "rl"]
    assert {r["method"] for r in rl} == {"grpo"}
    for r in rl:  # every generation counts
        assert r["sequences_seen"] == r["branch_step"] * 8 + r["step"] * 2 * 2
    assert all(0 <= r["value"] <= 1 for r in rows if r["metric"] in ("acc_greedy",
                                                                       "frac_long_greedy"))
    assert all(r["value"] == 0 for r in rows if r["metric"] == "stopped_early")  # stop_flat 0
    assert all(r["value"] <= cfg.max_completion_length for r in rows
               if r["metric"] == "len_mean_greedy")
    again = CHAPTER.run(cfg).metrics  # cached: the same rows (NaN where no sample was long or short)
    assert again.equals(run.metrics)


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
