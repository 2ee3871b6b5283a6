"""Checkpoints of a calibration run: a fingerprint of the data and settings, atomic saves,
loads that ignore files written for other runs, and optimiser states as numbered arrays."""

import hashlib
import os
import tempfile
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from .._simulation._checkpoint import write_npz_atomically


def _hash_tree(h, tree) -> None:
    # The structure (with every static setting, Python floats at full precision) and then
    # the bytes of every array leaf: `repr` would abbreviate arrays to their shapes.
    leaves, treedef = jax.tree.flatten(tree)
    h.update(str(treedef).encode())
    for x in leaves:
        a = np.asarray(x)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(np.ascontiguousarray(a).tobytes())


def fingerprint(series, calibrator, param) -> str:
    """A short hash of the training data, the settings and the parametrisation."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(series.prices).tobytes())
    h.update(str(series.times[0]).encode())
    _hash_tree(h, calibrator)
    _hash_tree(h, param)
    h.update(str(jnp.zeros(()).dtype).encode())
    return h.hexdigest()[:16]


def default_checkpoint(series, calibrator) -> str:
    """A checkpoint path keyed on the data and the settings (in the temporary directory)."""
    fp = fingerprint(series, calibrator, calibrator.parametrisation(series))
    return os.path.join(tempfile.gettempdir(), "mftg-calibrate", f"{fp}.npz")


def save(path: str, payload: dict) -> None:
    """Write `payload` (arrays) to `path` atomically (a temporary file, then a replace)."""
    write_npz_atomically(path, payload)


def load(path: str | None, fingerprint: str) -> dict | None:
    """The checkpoint at `path`, or None when there is none, it was written for another
    fingerprint, or it cannot be read (then with a warning: the run starts afresh)."""
    if not path or not os.path.exists(path):
        return None
    try:
        # Our own file handle: `np.load` leaks its handle when the zip directory is bad.
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as z:
            d = {k: z[k] for k in z.files}
        if str(d["fingerprint"]) != fingerprint:
            return None
        int(d["seconds"])
    except Exception as e:  # a corrupted file: BadZipFile, KeyError, EOFError, ValueError ...
        warnings.warn(
            f"ignoring the unreadable checkpoint {path} ({type(e).__name__}: {e}); starting afresh",
            stacklevel=2,
        )
        return None
    return d


def state_payload(state, prefix: str = "state") -> dict:
    """The array leaves of an optimiser state, as `{prefix}_0, {prefix}_1, ...`."""
    return {f"{prefix}_{i}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(state))}


def state_leaves(d: dict, prefix: str = "state") -> list:
    n = sum(1 for k in d if k.startswith(f"{prefix}_"))
    return [d[f"{prefix}_{i}"] for i in range(n)]


def restore(template, leaves: list):
    """`template`'s structure with the saved `leaves` (in `template`'s dtypes and weak types).

    A weakly typed scalar of the template (optax keeps some) is restored weakly typed: a
    strongly typed one would change the traced signature of the optimiser step, which would
    then compile again on every resume."""
    flat, treedef = jax.tree.flatten(template)
    if len(flat) != len(leaves):
        raise ValueError("checkpoint does not match the optimiser state")
    return jax.tree.unflatten(treedef, [_like(f, x) for f, x in zip(flat, leaves)])


def _like(f, x):
    x = jnp.asarray(x, dtype=f.dtype)
    if getattr(f, "weak_type", False) and x.ndim == 0:
        # A Python scalar is weakly typed, of the default dtype of its kind.
        weak = jnp.asarray(x.item())
        if weak.dtype == f.dtype:
            return weak
    return x
