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


# --- one way inside a layer too, and the house style's signals ------------------------------
#: Longest a function may be (its ``def`` line to its last), and the most parameters an
#: internal one may take (``self``/``cls`` not counted; ``*args`` and ``**kwargs`` count one each).
LONGEST, MOST_PARAMETERS = 60, 8


def module_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Each module of ``package`` → the modules of it that it imports anywhere (``TYPE_CHECKING``
    blocks and function bodies too; a module's own package and submodules left out)."""
    files = {module_name(p, package.parent): p for p in sorted(package.rglob("*.py"))}
    graph: dict[str, set[str]] = {m: set() for m in files}
    for name, path in files.items():
        package_name = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = package_name
                for _ in range(max(node.level - 1, 0)):
                    base = base.rpartition(".")[0]
                base = (f"{base}.{node.module}" if node.module else base) if node.level else node.module or ""
                targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
            graph[name] |= {t for t in targets if t in files and t != name and not t.startswith(name + ".")
                            and not name.startswith(t + ".")}
    return graph


def circles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    """The groups of modules that import each other, directly or through others."""
    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for target in graph[todo.pop()] - seen:
                seen.add(target)
                todo.append(target)
        return seen

    closure = {m: reach(m) for m in graph}
    return {frozenset({m} | {w for w in closure[m] if m in closure[w]}) for m in graph if m in closure[m]}


def exported_functions(package: Path = PACKAGE) -> set[tuple[str, str]]:
    """(module, function) of each name in the package's ``__all__`` that its ``__init__`` takes
    from a module of its own (``from .m import f``, or ``from . import m`` then ``m.f``): the
    public API, whose signatures its users chose."""
    tree = ast.parse((package / "__init__.py").read_text())
    names = next(ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
                 and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found |= {(f"{package.name}.{node.module}", a.name) for a in node.names if a.name in names}
            else:
                found |= {(f"{package.name}.{a.name}", name) for a in node.names for name in names}
    return found


def style_signals(package: Path = PACKAGE) -> list[str]:
    """Every function longer than :data:`LONGEST` lines, and every internal one with more than
    :data:`MOST_PARAMETERS` parameters."""
    public = exported_functions(package)
    found = []
    for path in sorted(package.rglob("*.py")):
        module = module_name(path, package.parent)
        tree = ast.parse(path.read_text())
        top = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            where = f"{path.relative_to(package.parent)}:{node.lineno} {node.name}"
            length = node.end_lineno - node.lineno + 1  # type: ignore[operator]
            if length > LONGEST:
                found.append(f"{where} is {length} lines long")
            args = node.args
            named = (*args.posonlyargs, *args.args, *args.kwonlyargs)
            count = len([a for a in named if a.arg not in ("self", "cls")])
            count += (args.vararg is not None) + (args.kwarg is not None)
            if count > MOST_PARAMETERS and not (id(node) in top and (module, node.name) in public):
                found.append(f"{where} takes {count} parameters")
    return found


def test_no_modules_import_each_other_in_a_circle():
    assert sorted(sorted(group) for group in circles(module_graph())) == []


def test_functions_are_short_and_internal_ones_take_few_parameters():
    assert style_signals() == []


def test_the_signal_checkers_catch_what_they_must(tmp_path):
    package = tmp_path / "probe"
    (package / "inner").mkdir(parents=True)
    (package / "__init__.py").write_text("from .api import public\n__all__ = ['public']\n")
    many = ", ".join(f"p{i}" for i in range(9))
    (package / "api.py").write_text(f"def public({many}):\n    pass\n\n\ndef _hidden({many}):\n    pass\n")
    (package / "inner" / "__init__.py").write_text("")
    (package / "inner" / "a.py").write_text("def f():\n    from .b import g\n")
    (package / "inner" / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                           "    from . import a\ndef g(self, x):\n" + "    x += 1\n" * 60)
    (package / "inner" / "c.py").write_text("from .a import f\n")  # imports the circle, is not in it
    assert circles(module_graph(package)) == {frozenset({"probe.inner.a", "probe.inner.b"})}
    assert style_signals(package) == ["probe/api.py:5 _hidden takes 9 parameters",
                                      "probe/inner/b.py:4 g is 61 lines long"]
