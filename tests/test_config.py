import dataclasses

import pytest

from rlntp.config import ConfigError
from rlntp.experiments.parity_pretrain import ParityPretrainConfig
from rlntp.params import resolve


def test_cpu_preset_is_the_field_defaults_and_its_presets_entry():
    cfg = resolve(ParityPretrainConfig)
    assert cfg == ParityPretrainConfig(**ParityPretrainConfig.PRESETS["cpu"])
    assert cfg.preset == "cpu"


def test_none_keeps_the_preset_value_and_lists_become_tuples():
    cfg = resolve(ParityPretrainConfig, preset="smoke", d=None, p_cot_values=[0.2, 0.4], seeds=3)
    assert cfg.d == ParityPretrainConfig.PRESETS["smoke"]["d"]
    assert cfg.p_cot_values == (0.2, 0.4)
    assert cfg.seeds == (3,)
    assert dataclasses.is_dataclass(cfg)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.d = 3  # type: ignore[misc]


def test_lists_given_as_text_by_papermill_cli():
    cfg = resolve(ParityPretrainConfig, p_cot_values="[0.1, 0.25]", seeds="0,1")
    assert cfg.p_cot_values == (0.1, 0.25) and cfg.seeds == (0, 1)
    with pytest.raises(ConfigError, match="p_cot_values='high'"):
        resolve(ParityPretrainConfig, p_cot_values="[high]")


def test_int_accepted_for_float_field():
    assert resolve(ParityPretrainConfig, pretrain_learning_rate=1).pretrain_learning_rate == 1.0


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"preset": "huge"}, "preset='huge'"),
        ({"d": 1}, "d=1"),
        ({"d": "sixteen"}, "d='sixteen' has the wrong type"),  # "16" is read as 16 (papermill -r)
        ({"d": True}, "wrong type"),
        ({"p_cot_values": [0.1, 1.5]}, "p_cot_values"),
        ({"n_head": 3}, "n_head=3"),
        ({"device": "tpu"}, "device='tpu'"),
        ({"seeds": [1, 1]}, "distinct"),
        ({"dd": 3}, "unknown parameter 'dd'"),
        ({"matmuls": "fp16"}, "matmuls='fp16'"),
    ],
)
def test_bad_parameters_name_the_parameter(params, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        resolve(ParityPretrainConfig, **params)


def test_key_ignores_output_location_but_not_results():
    a = resolve(ParityPretrainConfig, out_dir="/tmp/a")
    b = resolve(ParityPretrainConfig, out_dir="/tmp/b", workers=1)
    c = resolve(ParityPretrainConfig, pretrain_learning_rate=2e-3)
    assert a.key() == b.key() != c.key()


def test_matmuls_auto_is_keyed_by_the_precision_it_resolves_to(monkeypatch):
    import rlntp.models.gpt as gpt

    f32, bf16 = (resolve(ParityPretrainConfig, device="cpu", matmuls=m) for m in ("float32", "bfloat16"))
    assert f32.key() != bf16.key() and not f32.bf16_matmuls and bf16.bf16_matmuls
    for native, same in ((True, bf16), (False, f32)):  # 'auto' shares the cache of what it ran
        monkeypatch.setattr(gpt, "native_bf16", lambda device, native=native: native)
        auto = resolve(ParityPretrainConfig, device="cpu", matmuls="auto")
        assert auto.bf16_matmuls is native and auto.key() == same.key()


def test_describe_lists_every_field():
    text = resolve(ParityPretrainConfig, preset="smoke").describe()
    for f in dataclasses.fields(ParityPretrainConfig):
        assert f.name in text


@pytest.mark.parametrize("text", ["foo bar=1", "preset=bogus", "__import__('os')=1", "noequals"])
def test_runner_parameters_must_be_names_other_than_preset(text):
    from rlntp.params import parse_param

    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_param(text)


def test_runner_parameters_parse_json_values():
    from rlntp.params import parse_param

    assert parse_param("seeds=[0, 1]") == ("seeds", [0, 1])
    assert parse_param("device=cuda") == ("device", "cuda")


def test_table_shows_paths_relative_to_the_repository_and_a_headline():
    from rlntp.config import REPO

    cfg = resolve(ParityPretrainConfig, preset="smoke", out_dir=str(REPO / "runs" / "x"))
    full, head = cfg.table(), cfg.table(headline=True)
    assert full.loc["out_dir", "value"] == "'runs/x'"
    assert list(full.index) == cfg.field_names() and full["meaning"].str.len().min() > 0
    assert {"preset", "seeds", "d", "p_cot_values"} <= set(head.index)
    assert not {"n_layer", "pretrain_iters", "weight_decay", "out_dir"} & set(head.index)


def test_paper_preset_on_the_cpu_warns_when_a_run_starts(tmp_path):
    from rlntp.config import PaperOnCPUWarning

    cfg = resolve(ParityPretrainConfig, preset="paper", device="cpu", out_dir=str(tmp_path))
    with pytest.warns(PaperOnCPUWarning, match="preset='paper' is running on the CPU"):
        cfg.prepare()


def test_a_cpu_only_chapter_at_the_paper_preset_does_not_warn(tmp_path, recwarn):
    from rlntp.config import PaperOnCPUWarning
    from rlntp.experiments.linear_theory import LinearTheoryConfig

    resolve(LinearTheoryConfig, preset="paper", out_dir=str(tmp_path)).prepare()
    assert not [w for w in recwarn if issubclass(w.category, PaperOnCPUWarning)]


def test_resolving_a_config_touches_no_file(tmp_path):
    from rlntp.experiments.pretrained_lm import CHAPTER, PretrainedLMConfig

    out = tmp_path / "not" / "yet"
    cfg = resolve(PretrainedLMConfig, preset="smoke", out_dir=str(out), datasets=["gsm8k"],
                  data_dir=str(tmp_path / "nowhere"))
    assert cfg.path == out and not out.exists()  # nothing created, no data folder looked for
    with pytest.raises(FileNotFoundError, match="data_dir="):  # it is, when the run needs it
        CHAPTER.data(cfg)
    assert cfg.prepare() == out and out.is_dir()
