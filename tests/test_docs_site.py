"""The documentation site (docs/mkdocs.yml): it builds with ``--strict``, its pages include the
kernels' source and the API rendered from our docstrings, and a headless browser draws it.

The expected strings are read from the repository (the kernels' function names, a docstring's first
line, the changelog's title), never written here, so the checks follow the code.
"""
import ast
import html
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "docs" / "mkdocs.yml"
CHROMIUM = Path("/usr/bin/chromium")


def _text(page):
    """The visible text of an HTML page: tags dropped, entities decoded, whitespace collapsed."""
    raw = re.sub(r"<[^>]+>", "", page.read_text(encoding="utf-8"))
    return re.sub(r"\s+", " ", html.unescape(raw))


def _public_functions(path):
    """Names of the module-level functions of a Python file that do not start with ``_``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [n.name for n in tree.body if isinstance(n, ast.FunctionDef) and not n.name.startswith("_")]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site built into a temporary folder with ``mkdocs build --strict`` (warnings fail)."""
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (pip install -e '.[docs]')")
    pytest.importorskip("mkdocstrings", reason="mkdocstrings is not installed (pip install -e '.[docs]')")
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    # started from another directory: the config must find the repository by itself
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(CONFIG), "-d", str(out)],
                          cwd=out, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    return out


@pytest.mark.parametrize("page", [
    "index.html", "ops/convolution.html", "ops/pooling.html", "ops/resample.html", "ops/roi.html",
    "ops/normalization.html", "ops/losses.html", "architectures.html", "inside.html", "testing.html",
    "benchmarks/index.html", "CHANGELOG.html",
])
def test_page_exists(site, page):
    assert (site / page).is_file(), f"{page} missing from the built site"


@pytest.mark.parametrize("family", ["pool", "resample", "roi", "nms"])
def test_kernel_source_is_included(site, family):
    """Every public function of kernels/cpu/<family>.py and every __global__ kernel of
    kernels/cuda/<family>.cu appears on the family's page (included, not copied)."""
    page = {"pool": "pooling", "resample": "resample", "roi": "roi", "nms": "roi"}[family]
    text = _text(site / "ops" / f"{page}.html")
    cpu = _public_functions(ROOT / "kernels" / "cpu" / f"{family}.py")
    cuda = re.findall(r"__global__\s+void\s+(\w+)", (ROOT / "kernels" / "cuda" / f"{family}.cu").read_text())
    ref = _public_functions(ROOT / "kernels" / "reference" / f"{family}.py")
    assert cpu and cuda and ref
    for name in cpu + cuda + ref:
        assert f"def {name}(" in text or f"void {name}(" in text, f"{name} not on ops/{page}.html"


def test_api_is_rendered_from_docstrings(site):
    conv = importlib.import_module("minicnn.functional.conv")
    summary = importlib.import_module("minicnn.summary")  # the module (minicnn.summary is the function)
    for page, fn in [("ops/convolution.html", conv.conv2d), ("inside.html", summary.summary)]:
        first = " ".join(fn.__doc__.strip().split("\n\n")[0].split())  # the docstring's first paragraph
        first = re.sub(r"``([^`]*)``", r"\1", first)  # rendered as <code>, whose text we compare
        assert first in _text(site / page), f"{fn.__name__}'s docstring not rendered on {page}"
        assert f'id="{fn.__module__}.{fn.__name__}"' in (site / page).read_text(), fn.__name__


def test_math_tabs_and_included_markdown(site):
    pooling = (site / "ops" / "pooling.html").read_text()
    assert 'class="arithmatex"' in pooling  # LaTeX handed to MathJax
    assert pooling.count('class="tabbed-set') >= 1 and "Numba (cpu)" in pooling
    title = (ROOT / "CHANGELOG.md").read_text().splitlines()[0].lstrip("# ").strip()
    assert title in _text(site / "CHANGELOG.html")
    bench = (ROOT / "benchmarks" / "README.md").read_text().splitlines()[0].lstrip("# ").strip()
    assert bench in _text(site / "benchmarks" / "index.html")
    # the relative links inside the included files point at pages of the site
    assert 'href="benchmarks/index.html"' in (site / "CHANGELOG.html").read_text()


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install -y chromium)")
def test_headless_browser_draws_index(site, tmp_path):
    png = tmp_path / "index.png"
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
           f"--screenshot={png}", "--window-size=1200,900", (site / "index.html").as_uri()]
    subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert png.is_file() and png.stat().st_size > 0, "chromium wrote no screenshot"
    from matplotlib.image import imread

    img = imread(png)[..., :3]
    assert img.shape[:2] == (900, 1200)
    colours = np.unique(img.reshape(-1, 3), axis=0)
    assert len(colours) > 16, f"screenshot is nearly blank ({len(colours)} colours)"
    # Material's header bar (indigo) spans the top of the page; the body below is mostly white text area
    top = img[5:40, 300:900].reshape(-1, 3).mean(axis=0)
    assert top[2] > top[0] + 0.2, f"no blue header bar at the top (mean RGB {top})"
    assert (img.min(axis=2) < 0.5).mean() > 0.01, "no dark text drawn"
