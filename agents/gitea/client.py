"""A small Gitea API client over httpx: timeouts, retries with backoff for connection errors and 5xx
answers (never for 4xx), `Authorization: token ...`, and the calls Orket needs. No Django.

    client = GiteaClient("https://gitea.example.com", "owner", "repo", token="...")
    pull = client.pull_create(head="card/12", base="main", title="...", body="...")
    client.comment_create(pull["number"], "Looks good")
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx

from agents.errors import AgentsError
from agents.outbound import refused_cause

DEFAULT_TIMEOUT = httpx.Timeout(15.0, connect=5.0)
RETRY_ATTEMPTS = 3
RETRY_BASE_DELAY = 0.25


class GiteaError(AgentsError):
    """A Gitea call failed; the message says which call and why (`remote_status`: Gitea's answer)."""

    status = 502
    code = "gitea_failed"

    def __init__(self, message: str, *, remote_status: int | None = None) -> None:
        super().__init__(message)
        self.remote_status = remote_status


class GiteaUnavailable(GiteaError):
    """Gitea could not be reached, or kept answering 5xx, after the retries."""

    status = 503
    code = "gitea_unavailable"


class GiteaRefused(GiteaError):
    """The operator's outbound policy does not allow connecting to this Gitea; not retried."""

    status = 403
    code = "gitea_not_allowed"


class GiteaAuthError(GiteaError):
    """401 or 403: the token is missing, wrong or lacks the permission."""

    code = "gitea_auth"


class GiteaNotFound(GiteaError):
    """404: the repository, pull request or issue does not exist (or the token cannot see it)."""

    code = "gitea_not_found"


class GiteaConflict(GiteaError):
    """405 or 409: the request is not possible in the current state (say, a merge that cannot merge)."""

    status = 409
    code = "gitea_conflict"


class GiteaRequestError(GiteaError):
    """Any other 4xx: Gitea refused the request as made (422 validation, 400 bad input)."""

    code = "gitea_refused_request"


def _error_for(status: int) -> type[GiteaError]:
    if status in (401, 403):
        return GiteaAuthError
    if status == 404:
        return GiteaNotFound
    if status in (405, 409):
        return GiteaConflict
    if status >= 500:
        return GiteaUnavailable
    return GiteaRequestError


def _said(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:300].strip()
    if isinstance(data, dict):
        return str(data.get("message") or data.get("error") or data)[:300]
    return str(data)[:300]


class GiteaClient:
    def __init__(
        self,
        base_url: str,
        owner: str,
        repo: str,
        *,
        token: str = "",
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        attempts: int = RETRY_ATTEMPTS,
        base_delay: float = RETRY_BASE_DELAY,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
        trust_env: bool = True,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.owner, self.repo = owner, repo
        self.attempts = max(1, attempts)
        self.base_delay = base_delay
        self._sleep = sleep
        headers = {"Accept": "application/json", "User-Agent": "Orket"}
        if token:
            headers["Authorization"] = f"token {token}"
        self._http = httpx.Client(
            base_url=f"{self.base_url}/api/v1",
            headers=headers,
            timeout=timeout,
            transport=transport,
            trust_env=trust_env,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GiteaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def _repo_path(self) -> str:
        return f"/repos/{quote(self.owner, safe='')}/{quote(self.repo, safe='')}"

    def request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None) -> Any:
        """One API call with retries for connection errors and 5xx; JSON of the answer (None if empty)."""
        what = f"{method} {path}"
        last: GiteaError | None = None
        for attempt in range(1, self.attempts + 1):
            try:
                response = self._http.request(method, path, json=json, params=params)
            except httpx.TransportError as error:
                refused = refused_cause(error)
                if refused is not None:
                    raise GiteaRefused(refused.message) from error
                last = GiteaUnavailable(f"Gitea at {self.base_url} could not be reached for {what}: {error}")
            else:
                if response.status_code < 400:
                    if not response.content:
                        return None
                    try:
                        return response.json()
                    except ValueError as error:
                        raise GiteaError(f"Gitea answered {what} with something that is not JSON.") from error
                kind = _error_for(response.status_code)
                last = kind(
                    f"Gitea answered {what} with {response.status_code}: {_said(response)}",
                    remote_status=response.status_code,
                )
                if kind is not GiteaUnavailable:
                    raise last
            if attempt < self.attempts:
                delay = self.base_delay * (2 ** (attempt - 1))
                self._sleep(delay + random.uniform(0, delay / 2))
        assert last is not None
        raise last

    # -- the calls Orket needs ------------------------------------------------------------------------------

    def repository(self) -> dict[str, Any]:
        return self.request("GET", self._repo_path)

    def pull_create(self, *, head: str, base: str, title: str, body: str) -> dict[str, Any]:
        return self.request(
            "POST", f"{self._repo_path}/pulls", json={"head": head, "base": base, "title": title, "body": body}
        )

    def pull_get(self, number: int) -> dict[str, Any]:
        return self.request("GET", f"{self._repo_path}/pulls/{int(number)}")

    def pulls_open(self, *, limit: int = 50, max_pages: int = 20) -> list[dict[str, Any]]:
        pulls: list[dict[str, Any]] = []
        for page in range(1, max_pages + 1):
            batch = self.request(
                "GET", f"{self._repo_path}/pulls", params={"state": "open", "page": page, "limit": limit}
            )
            if not batch:
                break
            pulls.extend(batch)
            if len(batch) < limit:
                break
        return pulls

    def comment_create(self, number: int, body: str) -> dict[str, Any]:
        """A comment on an issue or a pull request (they share numbers in Gitea)."""
        return self.request("POST", f"{self._repo_path}/issues/{int(number)}/comments", json={"body": body})

    def pull_merge(self, number: int, *, style: str = "merge", message: str = "") -> None:
        data: dict[str, Any] = {"Do": style}
        if message:
            data["MergeMessageField"] = message
        self.request("POST", f"{self._repo_path}/pulls/{int(number)}/merge", json=data)

    def pull_close(self, number: int) -> dict[str, Any]:
        return self.request("PATCH", f"{self._repo_path}/pulls/{int(number)}", json={"state": "closed"})

    def issue_create(self, *, title: str, body: str) -> dict[str, Any]:
        return self.request("POST", f"{self._repo_path}/issues", json={"title": title, "body": body})

    def reviews_list(self, number: int) -> list[dict[str, Any]]:
        return self.request("GET", f"{self._repo_path}/pulls/{int(number)}/reviews") or []
