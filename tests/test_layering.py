"""Imports point down: each top-level package of siamgpt_jax has a layer, and a module may import
only from packages in lower layers (lazy, function-level imports included), with no module cycles
inside a package either. A new package must be placed in LAYERS."""

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "siamgpt_jax"

# bottom to top (docs/ARCHITECTURE.md draws the same picture)
LAYERS = [
    {"errors"},
    {"sharding", "config", "hub"},
    {"model", "loader", "parallel"},
    {"convert", "corpus"},
    {"train"},
    {"generate"},
    {"autoif", "eval"},
    {"layout"},
    {"cli", "demo", "testing"},
]
RANK = {pkg: i for i, layer in enumerate(LAYERS) for pkg in layer}


def module_imports():
    """{module: {imported siamgpt_jax module or package}} for every module, lazy imports included."""
    out = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT.parent).with_suffix("")
        mod = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        pkg = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                targets.add(base)
                targets |= {f"{base}.{a.name}" for a in node.names}
        out[mod] = {t for t in targets if t.startswith("siamgpt_jax.")}
    return out


def _top(mod: str) -> str:
    return mod.split(".")[1]


def test_every_package_has_a_layer():
    packages = {_top(m) for m in module_imports() if m != "siamgpt_jax"}
    assert packages <= set(RANK), f"place these in LAYERS: {sorted(packages - set(RANK))}"


def test_imports_only_point_down():
    wrong = []
    for mod, targets in module_imports().items():
        if mod == "siamgpt_jax":
            continue
        for t in targets:
            src, dst = _top(mod), _top(t)
            if src != dst and dst in RANK and RANK[dst] >= RANK[src]:
                wrong.append(f"{mod} imports {t} ({src} is layer {RANK[src]}, {dst} layer {RANK[dst]})")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_module_import_cycles():
    imports = module_imports()
    graph = defaultdict(set)
    for mod, targets in imports.items():
        for t in targets:
            # `from pkg import name` names a module when pkg.name is one, else something pkg defines
            target = t if t in imports else t.rsplit(".", 1)[0]
            if target in imports and target != mod:
                graph[mod].add(target)
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for n in graph[m]:
            if state.get(n) == "open":
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(n):] + [n]))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = "done"

    for m in sorted(imports):
        if m not in state:
            visit(m)


# Modules whose job is start-up (argument parsing, then one subcommand): they may import the
# project's heavy modules inside the function that needs them, so `--help` and other commands stay fast.
START_UP_MODULES = {"cli.py", "demo.py", "testing.py", "__main__.py"}


def _local_imports(tree):
    """(function def node, import node, imported module names) for every import inside a function."""
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, ast.Import):
                    yield fn, node, [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and not node.level:
                    yield fn, node, [node.module or ""]


def test_function_local_imports_are_only_the_lazy_ones_start_up_needs():
    """A function-local import must earn its place: a third-party package the module does not
    already import at its top (jax, torch, matplotlib, ... kept off the import path of modules
    that need them rarely), the project's own modules inside a start-up module (cli*.py), or a
    line (or its def) that says why with `# lazy: ...`. A stdlib module, or a project module in a
    library module, goes at the top."""
    import sys

    wrong = []
    for path in ROOT.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        tree = ast.parse(text)
        at_top = set()
        for node in tree.body:
            if isinstance(node, ast.Import):
                at_top |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                at_top.add(node.module.split(".")[0])
        start_up = path.name in START_UP_MODULES or path.name.startswith("cli_")
        for fn, node, modules in _local_imports(tree):
            if "# lazy:" in lines[node.lineno - 1] or "# lazy:" in lines[fn.lineno - 1]:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top == "siamgpt_jax":
                    ok = start_up
                else:
                    ok = top not in sys.stdlib_module_names and top not in at_top
                if not ok:
                    wrong.append(f"{path.relative_to(ROOT.parent)}:{node.lineno} in {fn.name}(): {module}")
    assert not wrong, "move these imports to the module top (or say why with `# lazy: ...`):\n" + "\n".join(wrong)
