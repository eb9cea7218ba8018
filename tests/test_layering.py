"""Dependencies point one way (docs: DESIGN.md section 2): agents may use sandboxes and boards,
sandboxes may use boards, boards uses neither.

Every module of each app is parsed (never imported), and every import in it counts: at module level,
inside a function, relative, or `importlib.import_module` with a literal name. `orket_site` is the
project package that composes the apps, so it may import any of them; an app may use an orket_site
module only when that module, followed through the orket_site modules it imports in turn, reaches no
app the importing app may not use.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT_PACKAGE = "orket_site"
# The apps each app must not import, lowest layer first.
FORBIDDEN: dict[str, frozenset[str]] = {
    "boards": frozenset({"sandboxes", "agents"}),
    "sandboxes": frozenset({"agents"}),
    "agents": frozenset(),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def _modules() -> dict[str, Path]:
    """Every module of the apps and of the project package, by dotted name."""
    found: dict[str, Path] = {}
    for package in (*FORBIDDEN, PROJECT_PACKAGE):
        for path in sorted((ROOT / package).rglob("*.py")):
            found[_module_name(path)] = path
    return found


def _is_import_module_call(node: ast.Call) -> bool:
    function = node.func
    name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")
    return name == "import_module" and bool(node.args)


def imported_names(source: str, module: str, *, is_package: bool = False) -> Iterator[tuple[int, str]]:
    """(line, dotted name) of everything `module` imports; `from a import b` yields `a` and `a.b`,
    since b may be a module or a name defined in a."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*base_parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            yield node.lineno, base
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"
        elif isinstance(node, ast.Call) and _is_import_module_call(node):
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                yield node.lineno, first.value


def _resolve(name: str) -> list[str]:
    """The known modules that importing `name` runs: the longest prefix that is a module, and the
    packages above it."""
    modules = _modules()
    parts = name.split(".")
    while parts and ".".join(parts) not in modules:
        parts.pop()
    return [".".join(parts[:end]) for end in range(1, len(parts) + 1) if ".".join(parts[:end]) in modules]


@cache
def _imports_of(module: str) -> tuple[tuple[int, str], ...]:
    path = _modules()[module]
    names = imported_names(path.read_text(encoding="utf-8"), module, is_package=path.name == "__init__.py")
    return tuple(sorted(set(names)))


def _reached_through_project_package(start: str, forbidden: frozenset[str]) -> list[str] | None:
    """A chain of orket_site modules from `start` to a module of a forbidden app, or None."""
    chains: dict[str, list[str]] = {start: [start]}
    pending = [start]
    while pending:
        current = pending.pop()
        for _, name in _imports_of(current):
            if name.split(".")[0] in forbidden:
                return [*chains[current], name]
            for reached in _resolve(name):
                if reached.split(".")[0] == PROJECT_PACKAGE and reached not in chains:
                    chains[reached] = [*chains[current], reached]
                    pending.append(reached)
    return None


def upward_imports() -> list[str]:
    """One sentence per import line that reaches a forbidden app, directly or through orket_site."""
    problems: dict[str, str] = {}
    for module, path in _modules().items():
        forbidden = FORBIDDEN.get(module.split(".")[0])
        if not forbidden:
            continue
        for line, name in _imports_of(module):
            where = f"{path.relative_to(ROOT)}:{line}"
            if name.split(".")[0] in forbidden:
                problems.setdefault(where, f"{where} imports {name}")
                continue
            for reached in _resolve(name):
                if reached.split(".")[0] != PROJECT_PACKAGE:
                    continue
                chain = _reached_through_project_package(reached, forbidden)
                if chain:
                    problems.setdefault(where, f"{where} imports {name}, which reaches {' -> '.join(chain)}")
    return sorted(problems.values())


def test_no_app_imports_a_layer_above_it() -> None:
    assert upward_imports() == []


def test_every_app_module_is_walked() -> None:
    walked = {module.split(".")[0] for module in _modules()}
    assert walked == {*FORBIDDEN, PROJECT_PACKAGE}
    assert "boards.settings_pages" in _modules() and "agents.gitea.views" in _modules()


def test_function_level_relative_and_dynamic_imports_are_seen() -> None:
    source = (
        "from . import machine\n"
        "def later():\n"
        "    from agents.models import Run\n"
        "    import sandboxes.compose\n"
        "    importlib.import_module('agents.tasks')\n"
        "    return Run\n"
    )

    names = {name for _, name in imported_names(source, "boards.settings_pages")}

    assert {"boards.machine", "agents.models", "sandboxes.compose", "agents.tasks"} <= names


def test_an_import_through_the_project_package_counts() -> None:
    # orket_site.backup composes the apps; were boards to import it, agents would come with it.
    chain = _reached_through_project_package("orket_site.backup", FORBIDDEN["boards"])

    assert chain is not None and chain[0] == "orket_site.backup" and chain[-1].split(".")[0] == "agents"
