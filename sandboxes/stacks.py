"""Stack detection: what did the agents build in a workspace folder, and what does it need to run?

Pure (no Django) and safe on hostile folders: symbolic links are never followed, only regular
files are read, each read is capped, the walk is bounded in depth and in entries, and a file that
does not parse is noted in the message instead of crashing the detection.

`detect_stack(path)` returns a dict of this shape (compose generation is written against it):

    {
        "kind": "python" | "node" | "dotnet" | "unknown",
        "framework": "django" | "fastapi" | "flask" | "react" | "vue" | "",
        "databases": ["postgresql", "mongodb"],   # sorted, possibly empty
        "entrypoint": str,     # relative to root: "manage.py", "main:app", "npm start", "Api.csproj", or ""
        "message": str,        # plain words for people: what was found and why it was chosen
        "root": str,           # folder of the chosen project, relative to the workspace ("." for the top)
        "components": [...],   # every project found, each {"kind","framework","databases","entrypoint","root"}
    }

Mixed repositories are decided, not guessed: a server framework (Django, FastAPI, Flask) or a .NET
web project comes first, then a React or Vue front end, then a plain .NET, Python or Node project;
among equals the shallower folder wins, then the path in alphabetical order. Databases are those
the chosen project needs, plus those of the other components (a front end's backend still needs
its database in the sandbox).
"""

from __future__ import annotations

import json
import os
import re
import stat
import tomllib
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KINDS = ("python", "node", "dotnet", "unknown")
FRAMEWORKS = ("django", "fastapi", "flask", "react", "vue", "")
POSTGRESQL = "postgresql"
MONGODB = "mongodb"

MAX_DEPTH = 3  # the workspace itself is depth 0; projects may sit up to three folders down
MAX_DIRS = 2_000
MAX_ENTRIES = 20_000
MAX_MANIFEST_BYTES = 1_000_000
MAX_SOURCE_BYTES = 256_000
MAX_SOURCE_FILES = 400

SKIP_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "node_modules",
        "__pycache__",
        ".venv",
        "venv",
        "env",
        ".env",
        ".tox",
        ".nox",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        "site-packages",
        "dist",
        "build",
        "bin",
        "obj",
        ".next",
        ".nuxt",
        "coverage",
        "verification",
    }
)

PYTHON_MARKERS = ("pyproject.toml", "requirements.txt", "manage.py")
NODE_MARKER = "package.json"

PYTHON_DATABASES = {
    "psycopg": POSTGRESQL,
    "psycopg-binary": POSTGRESQL,
    "psycopg-c": POSTGRESQL,
    "psycopg-pool": POSTGRESQL,
    "psycopg2": POSTGRESQL,
    "psycopg2-binary": POSTGRESQL,
    "asyncpg": POSTGRESQL,
    "pg8000": POSTGRESQL,
    "pymongo": MONGODB,
    "motor": MONGODB,
    "mongoengine": MONGODB,
    "beanie": MONGODB,
    "djongo": MONGODB,
}
NODE_DATABASES = {
    "pg": POSTGRESQL,
    "pg-promise": POSTGRESQL,
    "postgres": POSTGRESQL,
    "mongoose": MONGODB,
    "mongodb": MONGODB,
}
DOTNET_DATABASES = {
    "npgsql": POSTGRESQL,
    "npgsql.entityframeworkcore.postgresql": POSTGRESQL,
    "mongodb.driver": MONGODB,
    "mongodb.entityframeworkcore": MONGODB,
}

_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_POSTGRES_URL = re.compile(
    r"""(?:DATABASE_URL|DB_URL|POSTGRES_URL)\s*[=:]\s*["']?postgres(?:ql)?(?:\+\w+)?://"""
    r"""|django\.db\.backends\.postgresql|["']postgres(?:ql)?(?:\+\w+)?://""",
    re.IGNORECASE,
)
_MONGO_URL = re.compile(r"""mongodb(?:\+srv)?://""", re.IGNORECASE)
_FASTAPI_APP = re.compile(r"^(\w+)\s*(?::\s*[\w.]+\s*)?=\s*(?:fastapi\.)?FastAPI\s*\(", re.MULTILINE)
_FLASK_APP = re.compile(r"^(\w+)\s*(?::\s*[\w.]+\s*)?=\s*(?:flask\.)?Flask\s*\(", re.MULTILINE)
_SOURCE_SUFFIXES = frozenset({".py", ".js", ".mjs", ".cjs", ".ts", ".cs", ".json", ".toml", ".yml", ".yaml", ".ini"})
_SOURCE_SUFFIXES_CFG = frozenset({".cfg", ".env", ".conf"})


@dataclass
class _Folder:
    """What the walk saw in one folder."""

    path: Path
    rel: str
    depth: int
    files: list[str] = field(default_factory=list)


@dataclass
class _Component:
    kind: str
    framework: str
    databases: set[str]
    entrypoint: str
    root: str
    depth: int
    notes: list[str] = field(default_factory=list)
    web: bool = False

    def rank(self) -> tuple[int, int, str]:
        if self.framework in ("django", "fastapi", "flask") or (self.kind == "dotnet" and self.web):
            tier = 0
        elif self.framework in ("react", "vue"):
            tier = 1
        elif self.kind == "dotnet":
            tier = 2
        elif self.kind == "python":
            tier = 3
        else:
            tier = 4
        return (tier, self.depth, self.root)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "framework": self.framework,
            "databases": sorted(self.databases),
            "entrypoint": self.entrypoint,
            "root": self.root,
        }


def detect_stack(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Decide the stack of the workspace at `path` (see the module docstring for the shape)."""
    root = Path(path)
    if not root.is_dir() or root.is_symlink():
        return _unknown(f"The workspace folder {root} does not exist or is not a folder; nothing to detect.")
    folders, truncated = _walk(root)
    components: list[_Component] = []
    for folder in folders:
        components.extend(_components_in(folder))
    if not components:
        where = f"within {MAX_DEPTH} folder levels" + (" (the walk stopped early: too many files)" if truncated else "")
        return _unknown(
            "No stack recognised: there is no pyproject.toml, requirements.txt, manage.py, package.json or *.csproj "
            f"{where}. Add one so Orket knows how to run the app."
        )
    components.sort(key=_Component.rank)
    chosen = components[0]
    databases = set(chosen.databases)
    for other in components[1:]:
        databases |= other.databases
    result = chosen.as_dict()
    result["databases"] = sorted(databases)
    result["components"] = [component.as_dict() for component in components]
    result["message"] = _message(chosen, components[1:], databases, truncated)
    return result


def _unknown(message: str) -> dict[str, Any]:
    return {
        "kind": "unknown",
        "framework": "",
        "databases": [],
        "entrypoint": "",
        "message": message,
        "root": ".",
        "components": [],
    }


_LABELS = {"python": "Python", "node": "Node", "dotnet": ".NET", "unknown": "unknown"}
_FRAMEWORK_LABELS = {"django": "Django", "fastapi": "FastAPI", "flask": "Flask", "react": "React", "vue": "Vue"}
_DATABASE_LABELS = {POSTGRESQL: "PostgreSQL", MONGODB: "MongoDB"}


def _describe(component: _Component) -> str:
    text = _LABELS[component.kind]
    if component.framework:
        text += f" ({_FRAMEWORK_LABELS[component.framework]})"
    return text + (" at the top of the workspace" if component.root == "." else f" in {component.root}/")


def _message(chosen: _Component, others: list[_Component], databases: set[str], truncated: bool) -> str:
    parts = [f"{_describe(chosen)}"]
    parts[0] += f", started with {chosen.entrypoint}" if chosen.entrypoint else ", with no clear entry point"
    if databases:
        parts.append("needs " + " and ".join(_DATABASE_LABELS[name] for name in sorted(databases)))
    text = "; ".join(parts) + "."
    if others:
        text += " Also found: " + ", ".join(_describe(other) for other in others) + "."
        text += " Chosen because " + _why(chosen, others[0]) + "."
    notes = list(chosen.notes)
    for other in others:
        notes.extend(other.notes)
    if notes:
        text += " Notes: " + " ".join(notes)
    if truncated:
        text += " The workspace is large; only part of it was looked at."
    return text


def _why(chosen: _Component, runner_up: _Component) -> str:
    first, second = chosen.rank(), runner_up.rank()
    if first[0] < second[0]:
        if first[0] == 0:
            return "a server application comes before a front end or a plain project"
        if first[0] == 1:
            return "a front-end application comes before a plain project"
        return "a project with a clearer way to run comes first"
    if first[1] < second[1]:
        return "it sits closer to the top of the workspace"
    return "its folder comes first in alphabetical order"


# -- walking ------------------------------------------------------------------------------------------------


def _walk(root: Path) -> tuple[list[_Folder], bool]:
    """Folders breadth-first up to MAX_DEPTH, never through symbolic links; (folders, stopped early)."""
    folders: list[_Folder] = []
    queue: list[_Folder] = [_Folder(root, ".", 0)]
    entries = 0
    truncated = False
    while queue:
        folder = queue.pop(0)
        if len(folders) >= MAX_DIRS:
            truncated = True
            break
        folders.append(folder)
        try:
            with os.scandir(folder.path) as iterator:
                listing = sorted(iterator, key=lambda entry: entry.name)
        except OSError:
            continue
        for entry in listing:
            entries += 1
            if entries > MAX_ENTRIES:
                return folders, True
            try:
                if entry.is_file(follow_symlinks=False):
                    folder.files.append(entry.name)
                elif entry.is_dir(follow_symlinks=False) and folder.depth < MAX_DEPTH:
                    if entry.name in SKIP_DIRS or entry.name.startswith("."):
                        continue
                    rel = entry.name if folder.rel == "." else f"{folder.rel}/{entry.name}"
                    queue.append(_Folder(Path(entry.path), rel, folder.depth + 1))
            except OSError:
                continue
    return folders, truncated


def _read(path: Path, limit: int) -> str | None:
    """The text of a regular file (never through a symbolic link), at most `limit` bytes; None when unreadable."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not _is_regular(fd):
            return None
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(limit)
    except OSError:
        return None
    finally:
        os.close(fd)
    return data.decode("utf-8", errors="replace")


def _is_regular(fd: int) -> bool:
    return stat.S_ISREG(os.fstat(fd).st_mode)


def _source_files(folder: Path, suffixes: frozenset[str], limit: int = MAX_SOURCE_FILES) -> list[Path]:
    """Regular files with these suffixes under `folder` (bounded, no symbolic links, skipped folders left out)."""
    found: list[Path] = []
    queue: list[tuple[Path, int]] = [(folder, 0)]
    while queue and len(found) < limit:
        current, depth = queue.pop(0)
        try:
            with os.scandir(current) as iterator:
                listing = sorted(iterator, key=lambda entry: entry.name)
        except OSError:
            continue
        for entry in listing:
            try:
                if entry.is_file(follow_symlinks=False):
                    if Path(entry.name).suffix in suffixes or entry.name.startswith(".env"):
                        found.append(Path(entry.path))
                        if len(found) >= limit:
                            break
                elif (
                    entry.is_dir(follow_symlinks=False)
                    and depth < MAX_DEPTH
                    and entry.name not in SKIP_DIRS
                    and not entry.name.startswith(".")
                ):
                    queue.append((Path(entry.path), depth + 1))
            except OSError:
                continue
    return found


# -- per folder ---------------------------------------------------------------------------------------------


def _components_in(folder: _Folder) -> list[_Component]:
    names = set(folder.files)
    found: list[_Component] = []
    if names & set(PYTHON_MARKERS):
        found.append(_python(folder, names))
    if NODE_MARKER in names:
        found.append(_node(folder))
    projects = sorted(name for name in names if name.endswith(".csproj"))
    if projects:
        found.append(_dotnet(folder, projects))
    return found


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_names(lines: list[str]) -> set[str]:
    names: set[str] = set()
    for raw in lines:
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        match = _REQUIREMENT_NAME.match(line)
        if match:
            names.add(_normalise(match.group(1)))
    return names


def _python_dependencies(folder: _Folder, names: set[str], notes: list[str]) -> set[str]:
    deps: set[str] = set()
    requirement_files = sorted(
        name for name in names if name == "requirements.txt" or re.fullmatch(r"requirements[-_.][\w.-]*\.txt", name)
    )
    for name in requirement_files:
        text = _read(folder.path / name, MAX_MANIFEST_BYTES)
        if text is not None:
            deps |= _requirement_names(text.splitlines())
    if "pyproject.toml" in names:
        text = _read(folder.path / "pyproject.toml", MAX_MANIFEST_BYTES)
        if text is not None:
            try:
                data = tomllib.loads(text)
            except tomllib.TOMLDecodeError as error:
                notes.append(
                    f"{_at(folder, 'pyproject.toml')} is not valid TOML ({error}); its dependencies were not read."
                )
            else:
                deps |= _pyproject_dependencies(data)
    return deps


def _pyproject_dependencies(data: dict[str, Any]) -> set[str]:
    lines: list[str] = []
    project = data.get("project")
    if isinstance(project, dict):
        listed = project.get("dependencies")
        if isinstance(listed, list):
            lines.extend(item for item in listed if isinstance(item, str))
        optional = project.get("optional-dependencies")
        if isinstance(optional, dict):
            for group in optional.values():
                if isinstance(group, list):
                    lines.extend(item for item in group if isinstance(item, str))
    names = _requirement_names(lines)
    tool = data.get("tool")
    poetry = tool.get("poetry") if isinstance(tool, dict) else None
    if isinstance(poetry, dict):
        tables = [poetry.get("dependencies"), poetry.get("dev-dependencies")]
        groups = poetry.get("group")
        if isinstance(groups, dict):
            tables.extend(group.get("dependencies") for group in groups.values() if isinstance(group, dict))
        for table in tables:
            if isinstance(table, dict):
                names |= {_normalise(str(key)) for key in table if str(key).lower() != "python"}
    return names


def _at(folder: _Folder, name: str) -> str:
    return name if folder.rel == "." else f"{folder.rel}/{name}"


def _python(folder: _Folder, names: set[str]) -> _Component:
    notes: list[str] = []
    deps = _python_dependencies(folder, names, notes)
    databases = {PYTHON_DATABASES[name] for name in deps if name in PYTHON_DATABASES}
    sources = _source_files(folder.path, frozenset({".py"}) | _SOURCE_SUFFIXES_CFG | {".toml", ".yml", ".yaml", ".ini"})
    texts = [(path, _read(path, MAX_SOURCE_BYTES) or "") for path in sources]
    databases |= _databases_in_texts(text for _, text in texts)
    framework, entrypoint = "", ""
    if "manage.py" in names:
        framework, entrypoint = "django", "manage.py"
    else:
        fastapi_app = _app_in(folder, texts, _FASTAPI_APP)
        flask_app = _app_in(folder, texts, _FLASK_APP)
        has_fastapi = "fastapi" in deps or bool(fastapi_app)
        has_flask = "flask" in deps or bool(flask_app)
        # Both listed: the one whose app some module creates wins; when both or neither do, FastAPI.
        if has_flask and (not has_fastapi or (flask_app and not fastapi_app)):
            framework, entrypoint = "flask", flask_app
        elif has_fastapi:
            framework, entrypoint = "fastapi", fastapi_app
        if framework and not entrypoint:
            notes.append(
                f"{_FRAMEWORK_LABELS[framework]} is a dependency in {folder.rel}/ but no module creates the app."
                if folder.rel != "."
                else f"{_FRAMEWORK_LABELS[framework]} is a dependency but no module creates the app."
            )
        if not framework:
            if "django" in deps:
                notes.append(
                    "Django is a dependency but there is no manage.py, so it is run as a plain Python project."
                )
            entrypoint = _python_script(folder, names)
    return _Component("python", framework, databases, entrypoint, folder.rel, folder.depth, notes)


def _app_in(folder: _Folder, texts: list[tuple[Path, str]], pattern: re.Pattern[str]) -> str:
    """`module:variable` of the first module (shallowest, then by name) that creates the app."""
    candidates: list[tuple[int, str, str]] = []
    for path, text in texts:
        if path.suffix != ".py":
            continue
        match = pattern.search(text)
        if not match:
            continue
        rel = path.relative_to(folder.path).with_suffix("")
        parts = rel.parts
        if not all(part.isidentifier() for part in parts):
            continue
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if module:
            candidates.append((len(parts), module, match.group(1)))
    if not candidates:
        return ""
    _, module, variable = min(candidates)
    return f"{module}:{variable}"


def _python_script(folder: _Folder, names: set[str]) -> str:
    for name in ("main.py", "app.py", "__main__.py", "run.py", "server.py"):
        if name in names:
            return name
    text = _read(folder.path / "pyproject.toml", MAX_MANIFEST_BYTES) if "pyproject.toml" in names else None
    if text:
        try:
            scripts = tomllib.loads(text).get("project", {}).get("scripts", {})
        except (tomllib.TOMLDecodeError, AttributeError):
            scripts = {}
        if isinstance(scripts, dict) and scripts:
            return str(sorted(scripts)[0])
    return ""


def _databases_in_texts(texts: Any) -> set[str]:
    found: set[str] = set()
    for text in texts:
        if _POSTGRES_URL.search(text):
            found.add(POSTGRESQL)
        if _MONGO_URL.search(text):
            found.add(MONGODB)
    return found


def _node(folder: _Folder) -> _Component:
    notes: list[str] = []
    text = _read(folder.path / NODE_MARKER, MAX_MANIFEST_BYTES) or ""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as error:
        data = {}
        notes.append(f"{_at(folder, NODE_MARKER)} is not valid JSON ({error}); its dependencies were not read.")
    if not isinstance(data, dict):
        notes.append(f"{_at(folder, NODE_MARKER)} is not a JSON object; its dependencies were not read.")
        data = {}
    runtime = _names(data.get("dependencies"))
    development = _names(data.get("devDependencies")) | _names(data.get("peerDependencies"))
    deps = runtime | development
    databases = {NODE_DATABASES[name] for name in deps if name in NODE_DATABASES}
    sources = _source_files(folder.path, frozenset({".js", ".mjs", ".cjs", ".ts"}), limit=200)
    env_files = [folder.path / name for name in folder.files if name.startswith(".env")]
    databases |= _databases_in_texts(_read(path, MAX_SOURCE_BYTES) or "" for path in [*sources, *env_files])
    framework = _node_framework(folder, runtime, development)
    scripts = data.get("scripts") if isinstance(data.get("scripts"), dict) else {}
    if "start" in scripts:
        entrypoint = "npm start"
    elif "dev" in scripts:
        entrypoint = "npm run dev"
    elif isinstance(data.get("main"), str) and data["main"].strip():
        entrypoint = f"node {data['main'].strip()}"
    elif "index.js" in folder.files or "server.js" in folder.files:
        entrypoint = "node " + ("server.js" if "server.js" in folder.files else "index.js")
    else:
        entrypoint = ""
    return _Component("node", framework, databases, entrypoint, folder.rel, folder.depth, notes)


def _names(table: Any) -> set[str]:
    return {str(name).lower() for name in table} if isinstance(table, dict) else set()


def _node_framework(folder: _Folder, runtime: set[str], development: set[str]) -> str:
    def has(names: set[str], framework: str) -> bool:
        if framework == "react":
            return bool(names & {"react", "react-dom", "next"})
        return bool(names & {"vue", "nuxt"})

    react, vue = has(runtime | development, "react"), has(runtime | development, "vue")
    if react and vue:
        if has(runtime, "react") != has(runtime, "vue"):
            return "react" if has(runtime, "react") else "vue"
        vue_files = len(_source_files(folder.path, frozenset({".vue"}), limit=200))
        react_files = len(_source_files(folder.path, frozenset({".jsx", ".tsx"}), limit=200))
        return "vue" if vue_files > react_files else "react"
    return "react" if react else "vue" if vue else ""


def _dotnet(folder: _Folder, projects: list[str]) -> _Component:
    notes: list[str] = []
    databases: set[str] = set()
    web: list[str] = []
    for name in projects:
        text = _read(folder.path / name, MAX_MANIFEST_BYTES) or ""
        if "<!DOCTYPE" in text or "<!ENTITY" in text:
            notes.append(f"{_at(folder, name)} declares a DTD or entities; it was not parsed.")
            continue
        try:
            tree = ET.fromstring(text)  # noqa: S314 - entities refused above, size capped
        except ET.ParseError as error:
            notes.append(f"{_at(folder, name)} is not valid XML ({error}); its packages were not read.")
            continue
        if tree.get("Sdk", "").lower().startswith("microsoft.net.sdk.web"):
            web.append(name)
        for element in tree.iter():
            if element.tag.rsplit("}", 1)[-1] == "PackageReference":
                package = (element.get("Include") or element.get("Update") or "").lower()
                if package in DOTNET_DATABASES:
                    databases.add(DOTNET_DATABASES[package])
    sources = _source_files(folder.path, frozenset({".cs", ".json"}), limit=200)
    databases |= _databases_in_texts(_read(path, MAX_SOURCE_BYTES) or "" for path in sources)
    plain = [name for name in projects if "test" not in name.lower()]
    chosen = (web or plain or projects)[0]
    return _Component("dotnet", "", databases, chosen, folder.rel, folder.depth, notes, web=bool(web))
