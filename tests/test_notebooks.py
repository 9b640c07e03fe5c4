"""Every chapter notebook: its parameters cell lists exactly its config's fields, resolved in one
line, and a misspelt ``-p NAME`` stops with one error naming it."""

import ast
import json
from pathlib import Path

import papermill as pm
import pytest

from rlntp.experiments import chapters
from rlntp.params import parameters_cell

REPO = Path(__file__).resolve().parent.parent
CONFIGS = {name: ch.config for name, ch in chapters().items()}


def _cells(name: str) -> list[dict]:
    return json.loads((REPO / "notebooks" / f"{name}.ipynb").read_text())["cells"]


def test_every_notebook_has_a_config():
    assert {p.stem for p in (REPO / "notebooks").glob("*.ipynb")} == set(CONFIGS)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_parameters_cell_names_equal_the_config_fields(name):
    cls = CONFIGS[name]
    (cell,) = [c for c in _cells(name) if "parameters" in c["metadata"].get("tags", [])]
    source = "".join(cell["source"])
    names = [t.id for node in ast.parse(source).body for t in node.targets]
    assert names == cls.field_names()
    assert source == parameters_cell(cls), "regenerate the cell with rlntp.config.parameters_cell"
    # papermill parses every line (its --help-notebook; otherwise it warns at every run)
    from papermill.translators import PythonTranslator

    assert [p.name for p in PythonTranslator.inspect({"source": source})] == cls.field_names()
    code = "".join("".join(c["source"]) for c in _cells(name) if c["cell_type"] == "code")
    assert "resolve_notebook(CHAPTER.config, globals())" in code.replace("prl.", "").replace("exp.", "")


@pytest.mark.slow
def test_a_misspelt_parameter_stops_the_notebook(tmp_path):
    with pytest.raises(pm.PapermillExecutionError) as err:
        pm.execute_notebook(str(REPO / "notebooks" / "02_parity_rl.ipynb"), str(tmp_path / "o.ipynb"),
                            parameters={"preset": "smoke", "out_dir": str(tmp_path), "bta": 0.1},
                            kernel_name="python3", progress_bar=False, cwd=str(REPO))
    assert err.value.ename == "ConfigError" and "bta" in err.value.evalue


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_figure_has_a_caption_a_name_and_alt_text(name):
    figures = [c for c in _cells(name) if "show_figure(" in "".join(c["source"])]
    assert figures, f"{name} shows no figure"
    for cell in figures:
        meta = cell["metadata"].get("mystnb", {})
        assert meta.get("figure", {}).get("caption") and meta["figure"].get("name"), cell["source"][:2]
        assert meta.get("image", {}).get("alt"), cell["source"][:2]
        assert "save_figure(" not in "".join(cell["source"])
    names = [c["metadata"]["mystnb"]["figure"]["name"] for c in figures]
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_chapter_ends_with_exercises_references_and_provenance(name):
    text = "\n".join("".join(c["source"]) for c in _cells(name) if c["cell_type"] == "markdown")
    assert text.count("```{exercise}") >= 2
    assert text.count("```{solution}") == text.count("```{exercise}")
    assert "papermill notebooks/" in text, "one exercise runs the chapter with papermill -p ..."
    assert text.index("## Exercises") < text.index("## References") < text.index("## Provenance")
    assert "{glue:text}`provenance`" in text and "{footbibliography}" in text
    title = text.splitlines()[0]
    assert title.startswith("# ") and "$" not in title, "a plain-text title (browser tabs, search)"
