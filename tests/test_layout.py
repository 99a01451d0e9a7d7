"""The layout holds: safe_pip's import graph, read from the source with ``ast``, has no circle
at module level and only points the allowed way (ARCHITECTURE.md § Layout, docs/adr):

    cli -> faces (install, lock, serve, learn, hook) -> check, options
        -> provenance, policy, store, sources -> net, output -> models, errors, text

A room may import its own modules and any lower room. The only imports between peers (rooms of
one level) are the ones in :data:`PEERS`, each with its reason. Every import counts, at module
level and inside functions; imports under ``if TYPE_CHECKING:`` are left out (they never run:
annotations only). And every module imports, in a fresh interpreter.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = "safe_pip"

#: Rooms from the top down; a room may import its own modules and the rooms of lower levels.
LEVELS: tuple[tuple[str, ...], ...] = (
    ("__main__",),
    ("cli",),
    ("install", "lock", "serve", "learn", "hook"),
    ("check", "options"),
    ("provenance", "policy", "store", "sources"),
    ("net", "output"),
    ("models", "errors", "text", "__init__"),
)

#: The imports allowed between rooms of one level, (importer, imported): why.
PEERS: dict[tuple[str, str], str] = {
    ("install", "serve"): "install resolves through an in-process verifying index (serve's)",
    ("install", "lock"): "install -r pylock.toml verifies the lock as 'safe-pip verify' does",
    ("learn", "install"): "learn resolves what a project uses as install resolves (wheels only)",
    ("options", "check"): "options builds the Checker a run uses (check never imports options)",
    ("store", "policy"): "the store keeps the policy room's history model (policy/history.py)",
}

LEVEL_OF = {room: level for level, rooms in enumerate(LEVELS) for room in rooms}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((SRC / PACKAGE).rglob("*.py"))}


def room_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, *, top_level: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements that run: ``top_level`` only those run when the module is imported
    (not inside a function or class body's methods); never those under ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _type_checking(node):
            yield from (i for n in node.orelse for i in _imports_in(n, top_level=top_level))
            continue
        yield from _imports_in(node, top_level=top_level)


def _imports_in(node: ast.AST, *, top_level: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        yield node
    elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) and top_level:
        return
    else:
        yield from _imports(node, top_level=top_level)


def _targets(module: str, node: ast.Import | ast.ImportFrom, known: set[str]) -> set[str]:
    """The safe_pip modules ``node`` (in ``module``) imports, with the packages above them that
    Python runs first (a package's ``__init__`` runs before its modules; not the packages that
    hold ``module`` itself: those are already running when ``module`` runs)."""
    names: list[str] = []
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:
            is_package = (SRC / Path(*module.split("."))).is_dir()
            anchor = module.split(".")[: len(module.split(".")) - node.level + is_package]
            base = ".".join([*anchor, base] if base else anchor)
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            names.append(sub if sub in known else base)
    out: set[str] = set()
    for name in names:
        if name != PACKAGE and not name.startswith(PACKAGE + "."):
            continue
        parts = name.split(".")
        for i in range(2, len(parts) + 1):  # the parents, then the module itself
            prefix = ".".join(parts[:i])
            holds_module = module == prefix or module.startswith(prefix + ".")
            if prefix in known and (i == len(parts) or not holds_module) and prefix != module:
                out.add(prefix)
    return out


def import_graph(*, top_level: bool) -> dict[str, set[str]]:
    modules = all_modules()
    known = set(modules)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        graph[name] = set()
        for node in _imports(tree, top_level=top_level):
            graph[name] |= _targets(name, node, known)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
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
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def upward(graph: dict[str, set[str]]) -> list[str]:
    """Every import that points up, or sideways without a :data:`PEERS` entry."""
    bad = []
    for importer, imported in sorted(graph.items()):
        a = room_of(importer)
        for target in sorted(imported):
            b = room_of(target)
            if a == b:
                continue
            la, lb = LEVEL_OF.get(a), LEVEL_OF.get(b)
            if la is None or lb is None:
                bad.append(f"{importer} -> {target}: room {a if la is None else b} has no level")
            elif lb < la or (lb == la and (a, b) not in PEERS):
                bad.append(f"{importer} ({a}) -> {target} ({b})")
    return bad


def test_every_room_has_a_level() -> None:
    rooms = {room_of(m) for m in all_modules()}
    assert sorted(rooms - set(LEVEL_OF)) == []
    assert sorted(set(LEVEL_OF) - rooms) == []  # no stale room names either


def test_no_import_circle_at_module_level() -> None:
    assert circles(import_graph(top_level=True)) == []


def test_imports_point_down() -> None:
    assert upward(import_graph(top_level=False)) == []


def test_every_peer_import_is_used() -> None:
    graph = import_graph(top_level=False)
    used = {(room_of(a), room_of(b)) for a, targets in graph.items() for b in targets}
    assert sorted(set(PEERS) - used) == []


def test_the_checker_finds_an_upward_import_and_a_circle(tmp_path: Path) -> None:
    """The graph is read as written: an import added inside a function of a lower room is an
    upward import, and a module-level pair is a circle."""
    graph = import_graph(top_level=False)
    graph["safe_pip.models"] = {*graph["safe_pip.models"], "safe_pip.cli"}
    assert "safe_pip.models (models) -> safe_pip.cli (cli)" in upward(graph)
    top = import_graph(top_level=True)
    top["safe_pip.errors"] = {*top["safe_pip.errors"], "safe_pip.check"}
    assert any("safe_pip.errors" in c and "safe_pip.check" in c for c in circles(top))
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from safe_pip.cli import main\n"
        "def f():\n    from safe_pip.check import Checker\n"
    )
    known = set(all_modules())
    seen = {t for n in _imports(tree, top_level=False) for t in _targets("x", n, known)}
    assert seen == {"safe_pip.check"}  # the function's import counts, TYPE_CHECKING's not
    assert [*_imports(tree, top_level=True)][1:] == []  # only `from typing import ...`


def test_every_module_imports_in_a_fresh_interpreter() -> None:
    """One interpreter imports every module (``__main__`` runs the CLI: checked by running it)."""
    names = sorted(m for m in all_modules() if m != f"{PACKAGE}.__main__")
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    proc = subprocess.run(
        [sys.executable, "-I", "-c", code, *names],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run(
        [sys.executable, "-I", "-m", PACKAGE, "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("safe-pip "), proc.stdout


@pytest.mark.parametrize(
    "room", sorted(p.parent.name for p in (SRC / PACKAGE).glob("*/__init__.py"))
)
def test_each_package_says_what_it_holds_and_may_import(room: str) -> None:
    """The first two lines of the docstring: what the room holds, what it may import."""
    init = SRC / PACKAGE / room / "__init__.py"
    doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
    head = doc.split("\n\n", 1)[0].splitlines()
    assert len(head) == 2, f"{init}: {head!r}"
    assert "may import" in " ".join(head).lower(), f"{init}: {head!r}"
