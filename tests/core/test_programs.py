"""Traced programs kept on disk (`mftg_jax._programs`): the same results as the plain jit,
one entry per program, a second process loads instead of tracing, and everything that cannot
be kept falls back to the plain call. The command line's use of it (two processes):
`tests/cli/test_cli_cache.py`."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mftg_jax import _programs
from mftg_jax._programs import persistent_jit


class Affine(eqx.Module):
    a: jax.Array
    b: jax.Array
    mode: str = eqx.field(static=True, default="plus")


def _apply(m: Affine, x, power: int):
    y = m.a * x**power
    return {"y": y + m.b if m.mode == "plus" else y - m.b, "n": power, "stats": Affine(y, m.b)}


apply = persistent_jit(_apply, name="test_programs.apply")
traces = []


def _counted(x):
    traces.append(1)
    return jnp.sin(x) * 2


counted = persistent_jit(_counted, name="test_programs.counted")


def _with_callback(x):
    jax.debug.callback(lambda v: None, x)
    return x + 1


with_callback = persistent_jit(_with_callback, name="test_programs.with_callback")


def _fails_to_export(x):
    _programs.not_exportable("a runtime check")
    return x * 3


fails_to_export = persistent_jit(_fails_to_export, name="test_programs.fails_to_export")


def _raises(x):
    raise ValueError("x is bad")


raises = persistent_jit(_raises, name="test_programs.raises")

#: This test module's classes count as known code here (the library keys only its own code
#: and its dependencies' by name: code from elsewhere could change without the key changing).
_HERE = Affine.__module__.split(".")[0]


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setattr(_programs, "_KNOWN_CODE", _programs._KNOWN_CODE | {_HERE})
    assert _programs.enable(tmp_path) == str(tmp_path)
    _programs._loaded.clear()
    yield tmp_path
    _programs.enable(None)
    _programs._loaded.clear()


def _entries(folder):
    return sorted(p.name for p in folder.rglob("*.prog"))


def _forget():
    # What a new process sees: nothing loaded, only the folder.
    _programs._loaded.clear()


def test_same_results_as_the_plain_jit_and_one_entry_per_program(folder):
    m = Affine(jnp.array([1.0, 2.0]), jnp.array(0.5))
    x = jnp.array([3.0, -1.0])
    want = _apply(m, x, 2)
    got = apply(m, x, 2)
    assert got["n"] == 2 and isinstance(got["stats"], Affine)
    np.testing.assert_array_equal(got["y"], want["y"])
    np.testing.assert_array_equal(got["stats"].a, want["stats"].a)
    assert len(_entries(folder)) == 1
    _forget()
    again = apply(m, x + 1, 2)  # loaded from disk: new values, same program
    np.testing.assert_array_equal(again["y"], _apply(m, x + 1, 2)["y"])
    assert len(_entries(folder)) == 1
    # Static arguments, static fields and shapes are parts of the key.
    apply(m, x, 3)
    apply(Affine(m.a, m.b, mode="minus"), x, 2)
    apply(Affine(jnp.ones(3), m.b), jnp.ones(3), 2)
    assert len(_entries(folder)) == 4
    np.testing.assert_array_equal(
        apply(Affine(m.a, m.b, mode="minus"), x, 2)["y"],
        _apply(Affine(m.a, m.b, "minus"), x, 2)["y"],
    )


def test_a_loaded_program_is_not_traced_again(folder):
    traces.clear()
    counted(jnp.arange(4.0))
    assert len(traces) == 1
    _forget()
    counted.jitted = eqx.filter_jit(_counted)  # a new process: no in-memory jit cache either
    out = counted(jnp.arange(4.0) + 1)
    assert len(traces) == 1
    np.testing.assert_allclose(out, 2 * np.sin(np.arange(4.0) + 1), rtol=1e-15)


def test_what_cannot_be_kept_falls_back(folder):
    x = jnp.array([1.0, 2.0])
    # A lambda among the static arguments: not keyable.
    f = persistent_jit(lambda g, v: v * 2 if g is not None else v, name="test_programs.lam")
    np.testing.assert_array_equal(f(lambda t: t, x), 2 * x)
    # Under a transformation: the plain jit (nothing written).
    np.testing.assert_array_equal(jax.jit(lambda v: counted(v))(x), 2 * np.sin(x))
    np.testing.assert_array_equal(jax.vmap(counted)(x), 2 * np.sin(x))
    assert _entries(folder) == []
    # A host callback: marked as not exportable and run as the plain jit, here and later.
    np.testing.assert_array_equal(with_callback(x), x + 1)
    assert len(_entries(folder)) == 1
    _forget()
    np.testing.assert_array_equal(with_callback(x), x + 1)
    assert _programs._loaded and all(
        v is _programs._UNEXPORTABLE for v in _programs._loaded.values()
    )


def test_code_from_outside_the_library_is_not_kept(folder, monkeypatch):
    monkeypatch.setattr(_programs, "_KNOWN_CODE", _programs._KNOWN_CODE - {_HERE})
    m = Affine(jnp.array([1.0]), jnp.array(0.5))
    np.testing.assert_array_equal(apply(m, jnp.array([2.0]), 2)["y"], [4.5])
    assert _entries(folder) == []


def test_settings_and_weak_types_are_parts_of_the_key(folder):
    x = jnp.arange(3.0)
    counted(x)
    # (the tests run with rank promotion "raise": "warn" is another setting)
    with jax.numpy_rank_promotion("warn"):
        counted(x)
    assert len(_entries(folder)) == 2
    # A weak input (a Python scalar made an array) is its own program, with its own promotion.
    half = jnp.ones(2, jnp.float16)
    f = persistent_jit(lambda a, b: a * b, name="test_programs.weak")
    weak = jnp.asarray(2.0)
    assert weak.weak_type
    assert f(half, weak).dtype == (half * weak).dtype == jnp.float16
    assert f(half, jnp.asarray(2.0, jnp.float32)).dtype == jnp.float32


def test_runtime_checks_and_errors(folder):
    x = jnp.array([1.0, 2.0])
    # A program that asks not to be kept runs as the plain jit, marked for later processes.
    np.testing.assert_array_equal(fails_to_export(x), 3 * x)
    assert len(_entries(folder)) == 1
    # The function's own error is raised as without the cache, and nothing is marked.
    with pytest.raises(ValueError, match="x is bad"):
        raises(x)
    assert len(_entries(folder)) == 1
    # Keyword arguments: the plain jit.
    np.testing.assert_array_equal(counted(x=x), 2 * np.sin(x))


def test_a_damaged_entry_is_replaced(folder):
    x = jnp.array([0.5, 1.5])
    counted(x)
    (entry,) = folder.rglob("*.prog")
    entry.write_bytes(b"not a program")
    _forget()
    np.testing.assert_allclose(counted(x), 2 * np.sin(x), rtol=1e-15)
    _forget()
    assert counted(x).shape == (2,) and entry.stat().st_size > 100


def test_off_by_default_and_unwritable_folder(tmp_path):
    assert _programs.folder() is None
    target = tmp_path / "file"
    target.write_text("")
    assert _programs.enable(target / "sub") is None  # a path through a file
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    assert _programs.enable(shared) is None  # others may write there: entries are unpickled
    assert _programs.folder() is None
