"""The package's import graph follows the dependency direction core -> families -> slides/cli.

Every module's imports are read with `ast` (no import is executed) and resolved to package
modules. The rules:

- a module of the shared core (the top-level private modules, `_noise/`, `_simulation/`,
  `_certify/`) imports no family, no `slides`, no `cli`;
- a family (`price`, `lq`, `calibration`) imports no `slides` and no `cli`;
- a module outside a family imports that family's public surface only (`mftg_jax.lq`), never
  one of its private modules (`mftg_jax.lq._game`);
- nothing inside the package imports from the tests or the benchmarks.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "mftg_jax"
FAMILIES = (
    "price", "lq", "calibration", "tracking", "dispatch", "mining", "insurance", "auction",
    "frequency",
)  # fmt: skip
LEAVES = ("slides", "cli")
CORE = ("_noise", "_simulation", "_certify")


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path) -> list[tuple[str, int]]:
    """The package modules `name` imports (absolute dotted names) with their line numbers."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_pkg = path.name == "__init__.py"
    base = name.split(".") if is_pkg else name.split(".")[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - (node.level - 1)]
                target = ".".join(anchor + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("mftg_jax"):
                # `from .. import lq` imports the subpackage `lq`, not the package above it.
                subs = [f"{target}.{a.name}" for a in node.names]
                if all(sub in MODULES for sub in subs):
                    found += [(sub, node.lineno) for sub in subs]
                else:
                    found.append((target, node.lineno))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(("mftg_jax", "tests", "benchmarks")):
                    found.append((alias.name, node.lineno))
    return found


MODULES = _modules()


def _layer(name: str) -> tuple[str, str | None]:
    """`("core" | "family" | "leaf" | "root", family or None)` of a package module."""
    parts = name.split(".")
    if len(parts) == 1 or parts[1] == "__main__":
        return "root", None  # the package and `python -m mftg_jax` sit above every layer
    head = parts[1]
    if head in FAMILIES:
        return "family", head
    if head in LEAVES:
        return "leaf", head
    return "core", None


def _violations(modules: dict[str, Path] | None = None) -> list[str]:
    bad = []
    for name, path in sorted((MODULES if modules is None else modules).items()):
        layer, family = _layer(name)
        if layer == "root":
            continue  # the top-level __init__ re-exports from every layer
        for target, line in _imports(name, path):
            where = f"{path.name} ({name}):{line} imports {target}"
            if target.startswith(("tests", "benchmarks")):
                bad.append(f"{where}: the package must not import tests or benchmarks")
                continue
            t_layer, t_family = _layer(target) if target != "mftg_jax" else ("root", None)
            if target == "mftg_jax":
                bad.append(f"{where}: import the layer you need, not the top-level package")
            elif layer == "core" and t_layer in ("family", "leaf"):
                bad.append(f"{where}: the core imports no family, slides or cli")
            elif layer == "family" and t_layer == "leaf":
                bad.append(f"{where}: a family imports no slides or cli")
            t_parts = target.split(".")
            if (
                t_layer in ("family", "leaf")
                and t_family != family
                and len(t_parts) > 2
                and t_parts[2].startswith("_")
            ):
                bad.append(f"{where}: another family's private module; import its public names")
    return bad


def test_import_graph_follows_the_dependency_direction():
    bad = _violations()
    assert not bad, "\n".join(bad)


def test_the_checker_sees_imports():
    # The rules are only as good as the import resolution: spot-check known edges.
    edges = {t for t, _ in _imports("mftg_jax.price._riccati", MODULES["mftg_jax.price._riccati"])}
    assert "mftg_jax._odes" in edges and "mftg_jax.price._game" in edges
    lowering = MODULES["mftg_jax.price._lowering"]
    assert "mftg_jax.lq" in {t for t, _ in _imports("mftg_jax.price._lowering", lowering)}


@pytest.mark.parametrize("family", FAMILIES + LEAVES)
def test_every_family_is_a_folder_with_its_public_surface(family):
    assert (PACKAGE / family / "__init__.py").is_file()


def test_the_checker_rejects_a_core_module_importing_a_family(tmp_path):
    core = tmp_path / "_odes.py"
    core.write_text("from .price import PriceGame\n")
    private = tmp_path / "_runs.py"
    private.write_text("from ..lq._game import LQGame\n")
    bad = _violations({"mftg_jax._odes": core, "mftg_jax.slides._runs": private})
    assert len(bad) == 2
    assert "the core imports no family" in bad[0]
    assert "another family's private module" in bad[1]
