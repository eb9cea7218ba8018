"""Reads of the agents app that more than one caller needs.

Among them, the code of a card: its branch against its base as a parsed, highlighted diff (for the
whole card, one turn or one step), and a read-only view of its checkout through the workspace path
policy.
"""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.db.models import Case, Count, IntegerField, OuterRef, Prefetch, Q, QuerySet, Subquery, Value, When
from django.db.models.functions import Coalesce

from agents import code_view
from agents.errors import CodeNotFound, EngineError, PathRefused
from agents.gate import check_path
from agents.models import ModelProfile, Run, RunEvent, Team, Turn, TurnStatus
from agents.safe_files import WorkspaceFileError, list_folder_info, read_head
from agents.workspaces import ProjectWorkspace, project_workspace_root
from boards import machine
from boards.models import Card, Epic

ACTIVE_TURN_STATUSES = (TurnStatus.QUEUED, TurnStatus.RUNNING)


def _epic_card_count(*, done_only: bool) -> Subquery:
    cards = Card.objects.filter(epic_id=OuterRef("epic_id"))
    if done_only:
        cards = cards.filter(status=machine.DONE)
    counted = cards.order_by().values("epic_id").annotate(n=Count("pk")).values("n")
    return Subquery(counted, output_field=IntegerField())


def runs_summarised(queryset: QuerySet[Run]) -> QuerySet[Run]:
    """Runs with what a list shows of each (cards done and in all, active turns) in a constant number
    of queries, whatever the number of runs: counts are annotated, active turns prefetched."""
    single_card_done = Case(When(card__status=machine.DONE, then=Value(1)), default=Value(0))
    return (
        queryset.select_related("model_profile", "team", "epic")
        .annotate(
            summary_cards_total=Case(
                When(card__isnull=False, then=Value(1)),
                default=Coalesce(_epic_card_count(done_only=False), Value(0)),
                output_field=IntegerField(),
            ),
            summary_cards_done=Case(
                When(card__isnull=False, then=single_card_done),
                default=Coalesce(_epic_card_count(done_only=True), Value(0)),
                output_field=IntegerField(),
            ),
        )
        .prefetch_related(
            Prefetch(
                "turns",
                queryset=Turn.objects.filter(Q(status__in=ACTIVE_TURN_STATUSES)).order_by("id"),
                to_attr="summary_active_turns",
            )
        )
    )


def run_summarised(run_id: int) -> Run:
    return runs_summarised(Run.objects.filter(pk=run_id)).get()


def events_after(run: Run, after: int, limit: int = 1000) -> QuerySet[RunEvent]:
    return RunEvent.objects.filter(run=run, seq__gt=after).order_by("seq")[:limit]


def profile_by_reference(reference: Any) -> ModelProfile:
    queryset = ModelProfile.objects.all()
    profile = None
    if isinstance(reference, int) or (isinstance(reference, str) and reference.isdigit()):
        profile = queryset.filter(pk=int(reference)).first()
    elif isinstance(reference, str):
        profile = queryset.filter(name=reference).first()
    if profile is None:
        raise EngineError(f"There is no model profile {reference!r}.", code="unknown_profile")
    return profile


def model_label(profile: ModelProfile) -> str:
    """What to show as the model's name: a scripted profile is never passed off as a real model."""
    return "scripted" if profile.provider == ModelProfile.Provider.SCRIPTED else profile.model


def team_for(epic: Epic) -> Team:
    name = epic.team or "standard"
    team = Team.objects.filter(name=name).first()
    if team is None:
        raise EngineError(f"The epic names team {name!r}, which does not exist.", code="unknown_team")
    return team


# -- the code of a card ------------------------------------------------------------------------------------

MAX_PATCH_BYTES = 1024 * 1024  # of git's patch output read for one diff request
MAX_FOLDER_ENTRIES = 1000
COMMIT_EVENT = "workspace.commit"


def card_workspace(card: Card) -> ProjectWorkspace:
    return ProjectWorkspace(project_workspace_root(settings.DATA_DIR, card.project_id))


def card_base_ref(card: Card) -> str:
    """The one place that decides what a card's branch is compared with."""
    return card_workspace(card).base_ref_for(card.pk)


def turn_commits(turn: Turn) -> list[dict[str, Any]]:
    """The commits a turn's steps made, oldest first: {"sha", "step", "files"}."""
    events = RunEvent.objects.filter(run_id=turn.run_id, turn_id=turn.pk, kind=COMMIT_EVENT).order_by("seq")
    return [
        {"sha": event.data.get("sha", ""), "step": event.data.get("step"), "files": event.data.get("files", [])}
        for event in events
        if event.data.get("sha")
    ]


def card_code_diff(
    *, card: Card, turn_id: int | None = None, step: int | None = None, path: str = ""
) -> dict[str, Any]:
    """The card's changes as the browser shows them: the whole branch against its base (from their merge
    base), one turn's commits (from the commit before its first step to its last), or one step's commit;
    limited to `path` when given. Capped in size, with what was left out counted."""
    if path:
        _check(path, allow_root=False)
    workspace = card_workspace(card)
    scope: dict[str, Any] = {"card": card.pk, "turn": turn_id, "step": step, "path": path}
    if turn_id is None:
        base, head = card_base_ref(card), workspace.card_branch(card.pk)
        scope.update(base=base, head=head)
        if not workspace.has_ref(head) or not workspace.has_ref(base):
            return {**scope, **code_view.DiffView(files=[]).as_dict(), "note": "No work on this card yet."}
        merged = workspace.merged_from(base, head)
        if merged:
            scope.update(base=merged, merged=True)
        raw = workspace.diff(merged or base, head, path=path, max_bytes=MAX_PATCH_BYTES)
    else:
        turn = Turn.objects.filter(card=card, pk=turn_id).first()
        if turn is None:
            raise CodeNotFound(f"Card {card.pk} has no turn {turn_id}.")
        commits = turn_commits(turn)
        if step is not None:
            commits = [commit for commit in commits if commit["step"] == step]
        if not commits or not workspace.has_ref(commits[-1]["sha"]):
            what = f"Step {step} of turn {turn_id}" if step is not None else f"Turn {turn_id}"
            return {**scope, **code_view.DiffView(files=[]).as_dict(), "note": f"{what} changed no files."}
        base, head = commits[0]["sha"] + "^", commits[-1]["sha"]
        scope.update(base=base, head=head)
        raw = workspace.diff(base, head, merge_base=False, path=path, max_bytes=MAX_PATCH_BYTES)
    view = code_view.diff_view(raw.numstat, raw.patch, patch_cut=raw.cut)
    code_view.highlight_diff(view)
    return {**scope, **view.as_dict(), "note": ""}


def card_turns_with_commits(card: Card) -> list[dict[str, Any]]:
    """The card's turns that committed something, newest first (at most 100), for the diff's turn choice;
    two queries however many turns."""
    commits: dict[int, list[dict[str, Any]]] = {}
    for turn_id, data in (
        RunEvent.objects.filter(turn__card_id=card.pk, kind=COMMIT_EVENT)
        .order_by("run_id", "seq")
        .values_list("turn_id", "data")
    ):
        if data.get("sha"):
            commits.setdefault(turn_id, []).append(
                {"sha": data["sha"], "step": data.get("step"), "files": data.get("files", [])}
            )
    turns = Turn.objects.filter(card=card, pk__in=list(commits)).order_by("-id")[:100]
    return [
        {"id": turn.pk, "run": turn.run_id, "number": turn.number, "seat": turn.seat, "commits": commits[turn.pk]}
        for turn in turns
    ]


def card_folder(*, card: Card, path: str = "") -> dict[str, Any]:
    """The entries of a folder of the card's checkout (links listed, never followed)."""
    _check(path, allow_root=True)
    root = card_workspace(card).card_path(card.pk)
    if not (root / ".git").exists():
        return {"card": card.pk, "path": path, "exists": False, "entries": [], "total": 0}
    try:
        entries, total = list_folder_info(os.fspath(root), path, limit=MAX_FOLDER_ENTRIES)
    except WorkspaceFileError as error:
        raise _file_error(error) from None
    return {
        "card": card.pk,
        "path": path.strip("/"),
        "exists": True,
        "entries": [{"name": e.name, "kind": e.kind, "size": e.size} for e in entries],
        "total": total,
    }


def card_file(*, card: Card, path: str) -> dict[str, Any]:
    """One file of the card's checkout: highlighted lines, or a summary when it is binary or large."""
    _check(path, allow_root=False)
    root = card_workspace(card).card_path(card.pk)
    if not (root / ".git").exists():
        raise CodeNotFound("The card has no checkout yet.")
    try:
        head, size = read_head(os.fspath(root), path, limit=code_view.MAX_SHOWN_FILE_BYTES)
    except WorkspaceFileError as error:
        raise _file_error(error) from None
    return {"card": card.pk, **code_view.file_summary(path, head, size)}


def _check(path: str, *, allow_root: bool) -> None:
    decision = check_path(path, allow_root=allow_root)
    if not decision.allowed:
        raise PathRefused(decision.message)


def _file_error(error: WorkspaceFileError) -> Exception:
    if error.reason == "not_found":
        return CodeNotFound(error.message)
    return PathRefused(error.message, code="path_refused", reason=error.reason)
