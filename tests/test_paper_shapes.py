"""The paper-shape run (rlntp.paper_shapes) cuts only counts, and its cost table (rlntp.paper_costs)."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from rlntp import paper_costs, paper_shapes
from rlntp.config import ConfigError
from rlntp.experiments import chapters
from rlntp.params import resolve


def test_every_chapter_has_cuts_and_shapes():
    assert set(paper_shapes.CUTS) == set(chapters()) == set(paper_shapes.SHAPES)


@pytest.mark.parametrize("name", sorted(paper_shapes.CUTS))
def test_the_cut_config_keeps_every_shape_of_the_paper_preset(name):
    cut = paper_shapes.cut_config(name)
    paper = resolve(chapters()[name].config, preset="paper")
    for field in paper_shapes.SHAPES[name]:
        assert getattr(cut, field) == getattr(paper, field), field
    changed = {f.name for f in dataclasses.fields(cut) if getattr(cut, f.name) != getattr(paper, f.name)}
    assert changed <= set(paper_shapes.CUTS[name]) | set(paper_shapes.RUNTIME)


@pytest.mark.parametrize("cut, why", [({"pretrain_iterz": 4}, "not a parameter"),
                                      ({"n_layer": 1}, "only counts"),
                                      ({"pretrain_iters": 60_000}, "only counts"),
                                      ({"p_cot_values": (0.33,)}, "only counts"),
                                      ({"pretrain_learning_rate": 1e-5}, "only counts")])
def test_a_cut_that_is_no_count_stops_naming_it(monkeypatch, cut, why):
    name = "01_parity_pretraining"
    monkeypatch.setitem(paper_shapes.CUTS, name, {**paper_shapes.CUTS[name], **cut})
    with pytest.raises(ConfigError, match=rf"CUTS\['{name}'\]\['{next(iter(cut))}'\].*{why}"):
        paper_shapes.cut_config(name)


def test_the_llama_stand_in_has_llama_3b_shapes_but_depth():
    with torch.device("meta"):
        full = paper_shapes.stand_in_llama(28)
        cut = paper_shapes.stand_in_llama()
    assert sum(p.numel() for p in full.parameters()) == 3_212_749_824  # Llama 3.2 3B
    assert cut.config.num_hidden_layers == paper_shapes.STAND_IN_LAYERS
    for key in ("hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads",
                "vocab_size"):
        assert getattr(cut.config, key) == getattr(full.config, key) == paper_shapes.LLAMA_3B[key]


def test_a_step_at_paper_shapes_is_timed_and_its_memory_read():
    torch.set_num_threads(1)
    m = paper_shapes._probe("01_parity_pretraining", 8)
    assert m["step_s"] > 0 and m["max_rss_mib"] >= m["rss_before_step_mib"] > 0


def test_the_cost_table_says_what_is_projected_and_where_it_was_measured(tmp_path):
    assert "make paper-shapes" in paper_costs.costs_table(tmp_path / "none.json")
    step = {"batch": 256, "step_s": 2.0, "max_rss_mib": 1030, "how": "measured"}
    logs = {n: {"shapes": paper_shapes.shapes(n, paper_shapes.cut_config(n)), "step": step}
            for n in ("01_parity_pretraining", "03_linear_theory")}
    path = paper_costs.write_costs(tmp_path / "costs.json", logs)
    info = json.loads(path.read_text())
    assert info["commit"] and info["machine"] and info["chapters"]["03_linear_theory"]["flops"] is None
    hours = info["chapters"]["01_parity_pretraining"]["PROJECTION_gpu_hours"]
    table = paper_costs.costs_table(path)
    assert "PROJECTION" in table and info["commit"][:12] in table and f"{hours:,.2f}" in table
    assert "results/paper" in table  # chapter 1's H200 run cited beside the projection
