"""Stack detection from a workspace folder: pure, no database."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sandboxes import stacks
from sandboxes.stacks import detect_stack


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def package(deps: dict[str, str] | None = None, dev: dict[str, str] | None = None, **extra: object) -> str:
    return json.dumps({"name": "app", "dependencies": deps or {}, "devDependencies": dev or {}, **extra})


def test_the_shape_is_kept(tmp_path: Path) -> None:
    result = detect_stack(write(tmp_path, {"requirements.txt": "requests\n"}))
    assert set(result) >= {"kind", "framework", "databases", "entrypoint", "message"}
    assert result["kind"] in stacks.KINDS
    assert result["framework"] in stacks.FRAMEWORKS
    assert isinstance(result["databases"], list)
    assert isinstance(result["message"], str) and result["message"]


def test_empty_folder_is_unknown_with_a_clear_message(tmp_path: Path) -> None:
    write(tmp_path, {"README.md": "hello", "notes/todo.txt": "x"})
    result = detect_stack(tmp_path)
    assert result["kind"] == "unknown"
    assert result["framework"] == "" and result["databases"] == [] and result["entrypoint"] == ""
    assert "pyproject.toml" in result["message"] and "package.json" in result["message"]


def test_missing_folder_is_unknown(tmp_path: Path) -> None:
    result = detect_stack(tmp_path / "nowhere")
    assert result["kind"] == "unknown"
    assert "does not exist" in result["message"]


def test_django_when_manage_py(tmp_path: Path) -> None:
    write(tmp_path, {"manage.py": "import django\n", "requirements.txt": "Django>=5.0\npsycopg[binary]>=3\n"})
    result = detect_stack(tmp_path)
    assert (result["kind"], result["framework"], result["entrypoint"]) == ("python", "django", "manage.py")
    assert result["databases"] == ["postgresql"]
    assert "Django" in result["message"] and "PostgreSQL" in result["message"]


def test_django_dependency_without_manage_py_is_plain_python(tmp_path: Path) -> None:
    write(tmp_path, {"requirements.txt": "django\n", "main.py": "print(1)\n"})
    result = detect_stack(tmp_path)
    assert (result["kind"], result["framework"], result["entrypoint"]) == ("python", "", "main.py")
    assert "no manage.py" in result["message"]


def test_fastapi_from_pyproject_with_the_app_module(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "pyproject.toml": '[project]\nname = "svc"\ndependencies = ["fastapi>=0.110", "uvicorn", "asyncpg"]\n',
            "svc/__init__.py": "",
            "svc/api.py": "from fastapi import FastAPI\n\napp = FastAPI(title='x')\n",
        },
    )
    result = detect_stack(tmp_path)
    assert (result["kind"], result["framework"]) == ("python", "fastapi")
    assert result["entrypoint"] == "svc.api:app"
    assert result["databases"] == ["postgresql"]


def test_flask_from_requirements(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "requirements.txt": "# web\nFlask==3.0  # pinned\n-r other.txt\n--index-url https://example\npymongo\n",
            "app.py": "from flask import Flask\napplication = Flask(__name__)\n",
        },
    )
    result = detect_stack(tmp_path)
    assert (result["kind"], result["framework"], result["entrypoint"]) == ("python", "flask", "app:application")
    assert result["databases"] == ["mongodb"]


def test_flask_and_fastapi_listed_the_created_app_decides(tmp_path: Path) -> None:
    write(tmp_path, {"requirements.txt": "fastapi\nflask\n", "web.py": "import flask\nweb = flask.Flask('x')\n"})
    assert detect_stack(tmp_path)["framework"] == "flask"
    write(tmp_path, {"api.py": "from fastapi import FastAPI\napi = FastAPI()\n"})
    assert detect_stack(tmp_path)["framework"] == "fastapi"


def test_poetry_dependencies(tmp_path: Path) -> None:
    write(
        tmp_path,
        {"pyproject.toml": '[tool.poetry.dependencies]\npython = "^3.11"\nFastAPI = "*"\nmotor = "*"\n'},
    )
    result = detect_stack(tmp_path)
    assert (result["framework"], result["databases"]) == ("fastapi", ["mongodb"])
    assert "no module creates the app" in result["message"]


def test_database_url_in_code_or_env(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "requirements.txt": "sqlalchemy\n",
            ".env.example": "DATABASE_URL=postgresql+psycopg://user:pw@db/app\n",
            "main.py": "print('x')\n",
        },
    )
    assert detect_stack(tmp_path)["databases"] == ["postgresql"]
    write(tmp_path, {"store.py": "URL = 'mongodb+srv://cluster/db'\n"})
    assert detect_stack(tmp_path)["databases"] == ["mongodb", "postgresql"]


def test_node_react_and_vue(tmp_path: Path) -> None:
    react = write(
        tmp_path / "r", {"package.json": package({"react": "^18", "react-dom": "^18"}, scripts={"dev": "vite"})}
    )
    result = detect_stack(react)
    assert (result["kind"], result["framework"], result["entrypoint"]) == ("node", "react", "npm run dev")
    vue = write(tmp_path / "v", {"package.json": package({"vue": "^3"}, scripts={"start": "vite"})})
    assert (detect_stack(vue)["framework"], detect_stack(vue)["entrypoint"]) == ("vue", "npm start")


def test_node_with_both_frameworks_runtime_dependency_decides(tmp_path: Path) -> None:
    write(tmp_path, {"package.json": package({"vue": "^3"}, {"react": "^18"})})
    assert detect_stack(tmp_path)["framework"] == "vue"


def test_node_express_with_databases(tmp_path: Path) -> None:
    write(tmp_path, {"package.json": package({"express": "^4", "pg": "^8", "mongoose": "^8"}, main="server.js")})
    result = detect_stack(tmp_path)
    assert (result["kind"], result["framework"], result["entrypoint"]) == ("node", "", "node server.js")
    assert result["databases"] == ["mongodb", "postgresql"]


def test_dotnet_prefers_the_web_project(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "Api.Tests.csproj": '<Project Sdk="Microsoft.NET.Sdk"></Project>',
            "Api.csproj": (
                '<Project Sdk="Microsoft.NET.Sdk.Web"><ItemGroup>'
                '<PackageReference Include="Npgsql.EntityFrameworkCore.PostgreSQL" Version="8.0.0" />'
                "</ItemGroup></Project>"
            ),
        },
    )
    result = detect_stack(tmp_path)
    assert (result["kind"], result["framework"], result["entrypoint"]) == ("dotnet", "", "Api.csproj")
    assert result["databases"] == ["postgresql"]


def test_mixed_repository_backend_beats_frontend_and_databases_are_merged(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "package.json": package(dev={"prettier": "^3"}),
            "frontend/package.json": package({"react": "^18"}, scripts={"start": "vite"}),
            "backend/manage.py": "",
            "backend/requirements.txt": "django\npsycopg2-binary\n",
        },
    )
    result = detect_stack(tmp_path)
    assert (result["kind"], result["framework"], result["root"]) == ("python", "django", "backend")
    assert result["databases"] == ["postgresql"]
    kinds = [(c["kind"], c["framework"], c["root"]) for c in result["components"]]
    assert kinds == [("python", "django", "backend"), ("node", "react", "frontend"), ("node", "", ".")]
    assert "Also found" in result["message"] and "server application" in result["message"]


def test_mixed_repository_frontend_beats_a_plain_python_script(tmp_path: Path) -> None:
    write(tmp_path, {"requirements.txt": "requests\n", "web/package.json": package({"vue": "^3"})})
    result = detect_stack(tmp_path)
    assert (result["kind"], result["framework"], result["root"]) == ("node", "vue", "web")


def test_equal_projects_the_shallower_wins(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "a/b/manage.py": "",
            "z/manage.py": "",
        },
    )
    assert detect_stack(tmp_path)["root"] == "z"


def test_depth_is_bounded_and_dependency_folders_are_skipped(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "a/b/c/d/manage.py": "",
            "node_modules/react/package.json": package({"react": "*"}),
            ".venv/lib/pyproject.toml": "[project]\nname='x'\n",
        },
    )
    assert detect_stack(tmp_path)["kind"] == "unknown"
    write(tmp_path, {"a/b/c/manage.py": ""})
    assert detect_stack(tmp_path)["root"] == "a/b/c"


def test_malformed_files_do_not_crash(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "pyproject.toml": "[project\nthis is = not toml",
            "ui/package.json": "{not json",
            "svc/Svc.csproj": "<Project><unclosed>",
            "bad/package.json": "[1, 2, 3]",
        },
    )
    (tmp_path / "requirements.txt").write_bytes(b"\xff\xfe\x00garbage\nflask\n")
    result = detect_stack(tmp_path)
    assert result["kind"] == "python" and result["framework"] == "flask"
    assert "not valid TOML" in result["message"]
    assert "not valid JSON" in result["message"]
    assert "not valid XML" in result["message"]
    assert "not a JSON object" in result["message"]


def test_xml_entities_are_refused(tmp_path: Path) -> None:
    write(
        tmp_path,
        {"App.csproj": '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><Project>&a;</Project>'},
    )
    result = detect_stack(tmp_path)
    assert result["kind"] == "dotnet"
    assert "entities" in result["message"]


def test_symbolic_links_are_not_followed(tmp_path: Path) -> None:
    outside = write(tmp_path / "outside", {"manage.py": "", "requirements.txt": "django\npsycopg\n"})
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "linked").symlink_to(outside, target_is_directory=True)
    (workspace / "requirements.txt").symlink_to(outside / "requirements.txt")
    (workspace / "loop").symlink_to(workspace, target_is_directory=True)
    assert detect_stack(workspace)["kind"] == "unknown"
    assert detect_stack(workspace / "loop")["kind"] == "unknown"  # a workspace that is itself a link


def test_a_fifo_is_never_read(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "package.json")
    write(tmp_path, {"requirements.txt": "flask\n", "settings.env": ""})
    os.mkfifo(tmp_path / "main.py.env")
    result = detect_stack(tmp_path)  # would block forever if a FIFO were opened for reading
    assert result["kind"] == "python"


def test_huge_trees_stop_early(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stacks, "MAX_ENTRIES", 50)
    for index in range(60):
        (tmp_path / f"f{index:03}.txt").write_text("")
    write(tmp_path, {"zz/manage.py": ""})
    result = detect_stack(tmp_path)
    assert result["kind"] == "unknown"
    assert "stopped early" in result["message"]
