"""Team configuration: seed data, JSON import and export, validation, API and admin."""

from __future__ import annotations

import copy
import json

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction

from agents.errors import InvalidTeamDocument
from agents.models import Dialect, ModelProfile, Role, Seat, Team
from agents.seed_data import STANDARD_TEAM
from agents.services import seed_standard_configuration, team_export, team_import

pytestmark = pytest.mark.django_db


def test_seed_creates_the_standard_team_dialects_and_profiles_once():
    assert seed_standard_configuration() is True
    assert seed_standard_configuration() is False
    team = Team.objects.get(name="standard")
    seats = {seat.name: [role.name for role in seat.roles.all()] for seat in team.seats.all()}
    assert seats == {
        "lead_architect": ["architect"],
        "senior_developer": ["coder"],
        "quality_assurance": ["integrity_guard"],
    }
    assert list(Role.objects.filter(can_finalize=True).values_list("name", flat=True)) == ["integrity_guard"]
    assert set(Dialect.objects.values_list("name", flat=True)) == {
        "generic-json",
        "qwen",
        "llama3",
        "deepseek-r1",
        "phi",
    }
    ollama = ModelProfile.objects.get(name="ollama-local")
    assert (ollama.provider, ollama.base_url) == ("ollama", "http://127.0.0.1:11434")
    assert ModelProfile.objects.get(name="scripted-demo").provider == "scripted"


def test_export_then_import_gives_the_same_team_back():
    seed_standard_configuration()
    exported = team_export(team=Team.objects.get(name="standard"))
    renamed = {**copy.deepcopy(exported), "name": "standard-copy"}
    team_import(document=renamed)
    assert team_export(team=Team.objects.get(name="standard-copy")) == renamed
    assert Role.objects.count() == 3  # identical roles are shared, not duplicated


def _problems(document: object) -> list[dict[str, str]]:
    before = (Team.objects.count(), Role.objects.count(), Seat.objects.count())
    with pytest.raises(InvalidTeamDocument) as refused:
        team_import(document=document)
    assert (Team.objects.count(), Role.objects.count(), Seat.objects.count()) == before
    return refused.value.extra["problems"]


def test_every_problem_is_listed_with_its_path_and_nothing_is_written():
    document = copy.deepcopy(STANDARD_TEAM)
    document["name"] = "Bad Name!"
    document["roles"][0]["tools"] = ["read_file", "launch_missiles"]
    document["roles"][1]["can_finalize"] = "yes"
    document["roles"][2]["intent"] = ""
    document["seats"][1]["roles"] = ["coder", "ghost"]
    document["seats"][2]["model_profile"] = "no-such-profile"
    paths = {problem["path"] for problem in _problems(document)}
    assert {"name", "roles[0].tools", "roles[1].can_finalize", "roles[2].intent"} <= paths


def test_references_to_unknown_roles_and_profiles_are_refused():
    document = copy.deepcopy(STANDARD_TEAM)
    document["seats"][1]["roles"] = ["coder", "ghost"]
    document["seats"][2]["model_profile"] = "no-such-profile"
    problems = _problems(document)
    assert {"path": "seats[1].roles[1]", "message": "unknown role 'ghost'"} in problems
    assert {"path": "seats[2].model_profile", "message": "unknown model profile 'no-such-profile'"} in problems


@pytest.mark.parametrize(
    ("document", "path"),
    [
        ([], "$"),
        ({"name": "t", "seats": "nope"}, "seats"),
        ({"name": "t", "seats": []}, "seats"),
        ({"name": "t", "seats": [{"name": "s", "roles": []}]}, "seats[0].roles"),
        (
            {"name": "t", "roles": [{"name": "r", "intent": "x" * 5000}], "seats": [{"name": "s", "roles": ["r"]}]},
            "roles[0].intent",
        ),
        ({"name": "t", "seats": [{"name": "s", "roles": ["r"]}, {"name": "s", "roles": ["r"]}]}, "seats"),
    ],
)
def test_malformed_documents_are_refused_with_paths(document, path):
    assert path in {problem["path"] for problem in _problems(document)}


def test_a_different_role_with_the_same_name_is_not_silently_changed():
    seed_standard_configuration()
    document = copy.deepcopy(STANDARD_TEAM)
    document["name"] = "other"
    document["roles"][1]["can_finalize"] = True
    assert {"path": "roles[1].name", "message": "a different role named 'coder' exists"} in _problems(document)
    assert Role.objects.get(name="coder").can_finalize is False


def test_duplicate_team_names_are_refused():
    seed_standard_configuration()
    assert {"path": "name", "message": "a team named 'standard' already exists"} in _problems(STANDARD_TEAM)


def test_profiles_reference_keys_by_environment_variable_only(monkeypatch, settings):
    settings.ORKET_OUTBOUND_HOSTS = ["llm.example"]
    profile = ModelProfile(
        name="remote", provider="openai", base_url="https://llm.example", model="m", api_key_env="sk-live-123"
    )
    with pytest.raises(ValidationError) as invalid:
        profile.full_clean()
    assert "api_key_env" in invalid.value.message_dict
    profile.api_key_env = "ORKET_TEST_LLM_KEY"  # a variable not marked for secrets
    with pytest.raises(ValidationError) as invalid:
        profile.full_clean()
    assert "ORKET_SECRET_" in invalid.value.message_dict["api_key_env"][0]
    profile.api_key_env = "ORKET_SECRET_TEST_LLM_KEY"
    profile.full_clean()
    monkeypatch.delenv("ORKET_SECRET_TEST_LLM_KEY", raising=False)
    assert profile.api_key() is None
    monkeypatch.setenv("ORKET_SECRET_TEST_LLM_KEY", "secret-value")
    assert profile.api_key() == "secret-value"
    settings.ORKET_OUTBOUND_HOSTS = ["127.0.0.0/8"]
    with pytest.raises(ValidationError) as invalid:
        profile.full_clean()
    assert "base_url" in invalid.value.message_dict


def test_database_refuses_an_unknown_provider_and_a_missing_base_url():
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelProfile.objects.create(name="x", provider="magic", base_url="http://x", model="m")
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelProfile.objects.create(name="y", provider="ollama", base_url="", model="m")


def test_api_lists_teams_and_profiles_and_exports(api_as, make_user):
    seed_standard_configuration()
    client = api_as(make_user())
    teams = client.get("/api/teams/").json()["results"]
    assert [team["name"] for team in teams] == ["standard"]
    exported = client.get(f"/api/teams/{teams[0]['id']}/export/").json()
    assert exported == team_export(team=Team.objects.get(name="standard"))
    assert client.get("/api/model-profiles/").status_code == 403  # base URLs and key names: staff only
    profiles = api_as(make_user("ops", is_staff=True)).get("/api/model-profiles/").json()["results"]
    assert {profile["name"] for profile in profiles} == {"ollama-local", "scripted-demo"}
    assert all("api_key" not in profile for profile in profiles)


def test_only_staff_import_teams_over_the_api(api_as, make_user):
    document = copy.deepcopy(STANDARD_TEAM)
    assert api_as(make_user()).post("/api/teams/import/", document, format="json").status_code == 403
    admin = make_user("boss", is_staff=True)
    created = api_as(admin).post("/api/teams/import/", document, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["name"] == "standard"
    refused = api_as(admin).post("/api/teams/import/", {"name": "BAD"}, format="json")
    assert refused.status_code == 400
    assert refused.json()["code"] == "invalid_team"
    assert refused.json()["problems"][0]["path"] == "name"


def test_import_and_export_commands(tmp_path, capsys):
    path = tmp_path / "team.json"
    path.write_text(json.dumps(STANDARD_TEAM))
    call_command("import_team", str(path))
    call_command("export_team", "standard")
    assert json.loads(capsys.readouterr().out.split("\n", 1)[1])["name"] == "standard"
    path.write_text("{not json")
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("import_team", str(path))


@pytest.mark.parametrize("model", ["team", "role", "seat", "dialect", "modelprofile"])
def test_admin_lists_every_agents_model(client, django_user_model, model):
    seed_standard_configuration()
    client.force_login(django_user_model.objects.create_superuser("root", password="admin password 1"))
    assert client.get(f"/admin/agents/{model}/").status_code == 200
    assert client.get(f"/admin/agents/{model}/", {"q": "standard"}).status_code == 200
