"""The package's shape: no name clashes, no import cycles, no switches, small files."""

import ast
import importlib
import os
import pkgutil
import types

import bit_keras

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIBRARY = os.path.join(ROOT, "bit_keras")
PUBLIC_FUNCTIONS = ("fine_tune", "pretrain", "export", "export_tflite", "publish", "few_shot",
                    "build", "load", "save_npz", "load_weights", "resnet_v2",
                    "feature_extractor", "fold_standardization")


def _modules():
    return [m.name for m in pkgutil.walk_packages(bit_keras.__path__, "bit_keras.")
            if m.name != "bit_keras.__main__"]


def _sources():
    for folder, _, files in os.walk(LIBRARY):
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                yield path, open(path, encoding="utf-8").read()


def _module_name(path):
    rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
    return rel[:-len(".__init__")] if rel.endswith(".__init__") else rel


def test_public_functions_survive_importing_every_submodule():
    names = _modules()
    for name in names:
        importlib.import_module(name)
    for name in PUBLIC_FUNCTIONS:
        value = getattr(bit_keras, name)
        assert callable(value) and not isinstance(value, types.ModuleType), name


def test_no_submodule_shares_a_name_with_what_its_package_exports():
    clashes = []
    for name in ["bit_keras", *_modules()]:
        package = importlib.import_module(name)
        if not hasattr(package, "__path__"):
            continue
        exported = set(getattr(package, "__all__", ())) | (
            set(PUBLIC_FUNCTIONS) if name == "bit_keras" else set())
        for sub in pkgutil.iter_modules(package.__path__):
            value = getattr(package, sub.name, None)
            if sub.name in exported and not isinstance(value, types.ModuleType):
                clashes.append(f"{name}.{sub.name}")
    assert not clashes


def _imports(tree, module):
    """Modules of bit_keras imported at module level (not inside functions)."""
    found = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("bit_keras")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(
                "bit_keras"):
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                is_module = os.path.exists(os.path.join(ROOT, *candidate.split(".")) + ".py") \
                    or os.path.isdir(os.path.join(ROOT, *candidate.split(".")))
                found.add(candidate if is_module else node.module)
    found.discard(module)
    return found


def test_no_import_cycles():
    graph = {_module_name(p): _imports(ast.parse(s), _module_name(p)) for p, s in _sources()}
    state, cycles = {}, []

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles


def test_library_files_stay_under_300_lines():
    long = {os.path.relpath(p, ROOT): s.count("\n") for p, s in _sources() if s.count("\n") > 300}
    assert not long


def test_no_process_wide_switches():
    # No module global that another module flips: no setattr on modules, no flag
    # definitions at import time (flags are defined when a command runs, in bit_keras/cli).
    for path, source in _sources():
        tree = ast.parse(source)
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
        assert not [n for n in calls if isinstance(n.func, ast.Name) and n.func.id == "setattr"], path
        for node in tree.body:
            for call in (n for n in ast.walk(node) if isinstance(n, ast.Call)):
                func = call.func
                if isinstance(func, ast.Attribute) and func.attr.startswith("DEFINE_"):
                    assert isinstance(node, (ast.FunctionDef, ast.ClassDef)), (path, func.attr)
        if "DEFINE_" in source:
            assert os.sep + "cli" + os.sep in path, path


def test_docstrings_cite_the_projects_own_design_contract():
    assert os.path.isfile(os.path.join(ROOT, "docs", "design.md"))
    for path, source in _sources():
        assert "DESIGN.md" not in source, path
