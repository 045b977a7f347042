"""The import graph of verl_rec: no upward import between units, no import circle between modules.

The layer order is the one docs/architecture.md documents (between its ``import layers``
markers): a unit (a subpackage, or a top-level module) imports only units of lower layers. The
imports are read with ``ast``, function-local ones included (they run too, only later), and
``if TYPE_CHECKING:`` blocks left out (they never run). Fast: no module is imported.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "verl_rec"
ARCHITECTURE = ROOT / "docs" / "architecture.md"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def unit(module: str) -> str:
    """``verl_rec.reward.scorer`` -> ``reward``; ``verl_rec.qrels`` -> ``qrels``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node that can run: all of them but the bodies of ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _resolve(name: str) -> str | None:
    """The verl_rec module ``name`` loads (``pkg.attr`` -> ``pkg`` when ``attr`` is no module)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in MODULES:
            return candidate
        parts.pop()
    return None


def imports_of(module: str) -> set[str]:
    """The verl_rec modules ``module`` imports at run time (module-level and function-local)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            names = [f"{source}.{alias.name}" for alias in node.names]
        for name in names:
            target = _resolve(name) if name.split(".")[0] == "verl_rec" else None
            if target is not None and target != module:
                found.add(target)
    return found


GRAPH = {module: imports_of(module) for module in MODULES}


def documented_layers() -> dict[str, int]:
    """``unit -> layer`` from the block between the ``import layers`` markers of architecture.md."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    block = re.search(r"<!-- import layers -->(.*?)<!-- /import layers -->", text, re.S)
    assert block, "docs/architecture.md lost its <!-- import layers --> block"
    layers: dict[str, int] = {}
    for line in block.group(1).splitlines():
        row = re.match(r"\s*(\d+)\s+(.+)", line)
        if row:
            for name in re.findall(r"[a-z_]+", row.group(2)):
                assert name not in layers, f"{name} is in two layers of docs/architecture.md"
                layers[name] = int(row.group(1))
    return layers


def test_every_unit_has_a_documented_layer():
    layers = documented_layers()
    units = {unit(m) for m in MODULES} - {"verl_rec"}  # the package's own __init__ imports nothing of it
    assert not units - set(layers), f"add these to the import layers of docs/architecture.md: {sorted(units - set(layers))}"
    assert not set(layers) - units, f"docs/architecture.md names units that do not exist: {sorted(set(layers) - units)}"


def test_no_unit_imports_its_own_layer_or_a_higher_one():
    layers = documented_layers()
    wrong = sorted(
        f"{module} -> {target} (layer {layers[unit(module)]} -> {layers[unit(target)]})"
        for module, targets in GRAPH.items() if unit(module) in layers
        for target in targets
        if unit(target) != unit(module) and layers[unit(target)] >= layers[unit(module)]
    )
    assert not wrong, "imports against the layers of docs/architecture.md:\n" + "\n".join(wrong)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_circle_between_modules():
    assert not _cycles(GRAPH), f"import circles: {_cycles(GRAPH)}"


def test_the_checks_see_function_local_imports_and_skip_type_checking_ones():
    """Guards of the guard: a function-local import is an edge; a TYPE_CHECKING one is not."""
    assert "verl_rec.integration.reward_manager" in GRAPH["verl_rec.integration.plugin"]  # imported in a function
    assert "verl_rec.retrieval.service.config" not in GRAPH["verl_rec.retrieval.service.placement"]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
