"""The package's shape: imports point down the layers (at module and function level), no cycle,
every module importable alone, a lazy package root, one owner of the run directory's names."""

import ast
import collections
import json
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

# The layers, lowest first (docs/ARCHITECTURE.md). A module may import its own layer and those below.
LAYERS = (
    (
        "keras_alexnet._utils",
        "keras_alexnet._keras_compat",
        "keras_alexnet.architecture",
        "keras_alexnet.recipes",
        "keras_alexnet.formats",
        "keras_alexnet.run_result",
    ),
    (
        "keras_alexnet.options",
        "keras_alexnet.run_directory",
        "keras_alexnet.layers",
        "keras_alexnet.preprocessing",
        "keras_alexnet.optimizers",
        "keras_alexnet.calibration",
        "keras_alexnet.metrics",
        "keras_alexnet.saved_model_ops",
    ),
    ("keras_alexnet.weights", "keras_alexnet.saving"),
    ("keras_alexnet.model", "keras_alexnet.saved_model_record"),
    ("keras_alexnet.conversion", "keras_alexnet.transfer", "keras_alexnet.datasets", "keras_alexnet.deployment"),
    ("keras_alexnet.tta", "keras_alexnet.evaluation", "keras_alexnet.export", "keras_alexnet.explain"),
    ("keras_alexnet.training",),
    ("keras_alexnet.experiments", "keras_alexnet.report"),
    ("keras_alexnet.demo", "keras_alexnet.cli"),
)

# Imports of package modules inside functions, each with its reason. cli/ may import inside
# its subcommands (its parser loads no TensorFlow); nothing else may, except:
FUNCTION_IMPORTS = {
    ("keras_alexnet.experiments.engine", "keras_alexnet.experiments.trial"): (
        "a trial's process (Ray pickles the trial's function by value: nothing of the package is loaded) imports"
        " Keras alone, TensorFlow's start-up lines hidden (quiet_tensorflow), before the trial's module loads it"
    ),
    ("keras_alexnet.training.worker_process", "keras_alexnet.training.on_workers"): (
        "a Ray Train worker's process (the loop pickled by value) imports Keras alone before the workers' module"
    ),
}


def _level(module):
    if module == "keras_alexnet":
        return 0  # the lazy package root imports only the bottom layer
    for level, prefixes in enumerate(LAYERS):
        if any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes):
            return level
    raise AssertionError(f"{module} is in no layer of LAYERS: add it (and to docs/ARCHITECTURE.md)")


def _imports(path, function_level):
    """Package modules ``path`` imports: at module level, or (``function_level``) inside functions."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    found = set()
    for node in ast.walk(tree):
        if (id(node) in top) == function_level:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("keras_alexnet"):
            submodules = {f"{node.module}.{alias.name}" for alias in node.names} & set(MODULES)
            found.update(submodules or {node.module})
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("keras_alexnet"))
    return {name for name in found if name in MODULES}


def _module_level_imports(path):
    return _imports(path, function_level=False)


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


def test_imports_point_down_the_layers_at_module_and_function_level():
    upward = []
    for path in PACKAGE.rglob("*.py"):
        module = _module_name(path)
        for imported in _imports(path, False) | _imports(path, True):
            if module.startswith(imported + ".") or imported == "keras_alexnet":
                continue  # a package's own __init__
            if _level(imported) > _level(module):
                upward.append(f"{module} (layer {_level(module)}) imports {imported} (layer {_level(imported)})")
    assert not upward, "\n".join(upward)


def test_no_function_level_import_of_a_package_module_outside_the_cli():
    found = []
    for path in PACKAGE.rglob("*.py"):
        module = _module_name(path)
        if module == "keras_alexnet.cli" or module.startswith("keras_alexnet.cli."):
            continue  # a subcommand imports what it uses when it runs: --help loads no TensorFlow
        found += [(module, imported) for imported in sorted(_imports(path, True))]
    unexplained = [pair for pair in found if pair not in FUNCTION_IMPORTS]
    assert not unexplained, f"function-level imports without a reason in FUNCTION_IMPORTS: {unexplained}"
    assert set(FUNCTION_IMPORTS) <= set(found), "FUNCTION_IMPORTS lists imports that are gone"


def test_training_never_imports_experiments():
    for path in (PACKAGE / "training").glob("*.py"):
        imports = _imports(path, False) | _imports(path, True)
        assert not any(name.startswith("keras_alexnet.experiments") for name in imports), path


def test_the_tables_are_leaves_without_keras():
    assert _module_level_imports(PACKAGE / "architecture.py") == set()
    assert _module_level_imports(PACKAGE / "recipes.py") == set()
    for name in ("architecture.py", "recipes.py"):
        assert not re.search(r"^\s*(import|from)\s+(keras|tensorflow)\b", (PACKAGE / name).read_text(), re.M), name


def test_only_conversion_and_the_state_dict_reader_import_torch():
    torch_import = re.compile(r"^\s*(import|from)\s+(torch|torchvision)\b", re.MULTILINE)
    for path in PACKAGE.rglob("*.py"):
        if torch_import.search(path.read_text()):
            assert path.parent.name == "conversion" or path == PACKAGE / "weights" / "state_dicts.py", path


def test_optimizers_know_nothing_of_alexnet():
    for path in (PACKAGE / "optimizers").glob("*.py"):
        imports = _module_level_imports(path)
        allowed = ("keras_alexnet.optimizers", "keras_alexnet._keras_compat", "keras_alexnet._utils")
        assert all(name.startswith(allowed) for name in imports), path


def _string_constants(path):
    tree = ast.parse(path.read_text())
    return [node for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)]


def test_no_run_directory_file_name_is_written_outside_its_owner():
    from keras_alexnet.run_directory import RunDirectory

    names = {
        value
        for key, value in vars(RunDirectory).items()
        if key.isupper() and isinstance(value, str) and key not in ("RUN_FILES", "SCRATCH", "FIT_STATE")
    }
    assert {"model.keras", "options.json", "backup", "history.json", "run.lock"} <= names
    # "tensorboard" is also the name of the option that writes that folder (TrainingOptions.tensorboard).
    names -= {"tensorboard"}
    found = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "run_directory.py":
            continue
        found += [
            f"{path.relative_to(PACKAGE)}:{node.lineno} {node.value!r}"
            for node in _string_constants(path)
            if node.value in names
        ]
    assert not found, "run-directory names spelled outside RunDirectory:\n" + "\n".join(found)


# Each module imported alone, in one process: the package's modules are forgotten before each
# import (third-party ones stay loaded, which changes nothing about our import order).
_IMPORT_EACH = """
import importlib, json, sys, traceback
failures = {}
for module in json.loads(sys.argv[1]):
    for name in [name for name in sys.modules if name == "keras_alexnet" or name.startswith("keras_alexnet.")]:
        del sys.modules[name]
    try:
        importlib.import_module(module)
    except Exception:
        failures[module] = traceback.format_exc()[-1500:]
print(json.dumps(failures))
"""


@pytest.mark.slow
def test_each_module_imports_alone():
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_EACH, json.dumps(MODULES)], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    failures = json.loads(done.stdout.strip().splitlines()[-1])
    assert not failures, failures


_LOADS_NO_TENSORFLOW = """
import sys
import keras_alexnet, keras_alexnet.architecture, keras_alexnet.recipes, keras_alexnet.run_directory
from keras_alexnet.cli import build_parser
build_parser().format_help()
print(sorted(name for name in ("tensorflow", "keras", "torch") if name in sys.modules))
"""


def test_the_package_the_tables_and_the_cli_parser_load_no_tensorflow():
    done = subprocess.run([sys.executable, "-c", _LOADS_NO_TENSORFLOW], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


_LOAD_AFTER_IMPORT = """
import sys
import keras_alexnet
import keras
for path in sys.argv[1:]:
    model = keras.models.load_model(path)
    print(model.get_layer("fc8").units, type(model.optimizer).__name__ if model.optimizer else None)
"""


@pytest.mark.parametrize("order", ["keras_alexnet first", "keras first"])
@pytest.mark.slow
def test_import_keras_alexnet_then_keras_load_model_reads_every_saved_model(tmp_path, order):
    from keras_alexnet.architecture import TINY
    from keras_alexnet.model import AlexNet
    from keras_alexnet.optimizers.schedules import OneCycle
    from keras_alexnet.transfer import apply_recipe

    paths = []
    for head in ("alexnet", "compact"):
        base = AlexNet(weights=None, include_top=False, architecture=TINY)
        model = apply_recipe(base, "matlab", 3, head=head, learning_rate=OneCycle(1e-3, 10))
        path = tmp_path / f"{head}.keras"
        model.save(path)  # with its factored optimizer and schedule
        paths.append(str(path))
    code = (
        _LOAD_AFTER_IMPORT
        if order == "keras_alexnet first"
        else _LOAD_AFTER_IMPORT.replace("import keras_alexnet\nimport keras\n", "import keras\nimport keras_alexnet\n")
    )
    done = subprocess.run([sys.executable, "-c", code, *paths], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["3", "FactoredSGD"] * 2


def test_public_api_does_not_shadow_keras_layers():
    import keras_alexnet

    namespace = {}
    exec("from keras_alexnet import *", namespace)
    assert "Conv2D" not in namespace and "Dense" not in namespace
    from keras_alexnet import Conv2D, Dense  # still importable by name, from keras_alexnet.layers

    assert Conv2D is keras_alexnet.layers.Conv2D and Dense is keras_alexnet.layers.Dense
    for name in keras_alexnet.__all__:
        assert getattr(keras_alexnet, name).__doc__ or name.isupper(), f"{name} has no docstring"


# Test files not named after a module: the package's shape (this file) and the benchmarks' command.
TESTS_OF_NO_MODULE = {"test_package_layout.py": "the package as a whole", "test_benchmarks.py": "benchmarks/"}


def test_every_test_file_is_named_after_the_module_it_tests():
    names = set()
    for path in PACKAGE.rglob("*.py"):
        parts = [part.lstrip("_") for part in path.relative_to(PACKAGE).with_suffix("").parts if part != "__init__"]
        names.update(parts)
    tests = sorted(path.name for path in (PACKAGE.parent / "tests").glob("test_*.py"))
    unnamed = [
        name for name in tests if name[len("test_") : -len(".py")] not in names and name not in TESTS_OF_NO_MODULE
    ]
    assert not unnamed, f"name these after the module they test (tests/test_<module>.py): {unnamed}"


def test_every_test_the_documents_name_exists():
    """RELIABILITY.md and the other pages cite tests as ``test_file.py::test_name`` (``::test_name`` after
    one: the same file); a test moved or renamed must be cited where it now is."""
    defined = {}
    for path in (PACKAGE.parent / "tests").glob("test_*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef):
                defined.setdefault(path.name, set()).add(node.name)
    root = PACKAGE.parent
    documents = [*root.glob("*.md"), *root.glob("docs/*.md"), *root.glob("benchmarks/*.md")]
    missing = []
    for document in documents:
        current = None
        for file, name in re.findall(r"(test_[a-z0-9_]+\.py)?::(test_[a-z0-9_]+)", document.read_text()):
            current = file or current
            if name not in defined.get(current, ()):
                missing.append(f"{document.name}: {current}::{name}")
    assert not missing, missing


def test_every_module_level_function_and_class_is_named_somewhere_else():
    """No dead code: a function or class of the package that nothing names (the package, the tests, the
    benchmarks, the tools, the examples or the documents) is removed, not kept "in case"."""
    root = PACKAGE.parent
    sources = [*PACKAGE.rglob("*.py"), *root.glob("tests/*.py"), *root.glob("benchmarks/*.py")]
    sources += [*root.glob("tools/*.py"), *root.glob("examples/**/*.py")]
    text = "\n".join(path.read_text() for path in sources)
    text += "\n".join(path.read_text() for path in [*root.glob("*.md"), *root.glob("docs/*.md")])
    words = collections.Counter(re.findall(r"\w+", text))  # a name's whole-word occurrences, counted once
    unnamed = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                if words[node.name] <= 1:  # its own definition
                    unnamed.append(f"{path.relative_to(root)}: {node.name}")
    assert not unnamed, f"nothing names these: remove them, or use them: {unnamed}"


def test_no_function_of_the_package_is_over_80_lines():
    """Small functions with one job each (issue 36's done-when): a longer one is split, not grown."""
    long = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 80:
                long.append(
                    f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1})"
                )
    assert not long, long
