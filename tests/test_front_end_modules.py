"""The front end is native ES modules (no build step): every import resolves to a file that exports
what is imported, pages share state through imports rather than `window`, one module fetches and one
opens sockets, templates load the scripts as modules, and no script grows into a page-sized blob."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from django.contrib.auth.models import AbstractUser
from django.test import Client

from boards.models import STATUS_CHOICES, Epic, Project, ProjectRole

REPO = Path(__file__).resolve().parent.parent
ORKET = REPO / "static" / "orket"
TEMPLATES = REPO / "templates"
MAX_LINES = 600

# The globals a module may set: hooks the browser tests read (tests/browser), nothing reads them in
# the pages themselves.
TEST_HOOKS = {"orketBoard", "orketRun", "orketSandboxLogs"}
# What a module may touch on `window` besides those: the browser's own API and Chart.js, the one
# classic (vendored) script of the run and epic pages.
BROWSER_API = {"location", "addEventListener", "scrollX", "scrollY", "confirm", "alert", "setTimeout", "Chart"}

IMPORT = re.compile(
    r"^\s*(?:import|export)\s+(?:(\{[^}]*\})|\*\s+as\s+[\w$]+|[\w$]+)?\s*(?:from\s+)?[\"']([^\"']+)[\"']",
    re.MULTILINE,
)
EXPORT_DECLARATION = re.compile(r"^export\s+(?:async\s+)?(?:function|var|let|const|class)\s+([\w$]+)", re.MULTILINE)
EXPORT_LIST = re.compile(r"^export\s*\{([^}]*)\}", re.MULTILINE)
WINDOW = re.compile(r"\bwindow\.([\w$]+)(\s*=(?!=))?")
SCRIPT = re.compile(r"<script\b([^>]*)\bsrc=\"\{% static '([^']+)' %\}\"", re.IGNORECASE)


def _modules() -> list[Path]:
    return sorted(ORKET.rglob("*.js"))


def _code(path: Path) -> str:
    """The source without comments, so prose about `window.x` or `fetch(` does not count."""
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.DOTALL)
    return re.sub(r"(?m)^\s*//.*$|(?<=[;{}),])\s*//.*$", "", text)


def _exports(path: Path) -> set[str]:
    code = _code(path)
    names = set(EXPORT_DECLARATION.findall(code))
    for group in EXPORT_LIST.findall(code):
        names.update(part.split(" as ")[-1].strip() for part in group.split(",") if part.strip())
    return names


def _imports(path: Path) -> list[tuple[list[str], str]]:
    found = []
    for names, specifier in IMPORT.findall(_code(path)):
        imported = [part.split(" as ")[0].strip() for part in names.strip("{}").split(",") if part.strip()]
        found.append((imported, specifier))
    return found


def test_there_are_modules_to_check() -> None:
    names = {path.relative_to(ORKET).as_posix() for path in _modules()}
    assert {"api.js", "socket.js", "dom.js", "board/main.js", "run/main.js"} <= names


def test_every_import_is_a_relative_path_to_a_module_that_exports_the_names() -> None:
    problems = []
    for path in _modules():
        for names, specifier in _imports(path):
            if not specifier.startswith(("./", "../")):
                problems.append(f"{path.relative_to(ORKET)} imports {specifier!r}: only relative paths, no other host")
                continue
            target = (path.parent / specifier).resolve()
            if not target.is_file() or ORKET not in target.parents:
                problems.append(f"{path.relative_to(ORKET)} imports {specifier!r}, which is not a module of the site")
                continue
            missing = sorted(set(names) - _exports(target))
            if missing:
                problems.append(f"{path.relative_to(ORKET)} imports {missing} that {specifier} does not export")
    assert not problems, "\n".join(problems)


def test_modules_share_no_state_through_window() -> None:
    problems = []
    for path in _modules():
        for name, assigned in WINDOW.findall(_code(path)):
            where = path.relative_to(ORKET)
            if assigned and name not in TEST_HOOKS:
                problems.append(f"{where} sets window.{name}: share it through an export instead")
            elif not assigned and name not in BROWSER_API:
                problems.append(f"{where} reads window.{name}: import it instead")
    assert not problems, "\n".join(problems)


def test_one_module_fetches_and_one_opens_sockets() -> None:
    fetching = sorted(p.relative_to(ORKET).as_posix() for p in _modules() if re.search(r"\bfetch\(", _code(p)))
    sockets = sorted(p.relative_to(ORKET).as_posix() for p in _modules() if "new WebSocket(" in _code(p))
    assert fetching == ["api.js"]
    assert sockets == ["socket.js"]


def test_status_labels_come_from_the_server() -> None:
    for path in _modules():
        code = _code(path)
        assert "Waiting for developer" not in code and "Ready for testing" not in code, (
            f"{path.relative_to(ORKET)} keeps its own copy of the status labels"
        )


@pytest.mark.django_db
def test_the_board_page_hands_its_script_the_status_labels_of_the_model(
    project: Project, member_of: Callable[..., AbstractUser]
) -> None:
    Epic.objects.create(project=project, name="First", rank=1)
    client = Client()
    client.force_login(member_of(project, ProjectRole.VIEWER))
    page = client.get(f"/projects/{project.pk}/board/").content.decode()
    embedded = page.split('<script id="board-config" type="application/json">', 1)[1].split("</script>", 1)[0]
    labels = json.loads(embedded)["statusLabels"]
    assert labels == dict(STATUS_CHOICES)
    assert labels["waiting_for_developer"] == "Waiting for developer"


def test_no_script_is_page_sized() -> None:
    long = {
        path.relative_to(ORKET).as_posix(): count
        for path in _modules()
        if (count := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"split these by concern (at most {MAX_LINES} lines): {long}"


def test_templates_load_the_site_scripts_as_modules_that_exist() -> None:
    loaded = []
    for template in sorted(TEMPLATES.rglob("*.html")):
        for attributes, source in SCRIPT.findall(template.read_text(encoding="utf-8")):
            if not source.startswith("orket/"):
                continue  # vendored classic scripts (Chart.js)
            loaded.append(source)
            assert 'type="module"' in attributes, f"{template.relative_to(REPO)} loads {source} as a classic script"
            assert (REPO / "static" / source).is_file(), f"{template.relative_to(REPO)} loads {source}, which is gone"
    assert "orket/board/main.js" in loaded and "orket/run/main.js" in loaded
