"""`mftg simulate` resumes a killed run from its checkpoint, bit for bit."""

import json
import os
from pathlib import Path
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from mftg_jax.cli import main

ROOT = Path(__file__).resolve().parents[2]
# 100 batches of 200 paths x 50 steps: long enough to be killed between two checkpoints.
ARGS = ["simulate", "--scenario", "3", "--paths", "20000", "--batch", "200", "--steps", "50"]
TIMING = {"run_seconds", "compile_seconds", "path_steps_per_second"}


def _numbers(out: str) -> dict:
    rep = json.loads(out)
    return {k: v for k, v in rep.items() if k not in TIMING}


def _run_json(argv) -> dict:
    from contextlib import redirect_stdout
    import io

    buf = io.StringIO()
    with redirect_stdout(buf):
        assert main(argv) == 0
    return _numbers(buf.getvalue())


@pytest.fixture(scope="module")
def killed_and_reference(tmp_path_factory):
    """A run in a subprocess, killed (SIGKILL) as soon as its first checkpoint appears, and,
    compiled meanwhile in this process, the uninterrupted run (no checkpoint)."""
    ck = tmp_path_factory.mktemp("resume") / "run.npz"
    log = open(ck.with_suffix(".log"), "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mftg_jax.cli", *ARGS, "--json", "--checkpoint", str(ck)],
        cwd=ROOT,
        env=dict(os.environ, JAX_PLATFORMS="cpu"),
        stdout=subprocess.DEVNULL,
        stderr=log,
    )

    def kill_at_first_checkpoint():
        while not ck.exists() and proc.poll() is None:
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)

    watcher = threading.Thread(target=kill_at_first_checkpoint, daemon=True)
    watcher.start()
    try:
        reference = _run_json([*ARGS, "--json", "--no-checkpoint"])
        watcher.join(300)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    return ck, proc.returncode, reference


def test_killed_run_resumes_bit_for_bit(capsys, monkeypatch, killed_and_reference):
    from mftg_jax._simulation import _checkpoint

    ck, returncode, reference = killed_and_reference
    assert returncode == -signal.SIGKILL, ck.with_suffix(".log").read_text()
    with np.load(ck) as z:
        done = int(z["done"])
    assert 1 <= done < 100, done
    # The same command again: resumes after batch `done` (the checkpoint is really loaded,
    # not ignored for another run's), removes its checkpoint at the end.
    loaded = []
    real_load = _checkpoint.load

    def spy(*a, **kw):
        got = real_load(*a, **kw)
        loaded.append(None if got is None else got[0])
        return got

    monkeypatch.setattr(_checkpoint, "load", spy)
    assert main([*ARGS, "--json", "--checkpoint", str(ck)]) == 0
    assert loaded == [done], loaded
    assert _numbers(capsys.readouterr().out) == reference
    assert not ck.exists()


def _template():
    import jax

    return {"m": jax.ShapeDtypeStruct((3,), np.float64), "n": jax.ShapeDtypeStruct((), np.int32)}


@pytest.mark.parametrize(
    "garbage",
    [b"not a zip file", b"PK\x03\x04" + bytes(64), b""],
    ids=["not-zip", "bad-zip", "empty"],
)
def test_corrupted_checkpoint_is_a_warning_and_a_fresh_start(tmp_path, garbage):
    from mftg_jax._simulation import _checkpoint

    ck = tmp_path / "run.npz"
    ck.write_bytes(garbage)
    with pytest.warns(UserWarning, match="ignoring the unreadable checkpoint"):
        assert _checkpoint.load(str(ck), "fp", _template(), ("p",)) is None


def test_checkpoint_missing_arrays_or_of_another_run(tmp_path):
    from mftg_jax._simulation import _checkpoint

    ck = tmp_path / "run.npz"
    acc = {"m": np.zeros(3), "n": np.int32(7)}
    _checkpoint.save(str(ck), "fp", 4, acc, {"p": np.ones(5)})
    done, got, edges = _checkpoint.load(str(ck), "fp", _template(), ("p",))
    assert done == 4 and int(got["n"]) == 7 and edges["p"].shape == (5,)
    # Written for another run: ignored silently.
    assert _checkpoint.load(str(ck), "other", _template(), ("p",)) is None
    # A matching fingerprint without the arrays (KeyError) or of other shapes: a warning.
    np.savez(ck, fingerprint=np.asarray("fp"), done=np.asarray(4))
    with pytest.warns(UserWarning, match="KeyError"):
        assert _checkpoint.load(str(ck), "fp", _template(), ("p",)) is None
    _checkpoint.save(str(ck), "fp", 4, {"m": np.zeros(4), "n": np.int32(7)}, {"p": np.ones(5)})
    with pytest.warns(UserWarning, match="wrong shape"):
        assert _checkpoint.load(str(ck), "fp", _template(), ("p",)) is None
