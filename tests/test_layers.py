"""The layers' one-way imports, checked for every module of the package.

Layers, lowest first: the error classes; ``planning`` (pure); ``storage``; ``worker``;
``checks``; ``runtime``; the interfaces (``api``, ``cli``, the package itself). A module may
import blockdist modules of its own layer or a lower one, never a higher one, and third-party
packages only where its layer allows (only ``storage`` imports zarr, obstore or s3fs; the
planning layer imports neither dask nor distributed).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "blockdist"
ORDER = ["errors", "planning", "storage", "worker", "checks", "runtime", "interfaces"]
#: Third-party packages each layer may not import (at module level or inside functions).
FORBIDDEN = {
    "errors": {"numpy", "zarr", "obstore", "s3fs", "dask", "distributed"},
    "planning": {"zarr", "obstore", "s3fs", "dask", "distributed", "psutil", "scipy"},
    "storage": {"distributed"},
    "worker": {"zarr", "obstore", "s3fs", "dask"},
    "checks": {"zarr", "obstore", "s3fs"},
    "runtime": {"zarr", "obstore", "s3fs"},
    "interfaces": {"zarr", "obstore", "s3fs"},
}


def layer_of(module: str) -> str:
    """The layer of ``blockdist.<layer>…``; the package itself, ``api`` and ``cli`` are the interfaces
    (and so is a name imported from the package, such as ``blockdist.__version__``)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ORDER else "interfaces"


def module_name(path: Path, root: Path = PACKAGE.parent) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path, name: str) -> list[str]:
    """Every module ``path`` (module ``name``) imports, relative imports resolved, at any depth."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level:
            base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
            found += [f"{base}.{node.module}"] if node.module else [f"{base}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append(node.module or "")
    return found


def violations(path: Path, name: str) -> list[str]:
    own = layer_of(name)
    wrong = []
    for target in imports(path, name):
        top = target.split(".")[0]
        if top == "blockdist" and ORDER.index(layer_of(target)) > ORDER.index(own):
            wrong.append(f"{name} ({own}) imports {target} ({layer_of(target)})")
        elif top != "blockdist" and top in FORBIDDEN[own]:
            wrong.append(f"{name} ({own}) imports {target}")
    return wrong


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_belongs_to_a_layer():
    for path in MODULES:
        assert layer_of(module_name(path)) in ORDER, path


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down_only(path):
    assert violations(path, module_name(path)) == []


@pytest.mark.parametrize(("line", "caught"), [
    ("from ..runtime import settings", True), ("import zarr", True), ("from zarr.storage import LocalStore", True),
    ("def f():\n    from ..storage import locate", True), ("from .grid import edges", False),
    ("import numpy", False), ("from ..errors import ShapeError", False),
])
def test_the_checker_catches_what_it_must(tmp_path, line, caught):
    probe = tmp_path / "blockdist" / "planning" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text(line + "\n")
    assert bool(violations(probe, module_name(probe, tmp_path))) is caught


def test_the_planning_layer_loads_neither_zarr_nor_dask():
    code = (
        "import sys\n"
        "import blockdist.planning, blockdist.worker.kernel, blockdist.worker.blas\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('zarr', 'dask', 'distributed', 'obstore', 's3fs')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_the_api_is_reachable_from_the_package():
    code = "import blockdist; print(blockdist.matmul.__module__, blockdist.plan.__module__, blockdist.Job.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["blockdist.api", "blockdist.api", "Job"]


def test_no_module_shadows_a_function_of_the_api():
    """Importing a submodule sets an attribute of its package: none may be named like an API function."""
    code = (
        "import importlib, pkgutil, types, blockdist\n"
        "for info in pkgutil.walk_packages(blockdist.__path__, 'blockdist.'):\n"
        "    if not info.name.endswith('__main__'):\n"
        "        importlib.import_module(info.name)\n"
        "print(sorted(n for n in blockdist.__all__ if isinstance(getattr(blockdist, n), types.ModuleType)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_error_class_is_exported_from_the_package():
    import blockdist
    from blockdist import errors

    classes = {name for name, value in vars(errors).items() if isinstance(value, type) and
               issubclass(value, Exception) and value.__module__ == errors.__name__}
    assert classes == set(errors.__all__)
    assert all(getattr(blockdist, name) is getattr(errors, name) for name in classes)
    assert classes <= set(blockdist.__all__)
