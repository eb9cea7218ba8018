"""The card code API: the diff of a card (whole, per turn, per step) read from the real git workspace
after a scripted run, the read-only file browser under the path policy, summaries of binary and large
files, the size cap, and who may read it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agents.models import RunEvent, Turn
from agents.workspaces import ProjectWorkspace, git_env, project_workspace_root
from boards.models import Card, Epic, Membership, Project, ProjectRole
from orket_site.seed import seed_first_run
from tests.agents.engine_support import drive

pytestmark = pytest.mark.django_db(transaction=True)


def url(card: Card, what: str, project_id: int | None = None) -> str:
    return f"/api/projects/{project_id or card.project_id}/cards/{card.pk}/{what}/"


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env=git_env(), check=True, capture_output=True, text=True).stdout


def changed_lines(patch: str) -> tuple[list[str], list[str]]:
    """The added and removed lines of git's own patch output, headers left out."""
    added = [line[1:] for line in patch.splitlines() if line.startswith("+") and not line.startswith("+++")]
    removed = [line[1:] for line in patch.splitlines() if line.startswith("-") and not line.startswith("---")]
    return added, removed


def shown_lines(data: dict[str, Any]) -> tuple[list[str], list[str]]:
    lines = [line for item in data["files"] for hunk in item["hunks"] for line in hunk["lines"]]
    return [line["text"] for line in lines if line["kind"] == "add"], [
        line["text"] for line in lines if line["kind"] == "del"
    ]


@pytest.fixture
def demo(settings, tmp_path, make_user):
    settings.DATA_DIR = tmp_path
    seed_first_run()
    epic = Epic.objects.get(project__slug="demo")
    users = {}
    for role in ProjectRole.values:
        users[role] = make_user(f"demo-{role}")
        Membership.objects.create(project=epic.project, user=users[role], role=role)
    return epic, users


@pytest.fixture
def checkout(demo) -> tuple[Card, Path]:
    """A card of the demo project with a checkout holding a few files, committed on its branch."""
    epic, _users = demo
    card = Card.objects.filter(epic=epic).order_by("id").first()
    workspace = ProjectWorkspace(project_workspace_root(settings.DATA_DIR, card.project_id))
    workspace.ensure()
    path = workspace.card_worktree(card.pk)
    (path / "src").mkdir()
    (path / "src" / "app.py").write_text('def greet(name):\n    return f"hello {name}"\n')
    (path / "page.html").write_text("<script>alert('owned')</script>\n<b>bold</b>\n")
    (path / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    (path / "big.log").write_text("".join(f"log line {n}\n" for n in range(40_000)))
    workspace.commit_card(card.pk, seat="senior_developer", message="files")
    return card, path


def test_the_whole_card_a_turn_and_a_step_show_exactly_git_s_changes(demo, api_as):
    epic, users = demo
    started = api_as(users["member"]).post(
        f"/api/epics/{epic.pk}/runs/", {"model_profile": "scripted-demo"}, format="json"
    )
    assert drive(started.json()["id"]).status == "succeeded"
    client = api_as(users["viewer"])
    repo = project_workspace_root(settings.DATA_DIR, epic.project_id) / "repo"
    # the card the coder was sent back on has two work turns, each with two commits
    card = Card.objects.get(
        pk=RunEvent.objects.filter(kind="workspace.commit", data__files__0="services/card_2.py")
        .values_list("card_id", flat=True)
        .first()
    )

    whole = client.get(url(card, "diff")).json()
    assert whole["merged"] is True and whole["head"] == f"card/{card.pk}"
    expected = git(repo, "diff", f"{whole['base']}...card/{card.pk}")
    assert shown_lines(whole) == changed_lines(expected)
    assert [(f["path"], f["status"]) for f in whole["files"]] == [
        ("services/card_2.py", "added"),
        (f"tests/test_card_{card.pk}.py", "added"),
    ]
    assert whole["added"] == len(changed_lines(expected)[0]) and not whole["truncated"]

    queries = []
    for some in Card.objects.filter(epic=epic):
        with CaptureQueriesContext(connection) as counted:
            assert client.get(url(some, "diff/turns")).status_code == 200
        queries.append(len(counted))
    assert len(set(queries)) == 1, queries  # as many queries for one turn as for several
    turns = client.get(url(card, "diff/turns")).json()["results"]
    assert len(turns) == 2 and all(len(turn["commits"]) == 2 for turn in turns)
    later = turns[0]
    first, last = later["commits"][0]["sha"], later["commits"][-1]["sha"]
    per_turn = client.get(url(card, "diff"), {"turn": later["id"]}).json()
    assert (per_turn["base"], per_turn["head"]) == (f"{first}^", last)
    assert shown_lines(per_turn) == changed_lines(git(repo, "diff", f"{first}^", last))

    step = later["commits"][0]["step"]
    only = client.get(url(card, "diff"), {"turn": later["id"], "step": step, "path": "services/card_2.py"}).json()
    assert [f["path"] for f in only["files"]] == ["services/card_2.py"]
    assert shown_lines(only) == changed_lines(git(repo, "diff", f"{first}^", first, "--", "services/card_2.py"))

    reviewer = Turn.objects.filter(card=card, purpose="review").first()
    empty = client.get(url(card, "diff"), {"turn": reviewer.pk}).json()
    assert empty["files"] == [] and "changed no files" in empty["note"]
    other = Turn.objects.exclude(card=card).first()
    assert client.get(url(card, "diff"), {"turn": other.pk}).status_code == 404
    assert client.get(url(card, "diff"), {"step": 1}).status_code == 400


def test_the_file_browser_lists_and_reads_and_summarises_binary_and_large_files(checkout, demo, api_as):
    card, _path = checkout
    client = api_as(demo[1]["viewer"])

    top = client.get(url(card, "files")).json()
    assert top["exists"] is True
    assert [(e["name"], e["kind"]) for e in top["entries"]] == [
        ("src", "dir"),
        ("big.log", "file"),
        ("logo.png", "file"),
        ("page.html", "file"),
    ]
    assert [e["name"] for e in client.get(url(card, "files"), {"path": "src"}).json()["entries"]] == ["app.py"]

    code = client.get(url(card, "file"), {"path": "src/app.py"}).json()
    assert code["kind"] == "text" and code["lines_shown"] == 2
    assert ["k", "def"] in code["lines"][0] and ["nf", "greet"] in code["lines"][0]

    binary = client.get(url(card, "file"), {"path": "logo.png"}).json()
    assert (binary["kind"], binary["type"], binary["size"], binary["lines"]) == ("binary", "image/png", 2056, [])

    large = client.get(url(card, "file"), {"path": "big.log"}).json()
    assert (large["kind"], large["truncated"], large["lines_shown"]) == ("large", True, 200)
    assert large["size"] == sum(len(f"log line {n}\n") for n in range(40_000))
    assert "".join(text for _cls, text in large["lines"][199]) == "log line 199"


def test_file_content_is_sent_as_text_tokens_never_as_markup(checkout, demo, api_as):
    card, _path = checkout
    client = api_as(demo[1]["viewer"])

    page = client.get(url(card, "file"), {"path": "page.html"}).json()
    first = page["lines"][0]
    assert "".join(text for _cls, text in first) == "<script>alert('owned')</script>"
    assert all(isinstance(cls, str) and (cls == "" or cls.isalnum()) for cls, _text in first)
    assert set(page) == {"card", "path", "size", "type", "kind", "truncated", "lines", "lines_shown"}

    diff = client.get(url(card, "diff"), {"path": "page.html"}).json()
    line = diff["files"][0]["hunks"][0]["lines"][0]
    assert "".join(text for _cls, text in line["tokens"]) == line["text"] == "<script>alert('owned')</script>"
    assert "<span" not in str(diff)


def test_paths_out_of_the_checkout_or_through_links_are_refused(checkout, demo, api_as, tmp_path):
    card, path = checkout
    client = api_as(demo[1]["viewer"])
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("the server's own file\n")
    os.symlink(outside / "secret.txt", path / "leak.txt")
    os.symlink(outside, path / "leakdir")

    for what, target in (
        ("file", "../../../../etc/passwd"),
        ("file", "/etc/passwd"),
        ("file", "src/../../outside/secret.txt"),
        ("files", "../"),
        ("files", "/"),
        ("file", ".git/config"),
        ("file", "leak.txt"),
        ("file", "leakdir/secret.txt"),
        ("files", "leakdir"),
        ("diff", "../x"),
    ):
        answer = client.get(url(card, what), {"path": target})
        assert answer.status_code == 400, (what, target, answer.content)
        assert answer.json()["code"] == "path_refused"
        assert b"server's own file" not in answer.content
    listed = {e["name"]: e["kind"] for e in client.get(url(card, "files")).json()["entries"]}
    assert listed["leak.txt"] == "link" and listed["leakdir"] == "link"
    assert client.get(url(card, "file"), {"path": "missing.py"}).status_code == 404
    assert client.get(url(card, "file"), {"path": "src"}).status_code == 400


def test_only_members_read_and_another_project_s_card_is_not_found(checkout, demo, api_as, make_user):
    card, _path = checkout
    stranger = make_user("stranger")
    other = Project.objects.create(name="Other", slug="other")
    Membership.objects.create(project=other, user=stranger, role=ProjectRole.MAINTAINER)

    for what in ("diff", "diff/turns", "files", "file"):
        answer = api_as(stranger).get(url(card, what), {"path": "src/app.py"} if what == "file" else {})
        assert answer.status_code == 404, what
        assert api_as(stranger).get(url(card, what, other.pk), {"path": "src/app.py"}).status_code == 404
        viewer = api_as(demo[1]["viewer"]).get(url(card, what), {"path": "src/app.py"} if what == "file" else {})
        assert viewer.status_code == 200, (what, viewer.content)
    assert api_as(demo[1]["viewer"]).get(url(card, "diff", other.pk)).status_code == 404
    from rest_framework.test import APIClient

    assert APIClient().get(url(card, "diff")).status_code in (401, 403)


def test_a_huge_diff_is_cut_with_a_marker_and_a_count(checkout, demo, api_as):
    card, path = checkout
    workspace = ProjectWorkspace(project_workspace_root(settings.DATA_DIR, card.project_id))
    for number in range(3):
        (path / f"gen{number}.txt").write_text("".join(f"row {n}\n" for n in range(3000)))
    workspace.commit_card(card.pk, seat="senior_developer", message="generated")

    data = api_as(demo[1]["viewer"]).get(url(card, "diff")).json()
    assert data["truncated"] is True
    hidden = [f for f in data["files"] if not f["shown"] and not f["binary"]]
    assert len(hidden) == data["files_not_shown"] >= 1
    assert data["lines_not_shown"] == sum(f["added"] + f["removed"] for f in hidden)
    assert sum(len(h["lines"]) for f in data["files"] for h in f["hunks"]) <= 5000
    assert {f["path"] for f in data["files"]} >= {"gen0.txt", "gen1.txt", "gen2.txt", "big.log"}
