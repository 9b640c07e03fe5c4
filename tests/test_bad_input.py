"""Issue 24 (reliability), bad input: every name, list, number, data line, model folder and
checkpoint a chapter is given is checked where it enters, and refused in one line naming it and
what is allowed. One test per item of the issue (numbered as there)."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from rlntp.config import ConfigError
from rlntp.data.math_text import DataError, read_jsonl
from rlntp.experiments import chapters
from rlntp.params import parameters_cell, resolve, resolve_notebook

CH1 = "01_parity_pretraining"


# 4 ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["D", "_d", "open", "Seeds"])
def test_a_misspelt_name_of_any_case_or_underscore_fails(name):
    cls = chapters()[CH1].config
    injected = f"# Parameters\npreset = 'smoke'\n{name} = 4\n"  # what papermill runs for -p NAME 4
    namespace = {"In": ["", parameters_cell(cls), injected, "cfg = resolve_notebook(...)"],
                 **dict.fromkeys(cls.field_names()), "preset": "smoke", name: 4}
    with pytest.raises(ConfigError, match=f"unknown parameter {name};"):
        resolve_notebook(cls, namespace)


# 5 ------------------------------------------------------------------------------------------------
LISTS = [(n, f) for n, ch in chapters().items() for f, tp in typing.get_type_hints(ch.config).items()
         if typing.get_origin(tp) is tuple]


@pytest.mark.parametrize(("chapter", "field"), LISTS, ids=[f"{c[:2]}-{f}" for c, f in LISTS])
def test_every_list_parameter_must_be_non_empty_and_distinct(chapter, field):
    cls = chapters()[chapter].config
    value = getattr(resolve(cls, "smoke"), field)
    for bad in ([], [*value, value[0]]):
        with pytest.raises(ConfigError, match=f"parameter {field}=.*a non-empty list of distinct"):
            resolve(cls, "smoke", **{field: bad})


# 10 -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("line", "needle"), [
    ('{"question": "\\ud800", "answer": "#### 1"}', "lone surrogate"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
])
def test_bad_unicode_and_deep_nesting_name_the_file_and_line(tmp_path, line, needle):
    path = tmp_path / "train.jsonl"
    path.write_text('{"question": "1+1?", "answer": "#### 2"}\n' + line + "\n")
    with pytest.raises(DataError, match=f"{path} line 2: .*{needle}"):
        read_jsonl(path)


# 11 -----------------------------------------------------------------------------------------------
def test_a_folder_that_is_no_model_fails_naming_model_and_a_damaged_tokenizer_is_rebuilt(
        tmp_path, monkeypatch):
    from rlntp.experiments.pretrained_lm import PretrainedLMConfig
    from rlntp.llm import TINY
    from rlntp.llm.models import load_tokenizer, smollm2_tokenizer_dir

    with pytest.raises(ConfigError, match="model='/etc' is not allowed .*without config.json"):
        resolve(PretrainedLMConfig, "smoke", model="/etc")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    tokenizer = smollm2_tokenizer_dir() / "tokenizer.json"
    whole = tokenizer.read_bytes()
    tokenizer.write_bytes(whole[:1000])  # truncated
    with pytest.warns(RuntimeWarning, match="tokenizer.json: cannot be read"):
        assert load_tokenizer(TINY).pad_token is not None
    assert tokenizer.read_bytes() == whole
    tokenizer.unlink()
    with pytest.warns(RuntimeWarning, match="tokenizer.json: cannot be read"):
        load_tokenizer(TINY)
    assert tokenizer.read_bytes() == whole


# 12 -----------------------------------------------------------------------------------------------
def test_a_checkpoint_of_another_shape_names_its_file(tmp_path):
    from rlntp.experiments.parity_rl import ParityRLConfig
    from rlntp.experiments.runs import load_checkpoint, new_model, pretrain_dir
    from rlntp.results import CheckpointError, atomic_torch_save
    from rlntp.train import checkpoint_path

    cfg = resolve(ParityRLConfig, "smoke", out_dir=str(tmp_path))
    task = cfg.task(cfg.p_cot)
    other = new_model(dataclasses.replace(cfg, n_embd=32), task, 0)
    path = checkpoint_path(pretrain_dir(cfg, task, 0), 10)
    atomic_torch_save(other.state_dict(), path)
    with pytest.raises(CheckpointError, match=f"{path}: not a checkpoint of this model .*size mismatch"):
        load_checkpoint(cfg, task, 10, 0)


# 13 -----------------------------------------------------------------------------------------------
TEMPERATURES = [(n, f) for n, ch in chapters().items() for f in ("temperature", "temperatures")
                if f in ch.config.field_names()]


@pytest.mark.parametrize(("chapter", "field"), TEMPERATURES, ids=[f"{c[:2]}-{f}" for c, f in TEMPERATURES])
def test_a_temperature_too_small_to_sample_is_refused(chapter, field):
    value = 1e-40 if field == "temperature" else [1e-40]
    with pytest.raises(ConfigError, match=f"parameter {field}=.*cannot be sampled"):
        resolve(chapters()[chapter].config, "smoke", **{field: value})
