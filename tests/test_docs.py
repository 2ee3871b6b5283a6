"""The documentation site builds with `mkdocs build --strict`: every cross-reference in the
public docstrings and the pages resolves, every page is in the nav, no link or anchor is broken.
"""

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
