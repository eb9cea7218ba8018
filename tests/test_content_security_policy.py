"""Every page carries the Content-Security-Policy, and no page needs what it refuses: no inline
script (JSON islands read by a module are data, not script), no style element or style attribute.
Pages are the routes of the resolver walk of the security sweep, fetched by a maintainer of the
project the ids point at, plus the pages an anonymous visitor sees."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

from boards.models import ProjectRole
from tests.test_security_sweep import body_of, sweep_paths, target_project

pytestmark = pytest.mark.django_db(transaction=True)

EXPECTED_DIRECTIVES = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "connect-src": "'self'",
    "frame-ancestors": "'none'",
    "object-src": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
}
SCRIPT_TAG = re.compile(r"<script\b([^>]*)>", re.IGNORECASE)
STYLE_ELEMENT = re.compile(r"<style\b", re.IGNORECASE)
STYLE_ATTRIBUTE = re.compile(r"<[a-z][^>]*\sstyle\s*=", re.IGNORECASE)


def directives(response: Any) -> dict[str, str]:
    header = response.headers.get("Content-Security-Policy", "")
    parts = [part.strip().split(None, 1) for part in header.split(";") if part.strip()]
    return {part[0]: part[1] if len(part) > 1 else "" for part in parts}


def inline_problems(html: str) -> list[str]:
    problems = []
    for match in SCRIPT_TAG.finditer(html):
        attributes = match.group(1)
        if "src=" not in attributes and 'type="application/json"' not in attributes:
            problems.append(f"inline script: {match.group(0)}")
    if STYLE_ELEMENT.search(html):
        problems.append("a <style> element")
    for match in STYLE_ATTRIBUTE.finditer(html):
        problems.append(f"a style attribute: {match.group(0)[:120]}")
    return problems


def page_paths() -> list[tuple[str, str]]:
    """HTML pages of the site; the browsable API and the admin are Django's and DRF's own pages."""
    return [(name, path) for name, path in sweep_paths() if not path.startswith("/api/") or name == "api-docs"]


def test_every_page_sends_the_policy_and_holds_no_inline_script_or_style(make_user: Any) -> None:
    project = target_project()
    maintainer = make_user("maintainer")
    project.memberships.create(user=maintainer, role=ProjectRole.MAINTAINER)
    member, anonymous = Client(), Client()
    member.force_login(maintainer)
    checked, problems = 0, []
    for client in (member, anonymous):
        for name, path in page_paths():
            response = client.get(path)
            if name != "metrics" and directives(response) != EXPECTED_DIRECTIVES:
                problems.append(f"{path} ({name}): policy {response.headers.get('Content-Security-Policy')!r}")
            if response.status_code == 200 and "text/html" in response.headers.get("Content-Type", ""):
                checked += 1
                problems.extend(f"{path} ({name}): {problem}" for problem in inline_problems(body_of(response)))
    assert not problems, "\n".join(problems)
    assert checked >= 15, "too few pages were checked"


def test_the_api_docs_page_loads_swagger_ui_from_this_server(make_user: Any) -> None:
    client = Client()
    client.force_login(make_user("reader"))
    page = client.get("/api/docs/")
    html = page.content.decode()
    assert page.status_code == 200 and not inline_problems(html)
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any("swagger-ui-bundle.js" in source for source in sources), sources
    assert all(source.startswith("/") and not source.startswith("//") for source in sources), sources
    script = next(source for source in sources if "script" in source.split("?", 1)[-1])
    started = client.get(script)
    assert started.status_code == 200 and "SwaggerUIBundle" in started.content.decode()
    assert started.headers["Content-Type"].startswith("application/javascript")
    bundle = next(source for source in sources if "swagger-ui-bundle.js" in source)
    assert client.get(bundle).status_code == 200
