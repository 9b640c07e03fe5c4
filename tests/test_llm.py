"""Chapter 5 plumbing: the config, the model cache, greedy generation and the smoke preset."""

import ipaddress
import socket
import time

import pytest
import torch

from rlntp.config import ConfigError, resolve
from rlntp.experiments.gsm8k_math import GSM8KMathConfig, run_all
from rlntp.llm import models
from rlntp.llm.models import TINY, load_model, load_tokenizer, smollm2_gguf
from rlntp.llm.train import generate_greedy


def test_presets_resolve_and_bad_values_are_named():
    smoke = resolve(GSM8KMathConfig, preset="smoke")
    assert smoke.model == TINY and smoke.sample_data
    paper = resolve(GSM8KMathConfig, preset="paper", device="cpu")
    assert paper.sft_checkpoints == tuple(range(1, 31)) and paper.p_cot == 0.05
    assert paper.train_size == 0 and paper.dtype == "bfloat16"
    for params, name in [(dict(dataset="svamp"), "dataset"), (dict(num_generations=1),
                         "num_generations"), (dict(sft_checkpoints=[3]), "sft_checkpoints"),
                         (dict(p_cot=2.0), "p_cot"), (dict(data_dir="/nowhere"), "data_dir"),
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

    path = models._cached_dir("thing", build)
    assert (path / "weights").read_text() == "w"
    assert models._cached_dir("thing", build) == path and len(calls) == 1

    def broken(out):
        (out / "half").write_text("h")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        models._cached_dir("other", broken)
    assert sorted(p.name for p in (tmp_path / "rlntp").iterdir()) == ["thing"]  # no half model


def test_smollm2_gguf_is_shipped_by_the_package():
    path = smollm2_gguf()
    assert path.name == models.GGUF_NAME and path.stat().st_size > 50_000_000


def test_tiny_model_generates_within_the_budget():
    tok = load_tokenizer(TINY)
    assert tok.chat_template and tok.padding_side == "left"
    model = load_model(TINY, tok, seed=0)
    texts, lengths = generate_greedy(model, tok, ["<|im_start|>user\nhi", "2+2"], 5, 2)
    assert len(texts) == 2 and all(0 <= n <= 5 for n in lengths)
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
    cfg = resolve(GSM8KMathConfig, preset="smoke", out_dir=str(tmp_path))
    rows, sfts = run_all(cfg)
    time.sleep(0.5)  # telemetry (if any) is sent from a thread
    assert no_network == [], "chapter 5 at smoke tried to reach the network"
    assert sfts[0]["n_long"] == round(cfg.p_cot * cfg.train_size) == 2
    metrics = {r["metric"] for r in rows}
    assert metrics == {"acc_greedy", "len_mean_greedy", "frac_long_greedy", "loss", "reward_mean",
                       "frac_reward_zero_std"}
    stars = {(r["step"], r["sequences_seen"]) for r in rows if r["phase"] == "sft"}
    assert stars == {(0, 0), (1, 8), (2, 16)}
    rl = [r for r in rows if r["phase"] == "rl"]
    assert {r["method"] for r in rl} == {"grpo"}
    for r in rl:  # every generation counts
        assert r["sequences_seen"] == r["branch_step"] * 8 + r["step"] * 2 * 2
    assert all(0 <= r["value"] <= 1 for r in rows if r["metric"] in ("acc_greedy",
                                                                       "frac_long_greedy"))
    assert all(r["value"] <= cfg.max_completion_length for r in rows
               if r["metric"] == "len_mean_greedy")
    again, _ = run_all(cfg)  # cached: the same rows
    assert again == rows
