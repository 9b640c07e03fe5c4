"""The pip lock, environment.yml and the source notebooks agree with the project's rules."""

import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def pins(lines):
    out = {}
    for line in lines:
        m = re.match(r"^\s*-?\s*([A-Za-z0-9_.\-\[\]]+)==([^\s#]+)", line)
        if m:
            out[m.group(1).lower().replace("_", "-")] = m.group(2)
    return out


def test_environment_yml_pins_the_same_versions_as_the_lock():
    lock = pins((REPO / "requirements-lock.txt").read_text().splitlines())
    env_text = (REPO / "environment.yml").read_text()
    env = pins(env_text.split("pip:", 1)[1].splitlines())
    assert env, "environment.yml pins nothing under pip:"
    assert lock["torch"] == "2.13.0"
    for name, version in env.items():
        assert lock.get(name) == version, f"{name}: environment.yml {version}, lock {lock.get(name)}"
    for key in ("torch", "jupyter-book", "papermill", "transformers", "trl"):
        assert key in env, f"environment.yml does not pin {key}"
    py = re.search(r"python=(\d+\.\d+)", env_text)
    assert py, "environment.yml pins no python"


def test_jupyter_book_is_version_1():
    lock = pins((REPO / "requirements-lock.txt").read_text().splitlines())
    assert lock["jupyter-book"].startswith("1.")


def test_source_notebooks_are_clean_and_parameterised():
    for nb_path in sorted((REPO / "notebooks").glob("*.ipynb")):
        nb = json.loads(nb_path.read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), nb_path
        params = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(params) == 1 and params[0] is code[0], f"{nb_path}: first code cell must be tagged"
        src = "".join(params[0]["source"])
        assert re.search(r'^preset = "cpu"', src, re.M) and re.search(r'^device = None', src, re.M)
        assert re.search(r"^out_dir = None", src, re.M)
