"""The package's shape: no import cycle, every module importable alone, a clean public API."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "keras_alexnet"


def _module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = sorted(_module_name(path) for path in PACKAGE.rglob("*.py"))


def _module_level_imports(path):
    """Package modules that ``path`` imports when it is imported (not inside functions)."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("keras_alexnet"):
            submodules = {f"{node.module}.{alias.name}" for alias in node.names} & set(MODULES)
            found.update(submodules or {node.module})
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("keras_alexnet"))
    return {name for name in found if name in MODULES}


def test_no_import_cycle_between_modules():
    graph = {_module_name(p): _module_level_imports(p) for p in PACKAGE.rglob("*.py")}
    # A package imports its submodules on purpose (its public API); a cycle through a
    # package's own __init__ is then not a cycle. Any other back edge is.
    graph = {m: {d for d in deps if not m.startswith(d + ".") and d != m} for m, deps in graph.items()}
    state, stack = {}, []

    def visit(module):
        state[module] = "open"
        stack.append(module)
        for dependency in sorted(graph[module]):
            if state.get(dependency) == "open":
                cycle = stack[stack.index(dependency) :] + [dependency]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if dependency not in state:
                visit(dependency)
        stack.pop()
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module)


def test_the_architecture_table_is_a_leaf():
    assert _module_level_imports(PACKAGE / "architecture.py") == set()
    assert "import keras" not in (PACKAGE / "architecture.py").read_text()


def test_only_conversion_imports_torch():
    torch_import = re.compile(r"^\s*(import|from)\s+(torch|torchvision)\b", re.MULTILINE)
    for path in PACKAGE.rglob("*.py"):
        if torch_import.search(path.read_text()):
            assert path.parent.name == "conversion", path


def test_optimizers_know_nothing_of_alexnet():
    for path in (PACKAGE / "optimizers").glob("*.py"):
        imports = _module_level_imports(path)
        allowed = ("keras_alexnet.optimizers", "keras_alexnet._keras_compat", "keras_alexnet._utils")
        assert all(name.startswith(allowed) for name in imports), path


@pytest.mark.slow
@pytest.mark.parametrize("module", MODULES)
def test_each_module_imports_alone_in_a_fresh_process(module):
    done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_public_api_does_not_shadow_keras_layers():
    import keras_alexnet

    namespace = {}
    exec("from keras_alexnet import *", namespace)
    assert "Conv2D" not in namespace and "Dense" not in namespace
    from keras_alexnet import Conv2D, Dense  # still importable by name, from keras_alexnet.layers

    assert Conv2D is keras_alexnet.layers.Conv2D and Dense is keras_alexnet.layers.Dense
    for name in keras_alexnet.__all__:
        assert getattr(keras_alexnet, name).__doc__ or name.isupper(), f"{name} has no docstring"
