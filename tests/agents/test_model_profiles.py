"""Model profiles managed by staff over the API: connection tests against fake Ollama and
OpenAI-compatible servers, the outbound policy, deletion refused while in use, and the Run dialog's
options (profiles with the default and the unreachable ones marked, parallelism, token budget)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.admin.models import LogEntry

from agents.models import ModelProfile, ProjectAgentSettings, Run, Seat
from boards.models import Epic, Membership, ProjectRole
from orket_site.seed import seed_first_run
from tests.agents.fake_llm import (
    FakeLLMServer,
    ModelServer,
    SchemaShapeServer,
    closed_port_url,
    llama_cpp_python_refusal,
    ollama_stream,
)

pytestmark = pytest.mark.django_db

OLLAMA_MODELS = ["llama3.2:3b", "qwen2.5-coder:7b"]
OPENAI_MODELS = ["qwen2.5-coder-0.5b-instruct", "text-embedding-nomic"]


@pytest.fixture
def staff(api_as: Any, make_user: Any) -> Any:
    return api_as(make_user("operator", is_staff=True))


def create(client: Any, **values: Any) -> dict[str, Any]:
    answer = client.post("/api/model-profiles/", values, format="json")
    assert answer.status_code == 201, answer.content
    return answer.json()


def test_connection_to_ollama_lists_its_models_and_the_schema_shape(staff: Any) -> None:
    chat = ModelServer("ollama", OLLAMA_MODELS, lambda request: ollama_stream(['{"ok": true}']))
    with FakeLLMServer(responder=chat) as fake:
        profile = create(staff, name="gpu-box", provider="ollama", base_url=fake.base_url, model="qwen2.5-coder:7b")
        answer = staff.post(f"/api/model-profiles/{profile['id']}/test/")
    assert answer.status_code == 200, answer.content
    report = answer.json()
    assert report["reachable"] is True and report["refused"] is False
    assert report["models"] == OLLAMA_MODELS and report["model_listed"] is True
    assert report["schema_shape"] == "ollama_format"
    assert [(r.method, r.path) for r in fake.requests] == [("GET", "/api/tags"), ("POST", "/api/chat")]
    assert ModelProfile.objects.get(pk=profile["id"]).json_schema_shape == "ollama_format"
    assert fake.errors == []


def test_connection_to_an_openai_server_finds_the_shape_it_takes(staff: Any) -> None:
    chat = ModelServer("openai", OPENAI_MODELS, SchemaShapeServer("json_object", llama_cpp_python_refusal))
    with FakeLLMServer(responder=chat) as fake:
        profile = create(staff, name="llama-cpp", provider="openai", base_url=fake.base_url, model="missing-model")
        report = staff.post(f"/api/model-profiles/{profile['id']}/test/").json()
    assert report["reachable"] is True
    assert report["models"] == OPENAI_MODELS and report["model_listed"] is False
    assert report["schema_shape"] == "json_object"
    shapes = [r.json()["response_format"]["type"] for r in fake.requests if r.method == "POST"]
    assert shapes == ["json_schema", "json_object"]
    assert fake.requests[0].path == "/v1/models"


def test_an_unreachable_server_is_reported_not_raised(staff: Any) -> None:
    profile = create(staff, name="gone", provider="openai", base_url=closed_port_url(), model="m")
    answer = staff.post(f"/api/model-profiles/{profile['id']}/test/")
    assert answer.status_code == 200
    report = answer.json()
    assert report["reachable"] is False and report["refused"] is False
    assert "could not be reached" in report["detail"] and report["models"] == []


def test_a_host_outside_the_outbound_policy_is_refused(staff: Any, settings: Any) -> None:
    refused = staff.post(
        "/api/model-profiles/",
        {"name": "far", "provider": "ollama", "base_url": "http://10.20.30.40:11434", "model": "m"},
        format="json",
    )
    assert refused.status_code == 400 and "ORKET_OUTBOUND_HOSTS" in refused.json()["detail"]
    assert not ModelProfile.objects.filter(name="far").exists()

    with FakeLLMServer(responder=ModelServer("ollama", OLLAMA_MODELS, lambda r: ollama_stream(["{}"]))) as fake:
        profile = create(staff, name="near", provider="ollama", base_url=fake.base_url, model="m")
        settings.ORKET_OUTBOUND_HOSTS = ["10.0.0.0/8"]  # the operator narrowed the policy since
        report = staff.post(f"/api/model-profiles/{profile['id']}/test/").json()
    assert report["reachable"] is False and report["refused"] is True
    assert fake.requests == []


def test_non_staff_get_403_on_every_profile_endpoint(api_as: Any, make_user: Any) -> None:
    profile = ModelProfile.objects.create(name="p", provider="scripted", model="m")
    client = api_as(make_user("member"))
    for method, path in (
        ("get", "/api/model-profiles/"),
        ("get", f"/api/model-profiles/{profile.pk}/"),
        ("post", "/api/model-profiles/"),
        ("patch", f"/api/model-profiles/{profile.pk}/"),
        ("delete", f"/api/model-profiles/{profile.pk}/"),
        ("post", f"/api/model-profiles/{profile.pk}/test/"),
    ):
        answer = getattr(client, method)(path, {"name": "x", "provider": "scripted", "model": "m"}, format="json")
        assert answer.status_code == 403, (method, path, answer.status_code)
    assert ModelProfile.objects.filter(pk=profile.pk).exists()


def test_staff_change_a_profile_and_a_new_server_forgets_the_shape(staff: Any) -> None:
    profile = create(staff, name="box", provider="openai", base_url="http://127.0.0.1:9", model="m")
    ModelProfile.objects.filter(pk=profile["id"]).update(json_schema_shape="json_schema")
    changed = staff.patch(f"/api/model-profiles/{profile['id']}/", {"temperature": 0.5}, format="json")
    assert changed.json()["json_schema_shape"] == "json_schema"
    moved = staff.patch(f"/api/model-profiles/{profile['id']}/", {"base_url": "http://127.0.0.1:10"}, format="json")
    assert moved.status_code == 200 and moved.json()["json_schema_shape"] == ""
    bad_key = staff.patch(f"/api/model-profiles/{profile['id']}/", {"api_key_env": "SECRET_KEY"}, format="json")
    assert bad_key.status_code == 400, bad_key.content
    assert ModelProfile.objects.get(pk=profile["id"]).api_key_env == ""
    assert LogEntry.objects.filter(object_id=str(profile["id"])).count() == 3  # created, changed twice


def test_a_profile_in_use_is_not_deleted(staff: Any, settings: Any, tmp_path: Any) -> None:
    settings.DATA_DIR = tmp_path
    seed_first_run()
    used = ModelProfile.objects.create(name="seated", provider="scripted", model="m")
    Seat.objects.filter(name="senior_developer").update(model_profile=used)
    answer = staff.delete(f"/api/model-profiles/{used.pk}/")
    assert answer.status_code == 409 and answer.json()["code"] == "profile_in_use"
    assert "standard/senior_developer" in answer.json()["detail"]
    unused = ModelProfile.objects.create(name="spare", provider="scripted", model="m")
    assert staff.delete(f"/api/model-profiles/{unused.pk}/").status_code == 204
    assert set(ModelProfile.objects.values_list("name", flat=True)) == {"ollama-local", "scripted-demo", "seated"}


@pytest.fixture
def demo(settings: Any, tmp_path: Any, make_user: Any) -> tuple[Epic, dict[str, Any]]:
    settings.DATA_DIR = tmp_path
    seed_first_run()
    epic = Epic.objects.get(project__slug="demo")
    users = {}
    for role in ProjectRole.values:
        users[role] = make_user(f"demo-{role}")
        Membership.objects.create(project=epic.project, user=users[role], role=role)
    return epic, users


def test_run_options_mark_the_default_and_the_unreachable(
    demo: Any, api_as: Any, make_user: Any, settings: Any
) -> None:
    epic, users = demo
    settings.CELERY_BROKER_URL = "memory://localhost/"  # the embedded default, also when tests use Redis
    with FakeLLMServer(responder=ModelServer("openai", OPENAI_MODELS, lambda r: ollama_stream([]))) as fake:
        ModelProfile.objects.create(name="fake-openai", provider="openai", base_url=fake.base_url, model="m")
        options = api_as(users["member"]).get(f"/api/epics/{epic.pk}/run-options/").json()
    profiles = {p["name"]: p for p in options["profiles"]}
    assert profiles["fake-openai"]["reachable"] is True
    assert profiles["ollama-local"]["reachable"] is False  # nothing listens on 11434 here
    assert profiles["scripted-demo"]["is_default"] is True and options["default_profile"] == "scripted-demo"
    assert [name for name, p in profiles.items() if p["is_default"]] == ["scripted-demo"]
    assert options["parallel"] == {"maximum": 8, "default": 2, "source": "the embedded default (one process)"}
    assert options["cards"] > 0
    assert options["estimated_tokens"] == min(options["card_token_budget"] * options["cards"], 500_000)

    chosen = ModelProfile.objects.get(name="fake-openai")
    ProjectAgentSettings.objects.create(project=epic.project, default_model_profile=chosen)
    again = api_as(users["member"]).get(f"/api/epics/{epic.pk}/run-options/").json()
    assert again["default_profile"] == "fake-openai" and again["default_reason"] == "the project default"

    assert api_as(users["viewer"]).get(f"/api/epics/{epic.pk}/run-options/").status_code == 403
    assert api_as(make_user("stranger")).get(f"/api/epics/{epic.pk}/run-options/").status_code == 404


def test_a_run_starts_with_the_chosen_profile_and_parallelism(demo: Any, api_as: Any, settings: Any) -> None:
    epic, users = demo
    settings.CELERY_BROKER_URL = "memory://localhost/"  # the embedded default, also when tests use Redis
    client = api_as(users["member"])
    too_many = client.post(f"/api/epics/{epic.pk}/runs/", {"max_parallel": 9}, format="json")
    assert too_many.status_code == 400 and "max_parallel" in too_many.json()["detail"]
    settings.ORKET_MAX_PARALLEL = 12
    started = client.post(
        f"/api/epics/{epic.pk}/runs/", {"model_profile": "scripted-demo", "max_parallel": 1}, format="json"
    )
    assert started.status_code == 201, started.content
    run = Run.objects.get(pk=started.json()["id"])
    assert (run.profile_is_override, run.max_parallel, run.model_profile.name) == (True, 1, "scripted-demo")


def test_the_parallelism_setting_bounds_the_dialog_and_the_start(demo: Any, api_as: Any, settings: Any) -> None:
    epic, users = demo
    settings.ORKET_MAX_PARALLEL = 3
    client = api_as(users["member"])
    options = client.get(f"/api/epics/{epic.pk}/run-options/").json()
    assert options["parallel"] == {"maximum": 3, "default": 2, "source": "the ORKET_MAX_PARALLEL setting"}
    refused = client.post(f"/api/epics/{epic.pk}/runs/", {"max_parallel": 4}, format="json")
    assert refused.status_code == 400 and "At most 3 cards at a time" in refused.json()["detail"]
    assert not Run.objects.exists()
    settings.ORKET_MAX_PARALLEL = 1
    unsaid = client.post(f"/api/epics/{epic.pk}/runs/", {}, format="json")
    assert unsaid.status_code == 201 and unsaid.json()["max_parallel"] == 1


def test_reachability_is_checked_in_parallel_and_remembered(demo: Any, api_as: Any) -> None:
    epic, users = demo
    with FakeLLMServer(responder=ModelServer("openai", OPENAI_MODELS, lambda r: ollama_stream([]))) as fake:
        for index in range(3):
            ModelProfile.objects.create(name=f"box-{index}", provider="openai", base_url=fake.base_url, model="m")
        client = api_as(users["member"])
        client.get(f"/api/epics/{epic.pk}/run-options/")
        asked = len(fake.requests)
        client.get(f"/api/epics/{epic.pk}/run-options/")
    assert asked == 3 and len(fake.requests) == 3  # the second opening asked no server
