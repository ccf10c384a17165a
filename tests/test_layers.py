"""The layout's rule, checked (docs/architecture.md): each layer imports only the layers
below it, nothing imports in a circle, and no blueprint imports another.

    core      the engine: db, migrations, the event store and its pipeline, node, clock...
    sync      replication, on the core alone
    domain    what a shelter does, plain functions over a store (no Flask)
    hq        HQ's registry of shelters and its read models (no Flask)
    render    PDFs, drawings, words, catalogs (no Flask)
    web       what HTTP arrives at: base, inputs, i18n, labels; node/ and hq/ blueprints
    (top)     shelter.app, cli, demo, launch, wsgi: the entry points that join them

Imports inside functions count as much as those at the top: a lazy import is a dependency
all the same, only hidden.
"""

from __future__ import annotations

import ast
from pathlib import Path

from .conftest import ROOT

MAY_IMPORT = {
    "core": {"core"},
    "sync": {"core", "sync"},
    "domain": {"core", "domain"},
    "hq": {"core", "domain", "hq"},
    "render": {"core", "domain", "hq", "render"},
    "web": {"core", "sync", "domain", "hq", "render", "web"},
    "top": {"core", "sync", "domain", "hq", "render", "web", "top"},
}
NO_FLASK = ("core", "sync", "domain", "hq", "render")
FLASK = ("flask", "flask_sock", "werkzeug", "jinja2")


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted([*ROOT.glob("shelter/**/*.py"), *ROOT.glob("sync/**/*.py")]):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every module of ours ``name`` imports, anywhere in it; and outside packages, bare."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            submodules = {f"{base}.{a.name}" for a in node.names} & known
            found.update(submodules)
            if len(submodules) < len(node.names):  # names from the module itself
                found.add(base)
    return {m for m in found if m in known and m != name} | {
        m.split(".")[0] for m in found if m.split(".")[0] in FLASK}


def layer(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "sync":
        return "sync"
    if len(parts) > 1 and parts[1] in MAY_IMPORT and parts[1] != "top":
        return parts[1]
    return "top"


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports(name, path, set(found)) for name, path in found.items()}


def test_every_layer_imports_only_the_layers_below_it():
    wrong = [f"{m} ({layer(m)}) imports {d} ({layer(d)})"
             for m, deps in graph().items() for d in sorted(deps)
             if d not in FLASK and layer(d) not in MAY_IMPORT[layer(m)]]
    assert not wrong, "\n".join(wrong)


def test_nothing_below_the_web_uses_flask():
    wrong = [f"{m} imports {d}" for m, deps in graph().items() for d in sorted(deps)
             if d in FLASK and layer(m) in NO_FLASK]
    assert not wrong, "\n".join(wrong)


def test_no_blueprint_imports_another():
    def blueprint(m: str) -> bool:
        return m.startswith(("shelter.web.node.", "shelter.web.hq."))

    wrong = [f"{m} imports {d}" for m, deps in graph().items() if blueprint(m)
             for d in sorted(deps) if blueprint(d)]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles():
    edges = {m: {d for d in deps if d not in FLASK} for m, deps in graph().items()}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path)
        path.pop()
        state[node] = 2

    for start in sorted(edges):
        if start not in state:
            visit(start, [])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_no_module_over_400_lines():
    """A module a newcomer reads in one sitting: past 400 lines it holds two jobs."""
    long = [f"{name}: {n} lines" for name, path in modules().items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > 400]
    assert not long, "\n".join(long)


def test_the_rule_catches_what_it_should(tmp_path):
    """The checks above are only worth their green if they can go red."""
    assert layer("shelter.core.events") == "core" and layer("sync.apply") == "sync"
    assert layer("shelter.cli") == "top" and layer("shelter.web.node.desk") == "web"
    bad = tmp_path / "shelter" / "core"
    bad.mkdir(parents=True)
    (bad / "x.py").write_text("def f():\n    from shelter.domain import cards\n"
                              "    from flask import request\n")
    found = imports("shelter.core.x", bad / "x.py", {"shelter.domain.cards", "shelter.domain"})
    assert {"shelter.domain.cards", "flask"} <= found
    assert "domain" not in MAY_IMPORT[layer("shelter.core.x")]
