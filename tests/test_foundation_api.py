"""API base: authentication, the one error shape, body caps, projects and membership permissions."""

from __future__ import annotations

import json

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from boards.models import Membership, Project, ProjectRole

pytestmark = pytest.mark.django_db


def test_anonymous_api_request_gets_401_json_with_code(api):
    response = api.get("/api/projects/")
    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided.", "code": "not_authenticated"}


def test_token_is_issued_for_valid_credentials_and_authenticates(make_user):
    make_user("ada", password="analytical engine 1843")
    client = APIClient()
    response = client.post("/api/auth/token/", {"username": "ada", "password": "analytical engine 1843"}, format="json")
    assert response.status_code == 200
    token = response.json()["token"]
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get("/api/projects/").status_code == 200


@pytest.mark.parametrize(
    "credentials",
    [{"username": "ada", "password": "wrong"}, {"username": "nobody", "password": "analytical engine 1843"}],
)
def test_wrong_credentials_give_the_same_plain_message(make_user, credentials):
    make_user("ada", password="analytical engine 1843")
    response = APIClient().post("/api/auth/token/", credentials, format="json")
    assert response.status_code == 400
    assert response.json() == {"detail": "Those credentials are not valid.", "code": "invalid_credentials"}


def test_bad_token_is_refused(api):
    api.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    response = api.get("/api/projects/")
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"


def test_projects_list_shows_only_my_projects_with_my_role(api_as, member_of, project):
    other = Project.objects.create(name="Hidden", slug="hidden")
    viewer = member_of(project, ProjectRole.VIEWER)
    member_of(other, ProjectRole.MAINTAINER)
    body = api_as(viewer).get("/api/projects/").json()
    assert body["count"] == 1
    assert [(p["slug"], p["my_role"]) for p in body["results"]] == [("apollo", "viewer")]


def test_project_create_makes_creator_maintainer_and_fills_slug(api_as, make_user):
    user = make_user()
    response = api_as(user).post("/api/projects/", {"name": "Gemini Program"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["slug"] == "gemini-program"
    assert body["my_role"] == "maintainer"
    assert Membership.objects.get(project_id=body["id"], user=user).role == ProjectRole.MAINTAINER


def test_project_create_with_taken_slug_is_refused(api_as, make_user, project):
    response = api_as(make_user()).post("/api/projects/", {"name": "X", "slug": "apollo"}, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "slug_taken"
    assert Project.objects.count() == 1


def test_non_member_gets_404_for_a_project(api_as, make_user, project):
    response = api_as(make_user()).get(f"/api/projects/{project.pk}/")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


@pytest.mark.parametrize(
    ("role", "expected"),
    [(ProjectRole.VIEWER, 403), (ProjectRole.MEMBER, 403), (ProjectRole.MAINTAINER, 200)],
)
def test_only_maintainers_edit_a_project(api_as, member_of, project, role, expected):
    response = api_as(member_of(project, role)).patch(
        f"/api/projects/{project.pk}/", {"description": "new"}, format="json"
    )
    assert response.status_code == expected, response.content
    project.refresh_from_db()
    assert (project.description == "new") is (expected == 200)
    if expected == 403:
        assert response.json()["code"] == "permission_denied"


def test_maintainer_manages_members_but_cannot_drop_the_last_maintainer(api_as, member_of, make_user, project):
    maintainer = member_of(project, ProjectRole.MAINTAINER)
    newcomer = make_user("grace")
    client = api_as(maintainer)
    added = client.post(f"/api/projects/{project.pk}/members/", {"username": "grace", "role": "viewer"}, format="json")
    assert added.status_code == 201, added.content
    promoted = client.patch(f"/api/projects/{project.pk}/members/{newcomer.pk}/", {"role": "member"}, format="json")
    assert promoted.json()["role"] == "member"
    demote_self = client.patch(
        f"/api/projects/{project.pk}/members/{maintainer.pk}/", {"role": "viewer"}, format="json"
    )
    assert demote_self.status_code == 409
    assert demote_self.json()["code"] == "last_maintainer"
    assert client.delete(f"/api/projects/{project.pk}/members/{newcomer.pk}/").status_code == 204
    assert list(project.memberships.values_list("user_id", "role")) == [(maintainer.pk, "maintainer")]


def test_member_cannot_add_members(api_as, member_of, make_user, project):
    make_user("grace")
    response = api_as(member_of(project, ProjectRole.MEMBER)).post(
        f"/api/projects/{project.pk}/members/", {"username": "grace", "role": "maintainer"}, format="json"
    )
    assert response.status_code == 403
    assert project.memberships.count() == 1


def test_malformed_json_gets_400_and_changes_nothing(api_as, make_user):
    response = api_as(make_user()).post("/api/projects/", data='{"name": "x",', content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"
    assert Project.objects.count() == 0


def test_wrong_field_type_gets_400_with_field_errors(api_as, make_user):
    response = api_as(make_user()).post("/api/projects/", {"name": ["not", "a", "string"]}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert "name" in body["errors"]
    assert body["detail"].startswith("name:")
    assert Project.objects.count() == 0


@override_settings(ORKET_MAX_BODY_BYTES=1024)
def test_oversized_body_gets_413_and_changes_nothing(api_as, make_user):
    body = json.dumps({"name": "big", "description": "x" * 5000})
    response = api_as(make_user()).post("/api/projects/", data=body, content_type="application/json")
    assert response.status_code == 413
    assert response.json()["code"] == "too_large"
    assert Project.objects.count() == 0


def test_openapi_schema_and_docs_are_served(api_as, make_user):
    client = api_as(make_user())
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = json.loads(schema.content)["paths"]
    assert "/api/projects/" in paths and "/api/auth/token/" in paths
    assert client.get("/api/docs/").status_code == 200


def test_schema_needs_login(api):
    assert api.get("/api/schema/").status_code == 401
