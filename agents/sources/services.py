"""Writes for a project's source repository: setting it, cloning it (a task), fetching it before a run.

Network and disk work (clone, fetch) never runs inside a database transaction: the row says
`cloning` and the clone runs in a Celery task after commit; a run fetches before its first turn.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from agents import dispatch, outbound_policy
from agents.errors import AgentsError
from agents.gitea import git_remote
from agents.gitea.models import GiteaLink
from agents.models import EpicAgentSettings, Run, RunStatus
from agents.sources import gitops
from agents.sources.models import SourceKind, SourceRepository, SourceState
from agents.workspaces import ProjectWorkspace, WorkspaceError, project_workspace_root
from boards.models import Epic, Project
from orket_site.errors import OrketError

logger = logging.getLogger(__name__)
# A clone whose row has not moved for this long is taken for stopped (a worker that died mid-clone).
STALLED_AFTER = timedelta(seconds=gitops.CLONE_TIMEOUT + 300)


class SourceInvalid(AgentsError):
    status = 400
    code = "source_invalid"


class SourceBusy(AgentsError):
    status = 409
    code = "run_active"


class SourceNotReady(AgentsError):
    status = 409
    code = "source_not_ready"


@dataclass(frozen=True)
class Remote:
    url: str  # an http(s) URL, or a local path
    token: str
    token_env: str
    config: dict[str, str] | None


@dataclass(frozen=True)
class Fetched:
    sha: str
    default_branch: str
    note: str


def _roots() -> list[Path]:
    return gitops.parse_roots(str(getattr(settings, "ORKET_LOCAL_REPO_ROOTS", "") or ""))


def _workspace(project_id: int) -> ProjectWorkspace:
    return ProjectWorkspace(project_workspace_root(settings.DATA_DIR, project_id))


def _local_path(path: str) -> Path:
    try:
        return gitops.local_path_check(path, _roots())
    except gitops.SourceRefused as refused:
        raise SourceInvalid(refused.message, code=refused.code) from refused


def _remote(source: SourceRepository) -> Remote:
    """Where to clone or fetch from, checked again now (the operator's rules may have changed), and
    the token read from the named variable. The host is checked before any token is read."""
    if source.kind == SourceKind.LOCAL:
        return Remote(str(_local_path(source.local_path)), "", "", None)
    if source.kind == SourceKind.GITEA:
        link = GiteaLink.objects.filter(project_id=source.project_id).first()
        if link is None:
            raise SourceInvalid("The project is no longer linked to Gitea; link it or choose another source.")
        url = git_remote.remote_url(link.base_url, link.owner, link.repo)
        config = outbound_policy.git_config(url)
        token = outbound_policy.secret_variable_read(source.token_env) if source.token_env else link.token()
        return Remote(url, token, source.token_env or link.token_env, config)
    config = outbound_policy.git_config(source.url)
    token = outbound_policy.secret_variable_read(source.token_env) if source.token_env else ""
    return Remote(source.url, token, source.token_env, config)


def _checked(kind: str, url: str, path: str, token_env: str, project: Project) -> dict[str, Any]:
    if kind not in SourceKind.values:
        raise SourceInvalid(f"The source kind must be one of {', '.join(SourceKind.values)}.", code="bad_kind")
    token_env = outbound_policy.secret_variable_check(token_env)
    fields: dict[str, Any] = {"kind": kind, "url": "", "local_path": "", "token_env": token_env}
    if kind == SourceKind.REMOTE:
        url = url.strip()
        if not url or len(url) > 500:
            raise SourceInvalid(
                "Give the repository's http:// or https:// URL (at most 500 characters).", code="bad_url"
            )
        outbound_policy.url_check(url)  # may resolve the host name: before the transaction
        fields["url"] = url
    elif kind == SourceKind.LOCAL:
        fields["local_path"] = str(_local_path(path))
    else:
        link = GiteaLink.objects.filter(project=project).first()
        if link is None:
            raise SourceInvalid("The project is not linked to a Gitea repository; link it first.", code="not_linked")
        fields["url"] = git_remote.remote_url(link.base_url, link.owner, link.repo)
        outbound_policy.url_check(fields["url"])
    return fields


def source_repository_set(
    *, project: Project, user: Any, kind: str, url: str = "", path: str = "", token_env: str = ""
) -> SourceRepository:
    """Set the project's source and start cloning it (after commit). The previous workspace is kept
    beside the new one (previous-<time>/). Refused while a run of the project is active."""
    fields = _checked(kind, url, path, token_env, project)
    with transaction.atomic():
        Project.objects.select_for_update().get(pk=project.pk)
        if Run.objects.filter(project=project, status__in=[RunStatus.QUEUED, RunStatus.RUNNING]).exists():
            raise SourceBusy("A run of this project is active; change the source when it has ended.")
        source = SourceRepository.objects.filter(project=project).first() or SourceRepository(project=project)
        for name, value in fields.items():
            setattr(source, name, value)
        source.generation = (source.generation + 1) if source.pk else 1
        source.state, source.progress, source.progress_phase = SourceState.CLONING, 0, ""
        source.error = source.fetch_error = source.default_branch = source.head_sha = ""
        source.set_by = user if getattr(user, "is_authenticated", False) else None
        source.save()
        logger.info("project %s: source repository set to %s %s by %s", project.pk, kind, source.location, user)
        dispatch.source_clone_after_commit(project_id=project.pk, generation=source.generation)
    return source


def source_repository_clear(*, project: Project, user: Any) -> None:
    """Forget the project's source; the workspace is put aside, so the next run starts an empty one."""
    with transaction.atomic():
        Project.objects.select_for_update().get(pk=project.pk)
        if Run.objects.filter(project=project, status__in=[RunStatus.QUEUED, RunStatus.RUNNING]).exists():
            raise SourceBusy("A run of this project is active; change the source when it has ended.")
        deleted, _ = SourceRepository.objects.filter(project=project).delete()
        logger.info("project %s: source repository cleared by %s", project.pk, user)
        if deleted:
            project_id = project.pk
            transaction.on_commit(lambda: _put_aside(_workspace(project_id)))


def _put_aside(workspace: ProjectWorkspace) -> None:
    with workspace.lock():
        _put_aside_locked(workspace)


def _put_aside_locked(workspace: ProjectWorkspace) -> None:
    if not workspace.repo.exists() and not workspace.cards.exists():
        return
    aside = workspace.root / f"previous-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{time.monotonic_ns()}"
    aside.mkdir(parents=True)
    for part in (workspace.repo, workspace.cards):
        if part.exists():
            part.rename(aside / part.name)


def _current(project_id: int, generation: int) -> SourceRepository | None:
    return SourceRepository.objects.filter(project_id=project_id, generation=generation).first()


def _record_failure(source: SourceRepository, message: str) -> None:
    SourceRepository.objects.filter(pk=source.pk, generation=source.generation).update(
        state=SourceState.FAILED, error=message[:4000], progress_phase=""
    )
    logger.warning("project %s: cloning the source failed: %s", source.project_id, message)


def source_clone(*, project_id: int, generation: int) -> SourceRepository | None:
    """Clone the source into the project's workspace (a task; no transaction around it). A clone of
    a source that changed meanwhile (another generation) is thrown away."""
    source = _current(project_id, generation)
    if source is None or source.state != SourceState.CLONING:
        return source
    workspace = _workspace(project_id)
    incoming = workspace.root / f"repo.incoming-{generation}"

    def report(percent: int, phase: str) -> None:
        SourceRepository.objects.filter(pk=source.pk, generation=generation).update(
            progress=percent, progress_phase=phase[:40], updated_at=timezone.now()
        )

    try:
        remote = _remote(source)
        result = gitops.clone(
            remote.url,
            incoming,
            token=remote.token,
            token_env=remote.token_env,
            config=remote.config,
            on_progress=report,
        )
    except OrketError as error:
        _record_failure(source, error.message)
        return _current(project_id, generation)
    except (gitops.SourceGitFailed, gitops.SourceRefused) as error:
        _record_failure(source, error.message)
        return _current(project_id, generation)
    with workspace.lock():
        if _current(project_id, generation) is None:
            shutil.rmtree(incoming, ignore_errors=True)
            return None
        _put_aside_locked(workspace)
        incoming.rename(workspace.repo)
    now = timezone.now()
    SourceRepository.objects.filter(pk=source.pk, generation=generation).update(
        state=SourceState.READY,
        progress=100,
        progress_phase="done",
        default_branch=result.default_branch,
        head_sha=result.sha,
        cloned_at=now,
        fetched_at=now,
        error="",
    )
    logger.info("project %s: source cloned (%s at %s)", project_id, result.default_branch, result.sha[:10])
    return _current(project_id, generation)


def epic_base_branch(epic_id: int) -> str:
    return EpicAgentSettings.objects.filter(epic_id=epic_id).values_list("base_branch", flat=True).first() or ""


def card_start_branch(card: Any) -> str:
    """The branch a new card branch starts from: the epic's base branch when the project has a source
    repository; "" for the workspace's base branch."""
    if not SourceRepository.objects.filter(project_id=card.project_id).exists():
        return ""
    return epic_base_branch(card.epic_id)


def epic_base_branch_set(*, epic: Epic, base_branch: str) -> EpicAgentSettings:
    """The branch the epic's new card branches start from ("" for the source's default branch)."""
    try:
        name = gitops.branch_name_check(base_branch)
    except gitops.SourceRefused as refused:
        raise SourceInvalid(refused.message, code=refused.code) from refused
    with transaction.atomic():
        agent_settings, _ = EpicAgentSettings.objects.select_for_update().get_or_create(epic=epic)
        agent_settings.base_branch = name
        agent_settings.save(update_fields=["base_branch"])
        logger.info("epic %s: base branch set to %r", epic.pk, name)
    return agent_settings


def source_fetch(*, project_id: int, start_branch: str = "") -> Fetched | None:
    """Fetch the project's source into its workspace (no transaction around it); None when the project
    has no source. SourceNotReady (clone not finished or failed, fetch failed, the epic's base branch
    missing) with a message that says what to do; the failure is also stored on the row."""
    source = SourceRepository.objects.filter(project_id=project_id).first()
    if source is None:
        return None
    if source.state == SourceState.CLONING:
        if timezone.now() - source.updated_at > STALLED_AFTER:
            raise SourceNotReady(
                "The clone of the source repository stopped making progress (its worker may have stopped); "
                "set the source again to clone it afresh."
            )
        raise SourceNotReady(
            f"The source repository is still being cloned ({source.progress}%); start the run when it is ready."
        )
    if source.state == SourceState.FAILED:
        raise SourceNotReady(
            f"The source repository could not be cloned: {source.error} Fix it in the project's source settings."
        )
    workspace = _workspace(project_id)
    try:
        remote = _remote(source)
        with workspace.lock():
            result = gitops.fetch(
                workspace.repo,
                default_branch=source.default_branch,
                branch=start_branch,
                token=remote.token,
                token_env=remote.token_env,
                config=remote.config,
            )
            if start_branch:
                workspace.start_ref(start_branch)
    except (OrketError, gitops.SourceGitFailed, WorkspaceError) as error:
        message = getattr(error, "message", None) or str(error)
        SourceRepository.objects.filter(pk=source.pk).update(fetch_error=message[:4000])
        raise SourceNotReady(f"Fetching the source repository failed: {message}", code="fetch_failed") from error
    SourceRepository.objects.filter(pk=source.pk).update(fetched_at=timezone.now(), fetch_error="", head_sha=result.sha)
    return Fetched(result.sha, result.default_branch, result.note)


def pull_request_base(project_id: int, epic_id: int) -> str:
    """The branch a card's pull request targets when the source is the linked Gitea repository: the
    epic's base branch or the source's default; "" otherwise (the link's own base branch applies)."""
    source = SourceRepository.objects.filter(project_id=project_id, kind=SourceKind.GITEA).first()
    if source is None or source.state != SourceState.READY:
        return ""
    return epic_base_branch(epic_id) or source.default_branch
