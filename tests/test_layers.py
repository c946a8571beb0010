"""The layering of emu/ and minios/, checked by reading every import.

Every module is parsed with ``ast``; every import is collected, at module level
and inside functions alike (a function-level import is still a dependency: it
only hides the cycle from Python). Imports under ``if TYPE_CHECKING:`` are type
hints and do not count. Then:

- no module imports a module of a higher layer (layers below, from
  ``/work/shared/docs/architecture.md`` and the README);
- no import cycle exists among the modules;
- no file in minios/ is over ``MAX_LINES`` lines.

There are no exceptions: a violation fails the run.
"""
from __future__ import annotations

import ast
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("emu", "minios")
MAX_LINES = 700

# Layers, bottom (0) to top. A module's layer is that of its longest matching
# prefix; a module may import its own layer and those below.
LAYERS: dict[str, int] = {
    "emu": 0,                       # hardware: knows nothing of minios
    "minios.uapi": 1, "minios.time": 1,
    "minios.mm": 2,
    "minios.fs": 3, "minios.net": 3,
    "minios.proc": 4,
    "minios.syscalls": 5,
    "minios.kernel": 6, "minios.events": 6,
    "minios.trace": 7, "minios.debug": 7, "minios.gdbstub": 7,
    "minios": 8,                    # API: machine, cli, demo, plugin, __main__
}
LAYER_NAMES = ["hardware", "uapi/time", "mm", "fs/net", "proc", "syscalls", "kernel",
               "observers", "API"]

def module_name(path: Path) -> str:
    """Dotted module name of a source file under ROOT (a package is its __init__)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    """Every module of PACKAGES, by dotted name."""
    mods = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            mods[module_name(path)] = path
    return mods


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
           (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST):
    """Every Import/ImportFrom node in tree, skipping ``if TYPE_CHECKING:`` bodies."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def imports_of(name: str, path: Path, mods: dict[str, Path]) -> dict[str, int]:
    """The project modules `name` imports, each with the line of its first import."""
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    found: dict[str, int] = {}

    def add(target: str, line: int) -> None:
        # The longest existing module prefix: `minios.fs.vfs.lookup` -> minios.fs.vfs.
        while target and target not in mods:
            target = target.rpartition(".")[0]
        if target and target != name:
            found.setdefault(target, line)

    for node in _imports(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno)
            continue
        if node.level:                           # relative: resolve against this package
            base = name.split(".")
            base = base[:len(base) - node.level + (1 if is_pkg else 0)]
            mod = ".".join(base + ([node.module] if node.module else []))
        else:
            mod = node.module or ""
        if mod.split(".")[0] not in PACKAGES:
            continue
        for alias in node.names:                 # `from minios.proc import signals`
            sub = f"{mod}.{alias.name}"
            add(sub if sub in mods else mod, node.lineno)
    return found


def layer(name: str) -> int:
    """The layer of module `name` (longest matching LAYERS prefix)."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in LAYERS:
            return LAYERS[prefix]
    raise KeyError(f"{name}: no layer; add it to LAYERS")


MODS = all_modules()
GRAPH: dict[str, dict[str, int]] = {m: imports_of(m, p, MODS) for m, p in MODS.items()}


def upward_imports() -> dict[tuple[str, str], str]:
    """(importer, imported) -> description, for each import of a higher layer."""
    out = {}
    for mod, targets in GRAPH.items():
        for target, line in targets.items():
            if layer(target) > layer(mod):
                out[(mod, target)] = (
                    f"{MODS[mod].relative_to(ROOT)}:{line}: {mod} ({LAYER_NAMES[layer(mod)]}) "
                    f"imports {target} ({LAYER_NAMES[layer(target)]})")
    return out


def components(skip: set[tuple[str, str]]) -> list[list[str]]:
    """The strongly connected components of the import graph without the
    edges in `skip` (Tarjan's algorithm), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if (v, w) in skip:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(sorted(comp))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    return out


def cycles(skip: set[tuple[str, str]]) -> list[list[str]]:
    """The import cycles (components of more than one module) without `skip`."""
    return [c for c in components(skip) if len(c) > 1]


def describe_cycle(comp: list[str], skip: set[tuple[str, str]]) -> str:
    """The component and its internal imports, with their lines."""
    members = set(comp)
    lines = [f"cycle among {len(comp)} modules: {', '.join(comp)}"]
    for mod in comp:
        for target, line in sorted(GRAPH[mod].items()):
            if target in members and (mod, target) not in skip:
                lines.append(f"    {MODS[mod].relative_to(ROOT)}:{line}: {mod} -> {target}")
    return "\n".join(lines)


def long_files() -> dict[str, int]:
    """minios/ files over MAX_LINES, with their line counts."""
    out = {}
    for path in sorted((ROOT / "minios").rglob("*.py")):
        n = len(path.read_text().splitlines())
        if n > MAX_LINES:
            out[str(path.relative_to(ROOT))] = n
    return out


def test_every_module_has_a_layer():
    for mod in MODS:
        layer(mod)


def test_no_upward_imports():
    found = upward_imports()
    assert not found, "imports of a higher layer:\n" + "\n".join(sorted(found.values()))


def test_no_import_cycles():
    comps = cycles(set())
    assert not comps, "\n".join(describe_cycle(c, set()) for c in comps)


def test_no_long_files():
    found = long_files()
    assert not found, "files over %d lines:\n" % MAX_LINES + "\n".join(
        f"    {p}: {n} lines" for p, n in found.items())


if __name__ == "__main__":      # a report of everything
    for text in sorted(upward_imports().values()):
        print(text)
    for comp in cycles(set()):
        print(describe_cycle(comp, set()))
    for p, n in long_files().items():
        print(f"{p}: {n} lines")
