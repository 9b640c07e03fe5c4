"""Find a Chromium for the browser tests without Playwright's own download (its CDN may be blocked).

Tried in order:

1. ``RLNTP_CHROMIUM``: a path to a Chromium executable (or the word ``npm`` to force route 3);
2. a system Chromium on ``PATH`` (``chromium``, ``chromium-browser``, ``google-chrome``);
3. the npm package ``@sparticuz/chromium`` (a brotli-compressed headless Chromium), fetched once with
   ``npm pack`` and unpacked into ``~/.cache/rlntp/chromium/<version>/`` (``$XDG_CACHE_HOME`` is
   honoured); later runs reuse the unpacked copy.

``python tests/chromium.py [--npm]`` prints the executable found and how long finding it took.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

SPARTICUZ_VERSION = "153.0.0"
SPARTICUZ = f"@sparticuz/chromium@{SPARTICUZ_VERSION}"
SYSTEM_NAMES = ("chromium", "chromium-browser", "google-chrome")
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rlntp" / "chromium"

# Decompress each brotli file given as `src=dst` arguments, streaming (node's zlib has brotli built in).
_NODE_UNBROTLI = """
const fs = require('fs'), zlib = require('zlib'), {pipeline} = require('stream/promises');
Promise.all(process.argv.slice(1).map(a => {
  const [src, dst] = a.split('=');
  return pipeline(fs.createReadStream(src), zlib.createBrotliDecompress(), fs.createWriteStream(dst));
})).catch(e => { console.error(e.message); process.exit(1); });
"""


class ChromiumNotFound(RuntimeError):
    """No usable Chromium; the message says what was tried."""


@dataclass(frozen=True)
class Chromium:
    """A Chromium executable, how it was found, and environment variables it needs to launch."""

    executable: Path
    route: str
    env: dict[str, str] = field(default_factory=dict)


def find_chromium(system: bool = True, npm: bool = True, cache: Path = CACHE) -> Chromium:
    """The first usable Chromium of the routes above; ``system=False`` skips ``PATH``."""
    tried = []
    explicit = os.environ.get("RLNTP_CHROMIUM", "").strip()
    if explicit == "npm":
        system = False
    elif explicit:
        path = Path(explicit).expanduser()
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise ChromiumNotFound(f"RLNTP_CHROMIUM={explicit} is not an executable file")
        return Chromium(path, "RLNTP_CHROMIUM")
    else:
        tried.append("RLNTP_CHROMIUM (not set)")
    if system:
        for name in SYSTEM_NAMES:
            if found := shutil.which(name):
                return Chromium(Path(found), f"PATH ({name})")
        tried.append(f"PATH ({', '.join(SYSTEM_NAMES)}: none found)")
    else:
        tried.append("PATH (skipped)")
    if npm:
        try:
            return sparticuz_chromium(cache)
        except (ChromiumNotFound, OSError, subprocess.SubprocessError, tarfile.TarError) as err:
            tried.append(f"npm {SPARTICUZ} into {cache} ({err})")
    raise ChromiumNotFound("no Chromium found; tried " + "; ".join(tried))


def sparticuz_chromium(cache: Path = CACHE) -> Chromium:
    """Chromium from the npm package ``@sparticuz/chromium``, unpacked once into ``cache``."""
    dest = cache / SPARTICUZ_VERSION
    if not (dest / "chromium").is_file():
        for tool in ("npm", "node"):
            if shutil.which(tool) is None:
                raise ChromiumNotFound(f"`{tool}` is not on PATH")
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache, prefix=".unpack-") as tmp:
            staging = Path(tmp) / "chromium"
            _unpack_sparticuz(Path(tmp), staging, dest)
            try:
                staging.rename(dest)  # atomic: a half-unpacked copy is never seen
            except OSError:
                if not (dest / "chromium").is_file():  # not a concurrent run that won the race
                    raise
    return Chromium(dest / "chromium", f"npm {SPARTICUZ}", _launch_env(dest))


def _unpack_sparticuz(tmp: Path, staging: Path, dest: Path) -> None:
    """``npm pack`` the package into ``tmp``, then decompress its binary and libraries into ``staging``
    (renamed to ``dest`` afterwards)."""
    out = subprocess.run(["npm", "pack", SPARTICUZ, "--pack-destination", str(tmp), "--fetch-retries=1",
                          "--fetch-timeout=60000", "--no-audit", "--no-fund", "--loglevel=error"],
                         cwd=tmp, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        lines = (out.stderr.strip() or out.stdout.strip() or "no output").splitlines()
        raise ChromiumNotFound(f"`npm pack {SPARTICUZ}` failed: {' '.join(lines[:3])}")
    (tgz,) = tmp.glob("*.tgz")
    with tarfile.open(tgz) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith("package/bin/") and m.isfile()]
        _extract(tar, tmp, members)
    tgz.unlink()
    staging.mkdir()
    bins = tmp / "package" / "bin"
    jobs = {"chromium.br": staging / "chromium", "swiftshader.tar.br": tmp / "swiftshader.tar",
            "fonts.tar.br": tmp / "fonts.tar", "al2023.tar.br": tmp / "al2023.tar"}
    args = [f"{bins / src}={dst}" for src, dst in jobs.items() if (bins / src).is_file()]
    out = subprocess.run(["node", "-e", _NODE_UNBROTLI, *args], capture_output=True, text=True,
                         timeout=600)
    if out.returncode != 0:
        raise ChromiumNotFound(f"brotli decompression failed: {out.stderr.strip()}")
    (staging / "chromium").chmod(0o755)
    # swiftshader (software GL) next to the binary, as the package does; fonts and the NSS libraries
    # (needed only where the system lacks them) in their own folders
    for name, where in (("swiftshader.tar", staging), ("fonts.tar", staging / "fonts"),
                        ("al2023.tar", staging)):
        if (tmp / name).is_file():
            with tarfile.open(tmp / name) as tar:
                _extract(tar, where, tar.getmembers())
    (staging / "fonts.conf").write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "fonts.dtd">\n<fontconfig>\n'
        '  <include ignore_missing="yes">/etc/fonts/fonts.conf</include>\n'
        f"  <dir>{dest / 'fonts'}</dir>\n  <cachedir>{dest / 'fontcache'}</cachedir>\n"
        "</fontconfig>\n")


def _extract(tar: tarfile.TarFile, where: Path, members: list[tarfile.TarInfo]) -> None:
    """Extract ``members``, refusing paths that leave ``where`` where Python can check that."""
    if hasattr(tarfile, "data_filter"):
        tar.extractall(where, members=members, filter="data")
    else:  # Python < 3.11.4
        for m in members:
            if m.name.startswith("/") or ".." in Path(m.name).parts:
                raise ChromiumNotFound(f"unsafe path in archive: {m.name}")
        tar.extractall(where, members=members)


def _launch_env(dest: Path) -> dict[str, str]:
    """Environment for the unpacked Chromium: its fonts, and its NSS libraries where the system's
    are missing (``ldd`` reports them "not found")."""
    env = {"FONTCONFIG_FILE": str(dest / "fonts.conf")}
    if (dest / "lib").is_dir() and shutil.which("ldd"):
        out = subprocess.run(["ldd", str(dest / "chromium")], capture_output=True, text=True)
        if "not found" in out.stdout:
            env["LD_LIBRARY_PATH"] = os.pathsep.join(
                p for p in (str(dest / "lib"), os.environ.get("LD_LIBRARY_PATH")) if p)
    return env


if __name__ == "__main__":
    start = time.perf_counter()
    found = find_chromium(system="--npm" not in sys.argv)
    print(f"{found.executable} via {found.route} in {time.perf_counter() - start:.1f} s; env {found.env}")
