"""The built book in a real browser: headless Chromium opens every HTML page from a local server with
all other network blocked, and checks what a reader sees.

Per page: no console error or uncaught exception, no failed or blocked request, every image loaded,
no raw ``\\(``/``\\[`` left after MathJax, no ``NaN`` in a table, no broken internal link or anchor.
Screenshots (1280 px desktop and 390 px phone, full page) and ``browser_report.json`` go to
``$RLNTP_TEST_ARTIFACTS`` (default ``tests/artifacts/``).

The core runs on any built book without pytest:

    python tests/test_browser.py book/_build/html [ARTIFACTS_DIR]
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from chromium import Chromium, ChromiumNotFound, find_chromium  # tests/ is on sys.path

pytestmark = pytest.mark.slow
ARTIFACTS = Path(os.environ.get("RLNTP_TEST_ARTIFACTS") or Path(__file__).resolve().parent / "artifacts")
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
TIMEOUT_MS = 60_000
NAN = re.compile(r"\bnan\b", re.IGNORECASE)
RAW_MATH = re.compile(r"\\[(\[]")

# After load: make lazy images load, wait for every image and for MathJax's first typeset.
_SETTLE_JS = """async () => {
  const imgs = [...document.images];
  imgs.forEach(img => { img.loading = 'eager'; });
  await Promise.all(imgs.map(img => img.complete ? null :
    new Promise(done => { img.addEventListener('load', done); img.addEventListener('error', done); })));
  if (window.MathJax?.startup?.promise) await window.MathJax.startup.promise;
}"""

# Everything measured in the page, in one round trip.
_MEASURE_JS = """() => {
  const skip = 'script, style, noscript, pre, code, mjx-container, .linenos';
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const text = [];
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (el && !el.closest(skip) && el.checkVisibility()) text.push(n.data);
  }
  const here = location.origin;
  return {
    images: [...document.images].map(img => ({
      src: img.currentSrc || img.src, natural: img.naturalWidth, complete: img.complete,
      rendered: img.getBoundingClientRect().width, inMain: !!img.closest('main, article, [role=main]'),
    })),
    math: document.querySelectorAll('mjx-container').length,
    text,
    cells: [...document.querySelectorAll('table td, table th')].map(c => c.innerText.trim()),
    links: [...document.querySelectorAll('a[href]')].map(a => a.href)
      .filter(h => h.startsWith(here + '/')),
    ids: [...document.querySelectorAll('[id], a[name]')].map(e => e.id || e.getAttribute('name')),
  };
}"""


LEGIBLE = 0.9  # rendered / natural width of a figure at 1280 px, at least

@dataclass
class PageReport:
    """What one page showed. The lists named in ``PROBLEMS`` hold offending items (empty = fine);
    the rest is for the record: counts, and the rendered / natural width of each image in the main
    content at 1280 px and 390 px (below 1 the figure is shrunk, its text smaller than drawn)."""

    images: int = 0
    math_elements: int = 0
    links_checked: int = 0  # distinct links into the book
    console_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    broken_images: list[str] = field(default_factory=list)
    raw_math: list[str] = field(default_factory=list)
    nan_cells: list[str] = field(default_factory=list)
    broken_links: list[str] = field(default_factory=list)
    img_width_ratios: dict[str, float] = field(default_factory=dict)
    img_width_ratios_phone: dict[str, float] = field(default_factory=dict)  # the same at 390 px
    phone_overflow_px: int = 0  # report only: how far the page scrolls sideways at 390 px
    redirected_to: str = ""  # the page it sent the browser to, if any

    PROBLEMS = ("console_errors", "failed_requests", "broken_images", "raw_math", "nan_cells",
                "broken_links")

    def failures(self) -> list[tuple[str, str]]:
        """(check, offending item) for every failed check; a figure shrunk below
        :data:`LEGIBLE` of its size at 1280 px is one (its labels would blur)."""
        shrunk = [("figure shrunk", f"{img}: {r:.2f}") for img, r in self.img_width_ratios.items()
                  if r < LEGIBLE]
        return [(name, item) for name in self.PROBLEMS for item in getattr(self, name)] + shrunk


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


@contextmanager
def serve(root: Path) -> Iterator[str]:
    """Serve ``root`` over HTTP on 127.0.0.1 at a free port, yielding its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def book_pages(html_dir: Path) -> list[str]:
    """Every HTML page of the book (not Sphinx's ``_static``/``_sources`` folders), relative paths."""
    return sorted(p.relative_to(html_dir).as_posix() for p in html_dir.rglob("*.html")
                  if not any(part.startswith("_") for part in p.relative_to(html_dir).parts))


def _local_file(html_dir: Path, url: str) -> tuple[Path, str]:
    """The file under ``html_dir`` a local URL points to, and its #fragment."""
    parts = urlsplit(url)
    path = unquote(parts.path).lstrip("/")
    if not path or path.endswith("/"):
        path += "index.html"
    return html_dir / path, unquote(parts.fragment)


def _screenshot_name(page: str) -> str:
    return page.removesuffix(".html").replace("/", "__") + ".png"


def check_page(browser: Any, html_dir: Path, base: str, page_path: str,
               artifacts: Path) -> tuple[PageReport, list[str], set[str]]:
    """Open one page; return its report, the local links on it and the element ids it has."""
    from playwright.sync_api import Error as PlaywrightError

    report = PageReport()
    host = urlsplit(base).netloc
    context = browser.new_context(device_scale_factor=1, service_workers="block")

    def route(r: Any) -> None:
        parts = urlsplit(r.request.url)
        if parts.scheme in ("data", "blob", "about") or parts.netloc == host:
            r.continue_()
        else:
            report.failed_requests.append(f"blocked external request {r.request.url}")
            r.abort("blockedbyclient")

    def on_console(msg: Any) -> None:
        # "Failed to load resource" repeats a failed request, which is reported as such
        if msg.type == "error" and not msg.text.startswith("Failed to load resource"):
            where = msg.location.get("url", "")
            report.console_errors.append(f"{msg.text} ({where})" if where else msg.text)

    def on_failed(request: Any) -> None:
        if urlsplit(request.url).netloc == host:
            report.failed_requests.append(f"{request.url} ({request.failure})")

    def on_response(response: Any) -> None:
        if response.status >= 400 and urlsplit(response.url).netloc == host:
            report.failed_requests.append(f"HTTP {response.status} {response.url}")

    def open_at(viewport: dict[str, int]) -> Any:
        """A new tab at this size, loaded, its images and math settled."""
        page = context.new_page()
        page.set_viewport_size(viewport)
        page.on("console", on_console)
        page.on("pageerror", lambda err: report.console_errors.append(f"uncaught {err}"))
        page.on("requestfailed", on_failed)
        page.on("response", on_response)
        page.goto(f"{base}/{page_path}", wait_until="load", timeout=TIMEOUT_MS)
        _evaluate(page, _SETTLE_JS)
        try:
            page.wait_for_load_state("networkidle", timeout=10_000)
        except PlaywrightError:  # a page that keeps polling is not an error by itself
            pass
        return page

    context.route("**/*", route)
    name = _screenshot_name(page_path)
    try:
        page = open_at(DESKTOP)
        seen = _evaluate(page, _MEASURE_JS)
        if page.url != f"{base}/{page_path}":
            report.redirected_to = _short(page.url, base)
        report.images = len(seen["images"])
        report.math_elements = seen["math"]
        for img in seen["images"]:
            if not img["complete"] or img["natural"] == 0:
                report.broken_images.append(_short(img["src"], base))
        report.img_width_ratios = _width_ratios(seen["images"], base)
        report.raw_math = [text[max(0, m.start() - 20): m.end() + 40].replace("\n", " ")
                           for text in seen["text"] for m in RAW_MATH.finditer(text)]
        report.nan_cells = [c for c in seen["cells"] if NAN.search(c)]
        page.screenshot(path=artifacts / "desktop" / name, full_page=True)
        page.close()
        phone = open_at(PHONE)  # a fresh load: resizing a laid-out page leaves sidebars mid-transition
        report.img_width_ratios_phone = _width_ratios(_evaluate(phone, _MEASURE_JS)["images"], base)
        report.phone_overflow_px = _evaluate(
            phone, "() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
        phone.screenshot(path=artifacts / "phone" / name, full_page=True)
    finally:
        context.close()
    for check in PageReport.PROBLEMS:  # the same error on the desktop and the phone load: once
        setattr(report, check, list(dict.fromkeys(getattr(report, check))))
    return report, seen["links"], set(seen["ids"])


def _width_ratios(images: list[dict[str, Any]], base: str) -> dict[str, float]:
    """Rendered width / natural width of each loaded image in the main content."""
    return {_short(img["src"], base): round(img["rendered"] / img["natural"], 3)
            for img in images if img["inMain"] and img["natural"]}


def _evaluate(page: Any, js: str) -> Any:
    """``page.evaluate(js)``, again on the new page after a redirect (``<meta http-equiv=Refresh>``)."""
    from playwright.sync_api import Error as PlaywrightError

    for _ in range(3):
        try:
            return page.evaluate(js)
        except PlaywrightError as err:
            if "context was destroyed" not in str(err):
                raise
            page.wait_for_load_state("load", timeout=TIMEOUT_MS)
    return page.evaluate(js)


def _short(url: str, base: str) -> str:
    return url.removeprefix(base + "/")


def check_book(html_dir: Path, artifacts: Path, chromium: Chromium | None = None) -> dict[str, PageReport]:
    """Open every page of the built book at ``html_dir`` in headless Chromium; write screenshots and
    ``browser_report.json`` to ``artifacts``; return the per-page reports."""
    from playwright.sync_api import sync_playwright

    chromium = chromium or find_chromium()
    html_dir = html_dir.resolve()
    for sub in ("desktop", "phone"):
        (artifacts / sub).mkdir(parents=True, exist_ok=True)
        for old in (artifacts / sub).glob("*.png"):  # screenshots of pages that may be gone
            old.unlink()
    reports: dict[str, PageReport] = {}
    links: dict[str, list[str]] = {}
    ids: dict[Path, set[str]] = {}
    with serve(html_dir) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(chromium.executable),
            args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
            env={**os.environ, **chromium.env} if chromium.env else None)
        try:
            for page_path in book_pages(html_dir):
                reports[page_path], links[page_path], ids[html_dir / page_path] = check_page(
                    browser, html_dir, base, page_path, artifacts)
        finally:
            browser.close()
        for page_path, hrefs in links.items():
            reports[page_path].links_checked = len(set(hrefs))
            for href in dict.fromkeys(hrefs):  # each link once, in page order
                target, fragment = _local_file(html_dir, href)
                if not target.is_file():
                    reports[page_path].broken_links.append(f"{_short(href, base)} (no such file)")
                elif fragment and target in ids and fragment not in ids[target]:
                    reports[page_path].broken_links.append(f"{_short(href, base)} (no such anchor)")
    (artifacts / "browser_report.json").write_text(
        json.dumps({"chromium": f"{chromium.executable} ({chromium.route})",
                    "pages": {p: asdict(r) for p, r in reports.items()}}, indent=2) + "\n")
    return reports


def summary(reports: dict[str, PageReport]) -> str:
    """One line per page: counts of everything checked and the smallest content-image width ratio
    (rendered / natural) at 1280 and 390 px."""
    cols = ("page", "imgs", "math", "console", "requests", "bad img", "raw math", "NaN", "links",
            "bad links", "ratio 1280", "ratio 390", "phone ovf")
    rows = [cols]
    for page, r in reports.items():
        ratios = [min(d.values(), default=None) for d in (r.img_width_ratios, r.img_width_ratios_phone)]
        rows.append((page, r.images, r.math_elements, len(r.console_errors), len(r.failed_requests),
                     len(r.broken_images), len(r.raw_math), len(r.nan_cells), r.links_checked,
                     len(r.broken_links), *("-" if x is None else f"{x:.2f}" for x in ratios),
                     r.phone_overflow_px))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(cols))]
    return "\n".join("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
                     for row in rows)


def problems(reports: dict[str, PageReport]) -> list[str]:
    """'page: check: item' for every failed check."""
    return [f"{page}: {check}: {item}" for page, r in reports.items() for check, item in r.failures()]


@pytest.fixture(scope="module")
def chromium() -> Chromium:
    pytest.importorskip("playwright.sync_api")
    try:
        return find_chromium()
    except ChromiumNotFound as err:
        pytest.skip(str(err))


def test_every_page_renders_cleanly_offline(chromium, smoke_book):
    book_dir, _, _ = smoke_book
    reports = check_book(book_dir / "_build" / "html", ARTIFACTS, chromium)
    print(f"\n{summary(reports)}\nscreenshots and browser_report.json in {ARTIFACTS}")
    assert reports, "no HTML page found"
    assert not problems(reports), "\n".join(["pages with problems:", *problems(reports)])


if __name__ == "__main__":
    found = check_book(Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else ARTIFACTS)
    print(summary(found))
    print("\n".join(problems(found)) or "no problems")
