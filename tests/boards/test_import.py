"""JSON import and export: round trip, every kind of bad input with its path, nothing written."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from boards import services
from boards.actors import Actor
from boards.models import Card, CardDependency, CardHistory, Epic, Project
from boards.services import ImportInvalid

VALID: dict[str, Any] = {
    "name": "Checkout",
    "description": "Let people pay.",
    "team": "standard",
    "environment": "python",
    "architecture_governance": {"idesign": True},
    "stories": [
        {
            "summary": "Model the cart",
            "seat": "lead_architect",
            "priority": "high",
            "requirements": "A cart holds lines.",
            "labels": ["backend", "model"],
            "verification": {"fixture_path": "verification/cart.py", "scenarios": [{"name": "empty", "input": []}]},
        },
        {"id": "pay", "name": "Take payment", "seat": "coder", "priority": 2.5, "depends_on": ["Model the cart"]},
        {"summary": "Receipt email", "seat": "coder", "priority": "low", "depends_on": ["pay", 1]},
    ],
}


def _counts() -> tuple[int, int, int, int]:
    return Epic.objects.count(), Card.objects.count(), CardDependency.objects.count(), CardHistory.objects.count()


def _import(project: Project, data: Any) -> Epic:
    return services.epic_import(project=project, data=data, actor=Actor.orket("test"))


def test_valid_epic_round_trips(project: Project) -> None:
    epic = _import(project, VALID)
    cards = {card.title: card for card in Card.objects.filter(epic=epic)}
    assert epic.architecture_governance and epic.team == "standard"
    assert cards["Model the cart"].priority == 3.0 and cards["Receipt email"].priority == 1.0
    assert cards["Take payment"].priority == 2.5 and cards["Model the cart"].labels == ["backend", "model"]
    assert cards["Model the cart"].verification_scenarios == [{"name": "empty", "input": []}]
    assert set(CardDependency.objects.values_list("card__title", "depends_on__title")) == {
        ("Take payment", "Model the cart"),
        ("Receipt email", "Take payment"),
        ("Receipt email", "Model the cart"),
    }
    assert all(card.status == "ready" for card in cards.values())
    exported = services.epic_export(epic=epic)
    again = _import(project, json.loads(json.dumps(exported)))
    assert services.epic_export(epic=again) == exported
    assert exported["cards"][2]["depends_on"] == ["1", "2"]


def _with(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    data = copy.deepcopy(VALID)
    change(data)
    return data


INVALID = [
    ("unknown seat format", lambda d: d["stories"][1].update(seat="Lead Architect!"), "stories[1].seat"),
    ("bad priority word", lambda d: d["stories"][0].update(priority="urgent"), "stories[0].priority"),
    ("priority out of range", lambda d: d["stories"][0].update(priority=99), "stories[0].priority"),
    ("missing dependency", lambda d: d["stories"][2].update(depends_on=["pay", "Nope"]), "stories[2].depends_on[1]"),
    ("cycle", lambda d: d["stories"][0].update(depends_on=["Receipt email"]), "stories[0].depends_on"),
    ("self dependency", lambda d: d["stories"][1].update(depends_on=["pay"]), "stories[1].depends_on[0]"),
    ("labels wrong type", lambda d: d["stories"][0].update(labels="backend"), "stories[0].labels"),
    ("summary wrong type", lambda d: d["stories"][0].update(summary=42), "stories[0].summary"),
    ("cards not a list", lambda d: d.update(stories={"a": 1}), "stories"),
    ("governance wrong type", lambda d: d.update(architecture_governance="yes"), "architecture_governance"),
    ("oversized description", lambda d: d["stories"][1].update(description="x" * 50_001), "stories[1].description"),
    ("oversized title", lambda d: d["stories"][1].update(name="x" * 301), "stories[1].name"),
    ("missing summary", lambda d: d["stories"][0].pop("summary"), "stories[0].summary"),
    ("unknown field", lambda d: d["stories"][0].update(colour="red"), "stories[0].colour"),
    ("missing name", lambda d: d.pop("name"), "name"),
]


@pytest.mark.parametrize(("kind", "change", "path"), INVALID, ids=[case[0] for case in INVALID])
def test_invalid_input_is_refused_with_its_path(
    project: Project, kind: str, change: Callable[[dict[str, Any]], None], path: str
) -> None:
    before = _counts()
    with pytest.raises(ImportInvalid) as caught:
        _import(project, _with(change))
    paths = [problem["path"] for problem in caught.value.extra["errors"]]
    assert path in paths, caught.value.extra["errors"]
    assert path in caught.value.message
    assert _counts() == before


def test_every_problem_is_listed(project: Project) -> None:
    def many(d: dict[str, Any]) -> None:
        d["stories"][0]["priority"] = "urgent"
        d["stories"][1]["seat"] = "Bad Seat"
        d["stories"][2]["depends_on"] = ["ghost"]

    with pytest.raises(ImportInvalid) as caught:
        _import(project, _with(many))
    assert [p["path"] for p in caught.value.extra["errors"]] == [
        "stories[0].priority",
        "stories[1].seat",
        "stories[2].depends_on[0]",
    ]


def test_not_an_object(project: Project) -> None:
    with pytest.raises(ImportInvalid) as caught:
        _import(project, ["not", "an", "epic"])
    assert caught.value.extra["errors"][0]["path"] == "$"


def test_api_import_and_export(project: Project, member_of: Callable[..., Any], api_as: Callable[..., Any]) -> None:
    viewer = member_of(project, "viewer")
    client = api_as(viewer)
    assert client.post(f"/api/projects/{project.pk}/import/", VALID, format="json").status_code == 403
    client = api_as(member_of(project, "member"))
    bad = client.post(f"/api/projects/{project.pk}/import/", _with(INVALID[1][1]), format="json")
    assert bad.status_code == 400
    assert bad.json()["code"] == "import_invalid"
    assert bad.json()["errors"][0]["path"] == "stories[0].priority"
    assert Epic.objects.count() == 0
    created = client.post(f"/api/projects/{project.pk}/import/", VALID, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["card_count"] == 3
    exported = client.get(f"/api/epics/{created.json()['id']}/export/")
    assert exported.status_code == 200
    assert [card["summary"] for card in exported.json()["cards"]] == ["Model the cart", "Take payment", "Receipt email"]
    stranger = api_as(member_of(Project.objects.create(name="Other", slug="other"), "maintainer"))
    assert stranger.get(f"/api/epics/{created.json()['id']}/export/").status_code == 404
    assert stranger.post(f"/api/projects/{project.pk}/import/", VALID, format="json").status_code == 404


def test_management_command(project: Project, tmp_path: Path) -> None:
    good = tmp_path / "epic.json"
    good.write_text(json.dumps(VALID))
    call_command("import_epic", str(good), "--project", project.slug)
    assert Card.objects.filter(epic__name="Checkout").count() == 3
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(_with(INVALID[0][1])))
    with pytest.raises(CommandError, match=r"stories\[1\]\.seat"):
        call_command("import_epic", str(bad), "--project", project.slug)
    with pytest.raises(CommandError, match="No project"):
        call_command("import_epic", str(good), "--project", "nope")
    assert Epic.objects.count() == 1
