"""Two fixes to the HTML that Jupyter Book 1 writes, as a Sphinx extension (``_config.yml``).

- Every page includes the inline scripts of sphinx-thebe and sphinx-togglebutton twice; the second
  ``const THEBE_JS_URL`` throws in the browser. :func:`dedupe_scripts` keeps the first copy.
- pydata-sphinx-theme reads the colour mode from ``localStorage`` and, on a reader's first visit,
  finds ``""`` and logs an error; a script run before the theme's sets it to ``"auto"`` instead.
"""

from __future__ import annotations

from typing import Any

THEME_MODE = 'if (!document.documentElement.dataset.mode) document.documentElement.dataset.mode = "auto";'


def dedupe_scripts(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    """Drop repeated entries (same file, same inline body and attributes, whatever their priority)
    from the page's scripts."""
    seen, kept = set(), []
    for script in context.get("script_files", []):
        attributes = sorted((k, str(v)) for k, v in getattr(script, "attributes", {}).items())
        key = (getattr(script, "filename", str(script)) or "", tuple(attributes))  # None == ""
        if key not in seen:
            seen.add(key)
            kept.append(script)
    context["script_files"][:] = kept


def setup(app: Any) -> dict[str, Any]:
    app.add_js_file(None, body=THEME_MODE, priority=1)
    app.connect("html-page-context", dedupe_scripts, priority=100)  # first: later ones may end the event
    return {"parallel_read_safe": True, "parallel_write_safe": True}
