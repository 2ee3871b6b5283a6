"""The command line's persistent compilation cache: on by default in the user's cache folder,
off on request, and JAX's own variable respected; traced programs kept beside it."""

import os
import subprocess
import sys

import pytest

from mftg_jax.cli._cache import cache_folder, PROGRAMS


@pytest.fixture
def clean_env(monkeypatch):
    for k in ("MFTG_COMPILE_CACHE", "JAX_COMPILATION_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(k, raising=False)
    return monkeypatch


def test_cache_folder_rules(clean_env, tmp_path):
    home = os.path.expanduser("~")
    assert cache_folder() == os.path.join(home, ".cache", "mftg_jax", "jax")
    clean_env.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_folder() == str(tmp_path / "mftg_jax" / "jax")
    clean_env.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "jax"))
    assert cache_folder() == str(tmp_path / "jax")
    clean_env.setenv("MFTG_COMPILE_CACHE", str(tmp_path / "mine"))
    assert cache_folder() == str(tmp_path / "mine")
    assert cache_folder(disabled=True) is None
    for off in ("0", "off", "No", "FALSE"):
        clean_env.setenv("MFTG_COMPILE_CACHE", off)
        assert cache_folder() is None


def test_cli_writes_the_cache_by_default(clean_env, tmp_path):
    # A fresh process with only XDG_CACHE_HOME set: the command fills the user's cache folder;
    # with --no-compile-cache nothing is written.
    # A second process loads the traced programs the first kept (writes none) and prints the
    # same report.
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "xdg"))
    cmd = [sys.executable, "-m", "mftg_jax", "solve", "--scenario", "2", "--json"]
    run = dict(env=env, check=True, capture_output=True, text=True, timeout=300)
    first = subprocess.run(cmd, **run)
    folder = tmp_path / "xdg" / "mftg_jax" / "jax"
    written = list(folder.iterdir())
    assert len(written) >= 3
    programs = {p: p.stat().st_mtime_ns for p in (folder / PROGRAMS).rglob("*.prog")}
    names = {p.name.split("-")[0] for p in programs}
    assert {"solve_ode", "price._certificate._certify", "price._stationary._stationary"} <= names
    second = subprocess.run(cmd, **run)
    assert second.stdout == first.stdout
    assert {p: p.stat().st_mtime_ns for p in (folder / PROGRAMS).rglob("*.prog")} == programs
    env["XDG_CACHE_HOME"] = str(tmp_path / "off")
    off = [sys.executable, "-m", "mftg_jax", "--no-compile-cache", "--version"]
    out = subprocess.run(off, env=env, check=True, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().startswith("mftg_jax ")
    assert not (tmp_path / "off" / "mftg_jax").exists()
