"""The shape of the code, enforced: which package may import which, no import cycles, no backend
switch, and tests that do not depend on the folder they run from.

Every module under ``src/lookright`` is parsed with :mod:`ast`; every ``import`` and ``from ... import``
counts, also those inside functions (a lazy import is still a dependency). A module belongs to the
*package* named by its first component under ``lookright`` (``lookright.vlm.reliability.run`` belongs
to ``vlm``). A package may import its own modules and any package of a lower layer; a package of the
same layer only where :data:`SIBLINGS` lists the pair (layer 2: any pair, as long as those imports
form no cycle); never a higher layer.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = SRC / "lookright"
TOP = "lookright"  # lookright/__init__.py

LAYERS = {
    TOP: 6, "cli": 6, "demo": 6, "api": 6,
    "train": 5,
    "rl": 4, "vlm": 4,
    "runs": 3, "report": 3, "metrics": 3,
    "losses": 2, "targets": 2, "attention": 2, "models": 2, "data": 2,
    "registry": 1, "errors": 1, "atomic": 1,
}
# Imports between two packages of one layer that are part of the design (importer, imported).
SIBLINGS = {
    ("report", "metrics"), ("report", "runs"), ("runs", "metrics"),
    ("cli", "demo"),  # the `lookright demo` command runs the demo's configs
    (TOP, "api"),  # lookright.load_run is lookright.api.load_run, imported lazily
    ("registry", "errors"),  # a registry raises ConfigError for unknown names
}
FREE_LAYER = 2  # any import inside this layer, as long as the package graph stays acyclic


@dataclass(frozen=True)
class Edge:
    importer: str  # module, e.g. lookright.vlm.teach
    imported: str  # module, e.g. lookright.train.trainer
    file: str
    line: int

    @property
    def source(self) -> str:
        return package_of(self.importer)

    @property
    def target(self) -> str:
        return package_of(self.imported)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.importer} imports {self.imported}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else TOP


def source_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def from_base(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module of ``from X import ...``; relative imports are made absolute from ``module``."""
    if not node.level:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    anchor = package[: len(package) - (node.level - 1)]  # up level - 1 packages more
    return ".".join(anchor + ([node.module] if node.module else []))


def imported_modules(node: ast.Import | ast.ImportFrom, module: str, is_package: bool, modules: set[str]) -> list[str]:
    """The modules an import statement names: ``import a.b`` gives ``a.b``; ``from a.b import c`` gives
    ``a.b.c`` where that is a module (a submodule imported by name), else ``a.b``."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = from_base(node, module, is_package)
    names = [f"{base}.{alias.name}" for alias in node.names]
    return list(dict.fromkeys(name if name in modules else base for name in names))


def module_names() -> set[str]:
    return {module_name(f) for f in source_files()}


def import_edges() -> list[Edge]:
    modules = module_names()
    edges = []
    for path in source_files():
        module = module_name(path)
        for node in ast.walk(parse(path)):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for name in imported_modules(node, module, path.name == "__init__.py", modules):
                if name == TOP or name.startswith(TOP + "."):
                    edges.append(Edge(module, name, str(path.relative_to(ROOT)), node.lineno))
    return sorted(set(edges), key=lambda e: (e.file, e.line, e.imported))


def package_graph(edges: list[Edge]) -> dict[str, dict[str, list[Edge]]]:
    """package -> imported package -> the imports behind that arrow (a package's own imports left out)."""
    graph: dict[str, dict[str, list[Edge]]] = defaultdict(lambda: defaultdict(list))
    for e in edges:
        if e.source != e.target:
            graph[e.source][e.target].append(e)
    return graph


def strongly_connected(nodes: set[str], graph) -> list[list[str]]:
    """Tarjan's components with more than one package: each one holds at least one cycle."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, {})):
            if w not in nodes:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def one_cycle(component: list[str], graph) -> list[str]:
    """A shortest cycle through the first package of a strongly connected component (breadth first)."""
    start, members = component[0], set(component)
    previous, frontier = {start: None}, [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph.get(v, {})):
                if w == start:
                    path = [v]
                    while previous[path[-1]] is not None:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if w in members and w not in previous:
                    previous[w] = v
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no cycle through {start}")


def describe_cycles(nodes: set[str], graph) -> str:
    lines = []
    for component in strongly_connected(nodes, graph):
        cycle = one_cycle(component, graph)
        lines.append(f"cycle: {' -> '.join(cycle)}   (packages in this knot: {', '.join(component)})")
        for a in component:
            for b in component:
                for e in graph.get(a, {}).get(b, []):
                    lines.append(f"    {a} -> {b}   {e}")
    return "\n".join(lines)


def layering_violations(edges: list[Edge]) -> list[tuple[Edge, str]]:
    bad = []
    for e in edges:
        a, b = e.source, e.target
        if a == b:
            continue
        la, lb = LAYERS[a], LAYERS[b]
        if lb > la:
            bad.append((e, f"{a} (layer {la}) imports the higher {b} (layer {lb})"))
        elif lb == la and la != FREE_LAYER and (a, b) not in SIBLINGS:
            bad.append((e, f"{a} imports its sibling {b} (both layer {la}), not a listed pair"))
    return bad


def test_every_package_has_a_layer():
    unplaced = sorted({package_of(module_name(f)) for f in source_files()} - set(LAYERS))
    assert not unplaced, f"packages with no layer in tests/test_architecture.py LAYERS: {unplaced}"


def top_level_names(tree: ast.Module) -> set[str] | None:
    """Names a module defines at its top level (also under ``if``/``try``); None when it cannot
    tell (a star import or a module ``__getattr__``)."""
    names: set[str] = set()
    body = list(tree.body)
    while body:
        node = body.pop()
        if isinstance(node, (ast.If, ast.Try)):
            body += node.body + node.orelse + getattr(node, "finalbody", [])
            body += [n for h in getattr(node, "handlers", []) for n in h.body]
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            if any(a.name == "*" for a in node.names):
                return None
            names.update(a.asname or a.name.split(".")[0] for a in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
    return None if "__getattr__" in names else names


def missing_imports() -> list[str]:
    """``import``s of lookright modules that do not exist, and ``from lookright.x import name`` where
    ``x`` neither defines ``name`` nor has a submodule of that name."""
    modules = module_names()
    files = {module_name(f): f for f in source_files()}
    defined = {m: top_level_names(parse(f)) for m, f in files.items()}
    missing = []
    for path in source_files():
        module = module_name(path)
        for node in ast.walk(parse(path)):
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}: {module} imports"
            if isinstance(node, ast.Import):
                missing += [f"{where} {a.name}: no such module" for a in node.names
                            if a.name.startswith(TOP + ".") and a.name not in modules]
            elif isinstance(node, ast.ImportFrom):
                base = from_base(node, module, path.name == "__init__.py")
                if base != TOP and not base.startswith(TOP + "."):
                    continue
                if base not in modules:
                    missing.append(f"{where} from {base}: no such module")
                    continue
                missing += [f"{where} {a.name} from {base}: no such name or submodule" for a in node.names
                            if defined[base] is not None and a.name != "*" and a.name not in defined[base]
                            and f"{base}.{a.name}" not in modules]
    return missing


def test_every_lookright_import_names_an_existing_module_and_name():
    """A module or function that was moved or deleted leaves ImportErrors behind, in lazy imports too."""
    missing = missing_imports()
    assert not missing, "imports that cannot succeed:\n" + "\n".join(missing)


def test_imports_only_go_down_the_layers():
    bad = layering_violations(import_edges())
    report = "\n".join(f"{e}   [{why}]" for e, why in bad)
    assert not bad, f"{len(bad)} imports against the layering (file:line: module imports module):\n{report}"


def test_layer_two_packages_import_each_other_without_a_cycle():
    nodes = {p for p, layer in LAYERS.items() if layer == FREE_LAYER}
    cycles = describe_cycles(nodes, package_graph(import_edges()))
    assert not cycles, f"import cycles among the layer-{FREE_LAYER} packages:\n{cycles}"


def test_package_import_graph_is_acyclic():
    graph = package_graph(import_edges())
    nodes = set(graph) | {b for targets in graph.values() for b in targets}
    cycles = describe_cycles(nodes, graph)
    assert not cycles, f"import cycles between packages of lookright:\n{cycles}"


def test_no_module_imports_pyplot_or_switches_the_backend():
    """Figures use ``matplotlib.figure.Figure``: importing lookright must leave a caller's backend alone."""
    bad = []
    for path in source_files():
        for node in ast.walk(parse(path)):
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.Import) and any(a.name.startswith("matplotlib.pyplot") for a in node.names):
                bad.append(f"{where}: imports matplotlib.pyplot")
            elif isinstance(node, ast.ImportFrom) and node.module == "matplotlib" and \
                    {a.name for a in node.names} & {"pyplot", "use"}:
                bad.append(f"{where}: from matplotlib import {', '.join(a.name for a in node.names)}")
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("matplotlib.pyplot"):
                bad.append(f"{where}: from {node.module} import ...")
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "use" \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id in {"matplotlib", "mpl"}:
                bad.append(f"{where}: calls matplotlib.use")
    assert not bad, "\n".join(bad)


# ---- the checker checks: small hand-made graphs ----

def test_checker_finds_cycles_and_higher_imports():
    e = Edge("lookright.targets.vlm", "lookright.vlm.dense", "t.py", 3)
    f = Edge("lookright.vlm.teach", "lookright.targets.cache", "v.py", 7)
    g = Edge("lookright.vlm.teach", "lookright.train.trainer", "v.py", 9)
    h = Edge("lookright.rl.figures", "lookright.vlm.figures", "r.py", 1)
    ok = Edge("lookright.report.figures", "lookright.atomic", "f.py", 2)
    graph = package_graph([e, f, g, h, ok])
    assert strongly_connected(set(LAYERS), graph) == [["targets", "vlm"]]
    assert one_cycle(["targets", "vlm"], graph) == ["targets", "vlm", "targets"]
    assert "t.py:3" in describe_cycles(set(LAYERS), graph)
    assert [edge for edge, _ in layering_violations([e, f, g, h, ok])] == [e, g, h]
    known = {"lookright.targets", "lookright.targets.cache", "lookright.train", "lookright.train.trainer"}
    assert imported_modules(ast.parse("from . import cache, Cache").body[0], "lookright.targets.vlm", False, known) \
        == ["lookright.targets.cache", "lookright.targets"]
    assert imported_modules(ast.parse("from ..train import trainer, x, y").body[0], "lookright.vlm", True, known) \
        == ["lookright.train.trainer", "lookright.train"]
    assert imported_modules(ast.parse("import lookright.train.trainer").body[0], "lookright.vlm", False, known) \
        == ["lookright.train.trainer"]
    code = "import a.b\nfrom c import d as e\nX: int = 1\nif t:\n    def f(): pass\nelse:\n    class G: pass\n" \
           "try:\n    H = 1\nexcept ImportError:\n    H, (i, j) = 2, (3, 4)\n"
    assert top_level_names(ast.parse(code)) == {"a", "e", "X", "f", "G", "H", "i", "j"}
    assert top_level_names(ast.parse("from x import *")) is None


# ---- tests run from any folder ----

CONFIG_PREFIX = "configs" + "/"  # spelt in two pieces so this file does not match itself
JOINERS = {"glob", "rglob", "joinpath"}  # base.glob("configs/...") is anchored on base


def relative_config_literals(tree: ast.Module) -> list[tuple[int, str]]:
    """String literals (and f-strings) that start with ``configs/`` and are used on their own, that is
    not joined onto a base folder (``base / "configs/x.yaml"``, ``base.glob("configs/*.yaml")``)."""
    anchored = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            anchored.add(id(node.right))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in JOINERS:
            anchored.update(id(a) for a in node.args)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            first = node.values[0] if node.values else None
            text = first.value if isinstance(first, ast.Constant) and isinstance(first.value, str) else ""
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
        else:
            continue
        if text.removeprefix("./").startswith(CONFIG_PREFIX) and id(node) not in anchored:
            found.append((node.lineno, text))
    return sorted(set(found))


def test_tests_do_not_name_configs_relative_to_the_working_folder():
    """Tests name configs by absolute path (conftest.CONFIGS), so pytest runs from any folder;
    test_docs.py runs the docs' own commands with an explicit cwd."""
    bad = []
    for path in sorted((ROOT / "tests").glob("*.py")):
        if path.name == "test_docs.py":
            continue
        bad += [f"tests/{path.name}:{line}: {text!r}" for line, text in relative_config_literals(parse(path))]
    assert not bad, "relative config paths (use conftest.CONFIGS / ...):\n" + "\n".join(bad)


def test_relative_config_check_sees_bare_paths_only():
    code = ('a = "configs/x.yaml"\nb = f"./configs/{n}.yaml"\nc = ROOT / "configs/x.yaml"\n'
            'd = ROOT.glob("configs/*.yaml")\ne = ROOT / "configs" / "x.yaml"\n')
    assert relative_config_literals(ast.parse(code)) == [(1, CONFIG_PREFIX + "x.yaml"), (2, "./" + CONFIG_PREFIX)]
