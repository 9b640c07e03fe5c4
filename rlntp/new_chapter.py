"""Write the skeleton of a new chapter: ``python -m rlntp.new_chapter 06_digit_sum``.

For ``NN_NAME`` it writes, from the templates in ``rlntp/templates/`` (``{{key}}`` placeholders):

- ``rlntp/data/NAME.py``: an example task (digit sum mod 10), found by :data:`rlntp.data.TASKS`;
- ``rlntp/experiments/NAME.py``: its config and presets, ``stages``, ``rows``, one claim and
  ``CHAPTER``, found by :func:`rlntp.experiments.chapters` (the runner, launcher, scorecard);
- ``notebooks/NN_NAME.ipynb``: the structure the tests ask of a chapter;
- ``tests/test_NAME.py``: the task's format;
- the entry ``chapters/NN_NAME`` after the last chapter of ``book/_toc.yml``.

A bad or taken name stops it, in one line, before anything is written; a failure while writing
removes what it wrote (and restores the table of contents).
"""

from __future__ import annotations

import importlib
import json
import keyword
import re
import sys
from pathlib import Path

from rlntp.config import REPO

TEMPLATES = Path(__file__).resolve().parent / "templates"
NAME = re.compile(r"(\d\d)_([a-z][a-z0-9]*(?:_[a-z0-9]+)*)")
MAX_LEN = 24  # the generated code keeps to the line length
TOC_ENTRY = re.compile(r"^( *)- file: chapters/\S+ *$", re.M)


class BadName(ValueError):
    """The chapter name is malformed or taken."""


def fill(text: str, values: dict[str, str]) -> str:
    """``text`` with every ``{{key}}`` replaced by ``values[key]``."""
    return re.sub(r"\{\{(\w+)\}\}", lambda m: values[m.group(1)], text)


def check_name(chapter: str, repo: Path) -> dict[str, str]:
    """The template values of ``chapter`` (``NN_NAME``), or :class:`BadName` saying what is wrong."""
    m = NAME.fullmatch(chapter)
    if not m or keyword.iskeyword(m.group(2)) or len(m.group(2)) > MAX_LEN:
        raise BadName(f"{chapter!r} is not a chapter name: NN_name, two digits then at most {MAX_LEN} "
                      "characters of lowercase words joined by '_' (e.g. 06_digit_sum)")
    number, name = m.groups()
    same_number = sorted((repo / "notebooks").glob(f"{number}_*.ipynb"))
    if same_number:
        raise BadName(f"chapter number {number} is taken by {same_number[0].stem}")
    from rlntp.data import TASKS

    if name in TASKS:
        raise BadName(f"a task named {name!r} exists (rlntp.data.TASKS); choose another NAME")
    values = dict(chapter=chapter, number=number, num=str(int(number)), name=name,
                  Class="".join(w.capitalize() for w in name.split("_")),
                  title=name.replace("_", " ").capitalize())
    taken = [p for p in targets(values, repo).values() if p.exists()]
    if taken:
        raise BadName(f"{taken[0].relative_to(repo)} exists: choose another NAME")
    if not TOC_ENTRY.search((repo / "book" / "_toc.yml").read_text()):
        raise BadName("book/_toc.yml has no '- file: chapters/...' entry to add the chapter after")
    return values


def targets(values: dict[str, str], repo: Path) -> dict[str, Path]:
    """Where each template goes."""
    return {"task.py.tmpl": repo / "rlntp" / "data" / f"{values['name']}.py",
            "chapter.py.tmpl": repo / "rlntp" / "experiments" / f"{values['name']}.py",
            "notebook.tmpl": repo / "notebooks" / f"{values['chapter']}.ipynb",
            "test.py.tmpl": repo / "tests" / f"test_{values['name']}.py"}


def notebook(text: str) -> str:
    """A notebook (JSON, no outputs) from the template's cells: each starts with a line
    ``%% markdown`` or ``%% code {metadata as JSON}``."""
    import nbformat

    nb = nbformat.v4.new_notebook(metadata={
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"}})
    for i, block in enumerate(re.split(r"^%% ", text, flags=re.M)[1:]):
        head, _, source = block.partition("\n")
        kind, _, meta = head.partition(" ")
        new = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        nb.cells.append(new(source.rstrip("\n"), metadata=json.loads(meta or "{}"), id=f"c{i:03d}"))
    nbformat.validate(nb)
    return nbformat.writes(nb) + "\n"


def new_chapter(chapter: str, repo: Path = REPO) -> list[Path]:
    """Write the chapter's files (see the module docstring); return them."""
    from rlntp.params import parameters_cell

    values = check_name(chapter, repo)
    paths = targets(values, repo)
    toc = repo / "book" / "_toc.yml"
    toc_text = toc.read_text()
    written: list[Path] = []
    try:
        for template in ("task.py.tmpl", "chapter.py.tmpl", "test.py.tmpl"):
            paths[template].write_text(fill((TEMPLATES / template).read_text(), values))
            written.append(paths[template])
        importlib.invalidate_caches()
        config = importlib.import_module(f"rlntp.experiments.{values['name']}").CHAPTER.config
        values["parameters"] = parameters_cell(config)
        paths["notebook.tmpl"].write_text(notebook(fill((TEMPLATES / "notebook.tmpl").read_text(), values)))
        written.append(paths["notebook.tmpl"])
        last = list(TOC_ENTRY.finditer(toc_text))[-1]
        entry = f"\n{last.group(1)}- file: chapters/{chapter}"
        toc.write_text(toc_text[: last.end()] + entry + toc_text[last.end():])
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        toc.write_text(toc_text)
        raise
    return [*written, toc]


def main(argv: list[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m rlntp.new_chapter", description=__doc__.split("\n")[0])
    ap.add_argument("chapter", help="NN_name, e.g. 06_digit_sum")
    args = ap.parse_args(argv)
    try:
        written = new_chapter(args.chapter)
    except BadName as e:
        sys.exit(f"error: {e}")
    test = next(p for p in written if p.name.startswith("test_"))
    print("wrote " + ", ".join(str(p.relative_to(REPO)) for p in written))
    print(f"next: python -m rlntp.book --preset smoke --only {args.chapter} --no-html, then python -m "
          f"pytest {test.relative_to(REPO)} tests/test_notebooks.py tests/test_claims.py")


if __name__ == "__main__":
    main()
