"""The documentation site builds with `mkdocs build --strict`: every cross-reference in the
public docstrings and the pages resolves, every page is in the nav, no link or anchor is broken.
"""

import importlib
import importlib.util
import os
from pathlib import Path
import subprocess
import sys

import pytest

# The repository root: the nearest folder above this file with mkdocs.yml (the test may move).
ROOT = next(p for p in Path(__file__).resolve().parents if (p / "mkdocs.yml").is_file())


@pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None,
    reason="mkdocs is not installed (pip install -e '.[dev]')",
)
def test_mkdocs_build_strict(tmp_path):
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file"]
    cmd += [str(ROOT / "mkdocs.yml"), "--site-dir", str(tmp_path / "site")]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    log = proc.stdout + proc.stderr
    problems = [line for line in log.splitlines() if line.startswith(("WARNING", "ERROR"))]
    assert proc.returncode == 0, "mkdocs build --strict failed:\n" + "\n".join(problems or [log])
    for page in ("index.html", "api/price/index.html", "api/lq/index.html", "model/index.html"):
        assert (tmp_path / "site" / page).is_file(), page


def test_every_public_name_has_an_api_entry():
    # A new public name must be added to its API page (the strict build only catches names
    # that were removed or renamed, not names that were never listed).
    import types

    import mftg_jax

    text = "\n".join(p.read_text() for p in (ROOT / "docs" / "api").glob("*.md"))
    documented = {line.split(":::", 1)[1].split()[0] for line in text.splitlines() if ":::" in line}
    missing = []
    for mod_name in ("mftg_jax", "mftg_jax.price", "mftg_jax.lq", "mftg_jax.calibration",
                     "mftg_jax.slides", "mftg_jax.tracking", "mftg_jax.dispatch",
                     "mftg_jax.mining", "mftg_jax.insurance", "mftg_jax.auction",
                     "mftg_jax.frequency"):  # fmt: skip
        mod = importlib.import_module(mod_name)
        for name in dir(mod):
            obj = getattr(mod, name)
            if name.startswith("_") or isinstance(obj, types.ModuleType):
                continue
            # The price-game names re-exported at the top level are documented once, on the
            # price page.
            owner = getattr(obj, "__module__", "") or ""
            candidates = {f"{mod_name}.{name}"}
            if mod_name == "mftg_jax" and owner.startswith("mftg_jax.price"):
                candidates.add(f"mftg_jax.price.{name}")
            if not candidates & documented:
                missing.append(f"{mod_name}.{name}")
    del mftg_jax
    assert not missing, f"public names without an API entry in docs/api/: {missing}"


def _notebook_hook():
    spec = importlib.util.spec_from_file_location(
        "notebook_pages", ROOT / "docs/hooks/notebooks.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_notebook_pages_show_outputs():
    # An executed notebook's page carries its text outputs and its figures (as PNG files).
    import base64

    png = b"\x89PNG\r\n\x1a\nfake"
    nb = {
        "cells": [
            {"cell_type": "markdown", "source": ["# Title\n", "Some text."]},
            {
                "cell_type": "code",
                "source": "print(1 + 1)\nfig",
                "outputs": [
                    {"output_type": "stream", "name": "stdout", "text": ["2\n"]},
                    {
                        "output_type": "display_data",
                        "data": {"image/png": base64.b64encode(png).decode()},
                    },
                    {"output_type": "execute_result", "data": {"text/plain": "'```x'"}},
                ],
            },
        ]
    }
    text, images = _notebook_hook().notebook_to_markdown(nb, "demo")
    assert text.startswith("# Title\nSome text.")
    assert "```python\nprint(1 + 1)\nfig\n```" in text
    assert "```\n2\n```" in text
    assert "![figure 1](demo_1.png)" in text and images == {"demo_1.png": png}
    assert "````\n'```x'\n````" in text  # a fence longer than any run of backticks inside
    assert "without its outputs" not in text
    nb["cells"][1]["outputs"] = []
    assert "without its outputs" in _notebook_hook().notebook_to_markdown(nb, "demo")[0]


def test_every_notebook_is_a_page():
    pages = {p.stem for p in (ROOT / "notebooks").glob("*.ipynb")}
    nav = (ROOT / "mkdocs.yml").read_text()
    assert pages and all(f"notebooks/{name}.md" in nav for name in pages)
