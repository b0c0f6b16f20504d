"""The package's shape: layers import only downwards, no import cycle, and a documented public API."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
from pathlib import Path

from pydantic import BaseModel

import teich

PACKAGE = Path(teich.__file__).parent
DOCS = Path(__file__).resolve().parents[1] / "docs"
README = Path(__file__).resolve().parents[1] / "README.md"

# The pipeline, bottom up: a module may import its own layer and those below it, never one above.
LAYERS = (
    {"errors", "files", "parallel", "registry", "reports", "schema"},
    {"traces"},
    {"training"},
    {"generate", "privacy"},
    {"cli", "__init__", "__main__", "view"},
)


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _imports(path: Path) -> set[str]:
    """The teich modules a module imports, wherever in it the import stands (``from teich.a import b``
    imports ``teich.a.b`` where that is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("teich"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("teich"):
            submodules = {f"{node.module}.{alias.name}" for alias in node.names} & MODULES.keys()
            found.update(submodules or {node.module})
    return found


def _graph() -> dict[str, set[str]]:
    return {module: _imports(path) for module, path in MODULES.items()}


def _layer(module: str) -> int:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    return next((index for index, names in enumerate(LAYERS) if top in names), -1)


def test_every_module_has_a_layer():
    assert not [module for module in MODULES if _layer(module) < 0], "add new top-level modules to LAYERS"


def test_no_layer_imports_a_higher_one():
    upward = [
        f"{module} -> {imported}"
        for module, imports in _graph().items()
        for imported in imports
        if module != "teich" and _layer(imported) > _layer(module)
    ]
    assert not upward


def test_no_import_cycle():
    graph = {module: imports & MODULES.keys() for module, imports in _graph().items()}
    graph.pop("teich")  # the package root re-exports; nothing below imports it
    state: dict[str, int] = {}

    def visit(module: str, path: tuple[str, ...]) -> None:
        state[module] = 1
        for imported in sorted(graph.get(module, ())):
            assert state.get(imported) != 1, " -> ".join((*path, module, imported))
            if imported not in state:
                visit(imported, (*path, module))
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, ())


def test_nothing_below_the_root_imports_the_root():
    assert not [m for m, imports in _graph().items() if "teich" in imports and m not in ("teich.cli", "teich.__main__")]


def test_all_is_what_the_root_exports():
    public = {name for name in vars(teich) if not name.startswith("_") and not inspect.ismodule(getattr(teich, name))}
    assert set(teich.__all__) - {"__version__"} == public
    assert sorted(teich.__all__) == list(teich.__all__)


def test_every_public_name_is_documented():
    docs = README.read_text() + "".join(page.read_text() for page in DOCS.glob("*.md"))
    missing = [name for name in teich.__all__ if name != "__version__" and not re.search(rf"\b{name}\b", docs)]
    assert not missing, f"not in README.md or docs/: {missing}"


def test_every_public_callable_documents_every_parameter():
    undocumented = []
    for name in teich.__all__:
        value = getattr(teich, name)
        if not callable(value) or not inspect.getdoc(value):
            assert not callable(value) or inspect.getdoc(value), f"{name} has no docstring"
            continue
        if inspect.isclass(value) and (dataclasses.is_dataclass(value) or issubclass(value, (BaseModel, Exception))):
            continue  # records and errors: their fields are documented on the class
        function = value.__init__ if inspect.isclass(value) else value
        doc = inspect.getdoc(value) + (inspect.getdoc(function) or "")
        for parameter in list(inspect.signature(function).parameters)[1 if inspect.isclass(value) else 0 :]:
            if parameter not in ("self", "args", "kwargs") and f"``{parameter}``" not in doc:
                undocumented.append(f"{name}({parameter})")
    assert not undocumented, undocumented
