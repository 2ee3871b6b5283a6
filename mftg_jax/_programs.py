r"""Traced programs kept on disk, so that a later process skips tracing and lowering.

JAX's persistent compilation cache keeps compiled programs, but every process still traces
and lowers its Python functions to find the program's cache key, which costs most of a short
command-line run once compilation is cached. [`persistent_jit`][] wraps a function like
`equinox.filter_jit` and, while a folder is set ([`enable`][]), also keeps the traced and
lowered program (`jax.export`, serialised StableHLO) in that folder; a later process with the
same inputs loads it instead of tracing, and the compilation cache then supplies the compiled
program.

An entry is keyed on everything the program depends on: the function's name, a hash of the
library's source files, the JAX version, the backend, the `jax_enable_x64` setting, the
structure and static (non-array) parts of the arguments (pickled, so that functions count by
their qualified names and modules by their fields) and every array argument's shape and
dtype. An argument that cannot be pickled (a lambda, a local function), a program that
cannot be exported (one with host callbacks), an argument under a transformation (`jit`,
`vmap`, `grad`), arrays on several devices, or an entry that cannot be read or written:
each falls back to the plain `filter_jit` call, which gives the same results, only slower.

The cache is off unless [`enable`][] is called (the command line does, beside the
compilation cache); the library alone never writes to disk.
"""

from collections.abc import Callable
import contextlib
import copyreg
import functools
import hashlib
import io
import os
from pathlib import Path
import pickle
import shutil
import tempfile
import threading
import time
from typing import Any

import equinox as eqx
import jax

#: Bump to invalidate every entry written by an earlier layout of this module.
_FORMAT = 1
#: Packages whose code ends up in the traced programs: their versions are part of the key.
_DEPENDENCIES = ("jax", "jaxlib", "diffrax", "equinox", "lineax", "optimistix", "optax", "numpy")

_state = threading.local()
#: Marks a program that cannot be kept on disk (host callbacks, outputs that do not pickle).
_UNEXPORTABLE = object()
_folder: str | None = None
_loaded: dict[str, Any] = {}
_source_hash: str | None = None


def _missing():
    from equinox._module._flatten import MISSING

    return MISSING


def _register_sentinels() -> None:
    # equinox flattens a module with a singleton placeholder in its static data; unpickled,
    # it must be that singleton again (equinox compares it by identity).
    try:
        from equinox._module._flatten import MISSING
    except ImportError:  # another equinox layout: modules then pickle without it
        return
    copyreg.pickle(type(MISSING), lambda _: (_missing, ()))


_register_sentinels()


def enable(folder: str | os.PathLike | None) -> str | None:
    """Keep traced programs in `folder` (created if missing); `None` turns this off.

    Returns the folder, or `None` when it is off or cannot be created or written."""
    global _folder
    if folder is None:
        _folder = None
        return None
    folder = os.fspath(folder)
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        st = os.stat(folder)
    except OSError:
        _folder = None
        return None
    # Entries are unpickled: only a folder of this user that nobody else can write to.
    private = st.st_uid == os.getuid() and not st.st_mode & 0o022
    _folder = folder if private and os.access(folder, os.W_OK) else None
    return _folder


def folder() -> str | None:
    """The folder traced programs are kept in, or `None` when this is off."""
    return _folder


def source_hash() -> str:
    """A hash of every source file of the library (any change to the code changes it)."""
    global _source_hash
    if _source_hash is None:
        h = hashlib.sha256()
        root = Path(__file__).resolve().parent
        for p in sorted(root.rglob("*.py")):
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
        _source_hash = h.hexdigest()
    return _source_hash


class NotExportable(Exception):
    """Raised while tracing a program for the disk cache by code that needs a runtime check
    (a host callback): the program is then run by the plain jit, never kept."""


def exporting() -> bool:
    """True while a program is being traced for the disk cache."""
    return getattr(_state, "exporting", False)


def not_exportable(why: str) -> None:
    """Abort keeping the program being traced (see [`NotExportable`][]); a no-op otherwise."""
    if exporting():
        raise NotExportable(why)


def _version_folder() -> Path:
    return Path(_folder) / source_hash()[:16]


#: Folders of other versions of the library untouched for this long are removed (two
#: installations sharing one cache folder keep each other's entries).
STALE_SECONDS = 7 * 24 * 3600


def _remove_other_versions(keep: Path) -> None:
    now = time.time()
    for old in keep.parent.iterdir():
        try:
            stale = now - old.stat().st_mtime > STALE_SECONDS
        except OSError:
            continue
        if old.is_dir() and old != keep and len(old.name) == 16 and stale:
            shutil.rmtree(old, ignore_errors=True)


#: Modules whose functions and classes may appear among the static arguments of a kept
#: program: their code is covered by the source hash or by a version in the key. Anything
#: else (a user's vector field, a class defined in a script) could change without changing
#: the key, so a call with it is not kept.
_KNOWN_CODE = frozenset(
    ("mftg_jax", "builtins", "collections", "functools", "operator", "enum", "typing", "abc")
    + _DEPENDENCIES
    + ("jaxtyping", "ml_dtypes", "_operator", "_functools", "_collections", "copyreg")
)


class _KeyPickler(pickle.Pickler):
    def reducer_override(self, obj):
        kind = obj if isinstance(obj, type) else type(obj)
        module = getattr(obj, "__module__", None) if callable(obj) else kind.__module__
        root = (module or "").split(".")[0]
        if root not in _KNOWN_CODE:
            raise pickle.PicklingError(f"{module}.{getattr(obj, '__qualname__', kind)}")
        return NotImplemented


def _canonical_pickle(obj) -> bytes:
    """`obj` pickled without the memo, so that equal objects give equal bytes (with the memo
    the bytes depend on which equal strings happen to be one object). Functions and classes
    pickle by qualified name; a lambda, a local function or code from outside the library
    and its dependencies fails."""
    buf = io.BytesIO()
    pickler = _KeyPickler(buf, protocol=4)
    pickler.fast = True
    pickler.dump(obj)
    return buf.getvalue()


def _weak(x) -> bool:
    return bool(getattr(x, "weak_type", False))


def _is_array(x) -> bool:
    return eqx.is_array(x)


#: JAX settings that change what a function traces to: their values are part of the key.
_SETTINGS = (
    "jax_enable_x64",
    "jax_threefry_partitionable",
    "jax_default_prng_impl",
    "jax_default_matmul_precision",
    "jax_numpy_dtype_promotion",
    "jax_numpy_rank_promotion",
    "jax_debug_nans",
    "jax_debug_infs",
    "jax_enable_checks",
    "jax_softmax_custom_jvp",
)
_versions: str | None = None


def _dependency_versions() -> str:
    global _versions
    if _versions is None:
        from importlib.metadata import PackageNotFoundError, version

        parts = []
        for pkg in _DEPENDENCIES:
            try:
                parts.append(f"{pkg}={version(pkg)}")
            except PackageNotFoundError:
                parts.append(f"{pkg}=none")
        _versions = ",".join(parts)
    return _versions


def _settings() -> str:
    return ",".join(f"{k}={getattr(jax.config, k, None)!r}" for k in _SETTINGS)


def _entry_key(name: str, static_blob: bytes, leaves) -> str:
    h = hashlib.sha256()
    for part in (
        f"format={_FORMAT}",
        name,
        source_hash(),
        _dependency_versions(),
        jax.default_backend(),
        _settings(),
    ):
        h.update(part.encode())
        h.update(b"\0")
    h.update(static_blob)
    for x in leaves:
        h.update(f"{x.shape}|{x.dtype}|{_weak(x)}".encode())
    return h.hexdigest()


def _plain(leaves) -> bool:
    """Concrete arrays on at most one device (nothing traced, nothing sharded)."""
    for x in leaves:
        if isinstance(x, jax.core.Tracer):
            return False
        sharding = getattr(x, "sharding", None)
        if sharding is not None and len(sharding.device_set) > 1:
            return False
    return True


def persistent_jit(fn: Callable | None = None, *, name: str | None = None):
    """`equinox.filter_jit(fn)`, whose traced program is also kept on disk (module docstring).

    Use as `@persistent_jit` or `persistent_jit(fn, name=...)`.

    **Arguments:**

    - `fn`: the function; arrays in its arguments are traced, everything else is static.
    - `name`: part of the key and of the file name; default `module.qualname` of `fn`.
    """
    if fn is None:
        return functools.partial(persistent_jit, name=name)
    return _PersistentJit(fn, name or f"{fn.__module__}.{fn.__qualname__}")


class _PersistentJit:
    def __init__(self, fn: Callable, name: str):
        self.fn = fn
        self.name = name
        self.jitted = eqx.filter_jit(fn)
        functools.update_wrapper(self, fn)

    def __call__(self, *args, **kwargs):
        if _folder is None or kwargs or jax.config.jax_disable_jit:
            return self.jitted(*args, **kwargs)
        dynamic, static = eqx.partition(args, _is_array)
        leaves, treedef = jax.tree.flatten(dynamic)
        if not _plain(leaves):
            return self.jitted(*args)
        try:
            static_blob = _canonical_pickle((treedef, static))
        except Exception:  # a lambda or a local function: it could hide its closure
            return self.jitted(*args)
        key = _entry_key(self.name, static_blob, leaves)
        program = _loaded.get(key) or self._load(key)
        if program is None:
            program = self._export(key, treedef, static, leaves)
        if program is _UNEXPORTABLE:
            return self.jitted(*args)
        call, out_tree, out_static = program
        try:
            out = call(*leaves)
        except Exception:
            # E.g. inputs committed to another platform than the one exported for: the plain
            # call (which raises the same error again if the error is the function's own).
            return self.jitted(*args)
        return eqx.combine(jax.tree.unflatten(out_tree, out), out_static)

    def _path(self, key: str) -> Path:
        # One subfolder per version of the library's source: the folders of other versions
        # are removed when this one is first written, so stale programs do not pile up.
        return _version_folder() / f"{self.name.removeprefix('mftg_jax.')}-{key[:32]}.prog"

    def _load(self, key: str):
        path = self._path(key)
        try:
            with open(path, "rb") as f:
                blob = f.read()
            header, serialized = pickle.loads(blob)
            if header["key"] != key:
                return None
            if header.get("unexportable"):
                _loaded[key] = _UNEXPORTABLE
                return _UNEXPORTABLE
            out_tree, out_static = pickle.loads(header["out"])
            exported = jax.export.deserialize(serialized)
        except FileNotFoundError:
            return None
        except Exception:  # an unreadable or foreign entry: trace again and replace it
            return None
        program = (jax.jit(exported.call), out_tree, out_static)
        _loaded[key] = program
        return program

    def _export(self, key: str, treedef, static, leaves):
        holder = {}

        def flat(*xs):
            args = eqx.combine(jax.tree.unflatten(treedef, xs), static)
            holder["in_fn"] = True
            out = self.fn(*args)
            holder["in_fn"] = False
            out_dynamic, out_static = eqx.partition(out, _is_array)
            out_leaves, out_tree = jax.tree.flatten(out_dynamic)
            holder["out"] = (out_tree, out_static)
            return out_leaves

        avals = [jax.ShapeDtypeStruct(x.shape, x.dtype, weak_type=_weak(x)) for x in leaves]
        _state.exporting = True
        try:
            exported = jax.export.export(jax.jit(flat))(*avals)
            out_blob = pickle.dumps(holder["out"], protocol=4)
            serialized = exported.serialize()
            # The program of this process is the one later processes load (the same types).
            exported = jax.export.deserialize(serialized)
        except NotExportable:
            return self._mark(key)
        except Exception:
            if holder.get("in_fn"):
                # The function's own error: the plain call raises it, with its own message.
                return _UNEXPORTABLE
            # Host callbacks, outputs that do not pickle: the plain call, in this process and
            # (the marker written) in later ones, without trying again.
            return self._mark(key)
        finally:
            _state.exporting = False
        out_tree, out_static = holder["out"]
        program = (jax.jit(exported.call), out_tree, out_static)
        _loaded[key] = program
        self._write(key, {"key": key, "out": out_blob}, serialized)
        return program

    def _mark(self, key: str):
        _loaded[key] = _UNEXPORTABLE
        self._write(key, {"key": key, "unexportable": True}, b"")
        return _UNEXPORTABLE

    def _write(self, key: str, header: dict, serialized) -> None:
        path = self._path(key)
        buf = io.BytesIO()
        pickle.dump((header, bytes(serialized)), buf, protocol=4)
        try:
            if not path.parent.exists():
                _remove_other_versions(path.parent)
                path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        except OSError:
            return
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(buf.getvalue())
            os.replace(tmp, path)  # atomic: a concurrent reader sees all of it or nothing
        except OSError:
            with contextlib.suppress(OSError):
                os.remove(tmp)
