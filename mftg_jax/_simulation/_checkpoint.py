"""Checkpoints of an ensemble run: the merged statistics after each batch, saved atomically.

A checkpoint holds the number of batches done, the merged statistics (every array leaf of
the accumulator, in order), the histogram edges and a fingerprint of everything that
determines the result (the model's arrays and settings, the key, the spec, the batch size,
the device count, the precision). A run given the same checkpoint path resumes after the
last batch saved and gives bit for bit the result of an uninterrupted run: the batches are
the same programs on the same inputs, merged in the same order. A checkpoint that cannot
be read, or was written for another run, is reported by a warning and the run starts afresh.
"""

import hashlib
import os
import tempfile
import warnings

import jax
import numpy as np


def _hash_tree(h, tree) -> None:
    leaves, treedef = jax.tree.flatten(tree)
    h.update(str(treedef).encode())
    for x in leaves:
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x = jax.random.key_data(x)
        a = np.asarray(x)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(np.ascontiguousarray(a).tobytes())


def fingerprint(model, key, spec, batch_size: int, n_dev: int) -> str:
    """A short hash of everything that determines an ensemble's statistics."""
    h = hashlib.sha256()
    _hash_tree(h, model)
    _hash_tree(h, key)
    h.update(repr(spec).encode())
    h.update(f"{batch_size},{n_dev},{jax.config.read('jax_enable_x64')}".encode())
    return h.hexdigest()[:20]


def default_path(fp: str) -> str:
    """The checkpoint file of fingerprint `fp`, in a folder of the user's own in the temporary
    directory (a shared machine's other users cannot block it)."""
    user = str(os.getuid()) if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
    return os.path.join(tempfile.gettempdir(), f"mftg-simulate-{user}", f"{fp}.npz")


def save(path: str, fp: str, done: int, acc, edges: dict) -> bool:
    """Write the state after `done` batches to `path` atomically (temporary file, replace).

    A checkpoint that cannot be written (a full or read-only disk, a folder of another user)
    does not stop the run: it gives a warning and False, and the run goes on without it."""
    try:
        _save(path, fp, done, acc, edges)
    except OSError as e:
        warnings.warn(
            f"cannot write the checkpoint {path} ({e.strerror or e}); going on without it",
            stacklevel=3,
        )
        return False
    return True


def _save(path: str, fp: str, done: int, acc, edges: dict) -> None:
    payload = {f"acc_{i}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(acc))}
    payload |= {f"edges_{k}": np.asarray(v) for k, v in edges.items()}
    payload |= {"fingerprint": np.asarray(fp), "done": np.asarray(done)}
    write_npz_atomically(path, payload)


def write_npz_atomically(path: str, payload: dict) -> None:
    """Write the arrays of `payload` to the `.npz` file `path` atomically (a temporary file in
    the same folder, then a replace): a reader never sees a half-written file."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **payload)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load(path: str, fp: str, template, edge_names) -> tuple[int, object, dict] | None:
    """`(batches done, accumulator, edges)` from `path`, or None (no file, another run's
    file, or a file that cannot be read: then with a warning, and the run starts afresh)."""
    if not os.path.exists(path):
        return None
    try:
        # Our own file handle: `np.load` leaks its handle when the zip directory is bad.
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as z:
            d = {k: z[k] for k in z.files}
        if str(d["fingerprint"]) != fp:
            return None
        flat, treedef = jax.tree.flatten(template)
        leaves = [d[f"acc_{i}"] for i in range(len(flat))]
        for f, x in zip(flat, leaves):
            if tuple(f.shape) != x.shape or np.dtype(f.dtype) != x.dtype:
                raise ValueError("an array of the wrong shape or dtype")
        acc = jax.tree.unflatten(treedef, leaves)
        edges = {k: d[f"edges_{k}"] for k in edge_names}
        return int(d["done"]), acc, edges
    except Exception as e:  # a corrupted file: BadZipFile, KeyError, EOFError, ValueError ...
        warnings.warn(
            f"ignoring the unreadable checkpoint {path} ({type(e).__name__}: {e}); starting afresh",
            stacklevel=3,
        )
        return None
