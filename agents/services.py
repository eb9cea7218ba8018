"""Writes for the agents app: runs and turns (start, cancel, advance, claim, execute, recover), team
import and export, and the standard seed configuration.

Views, API views, commands, tasks and the Gitea integration call these. The run and turn services
hand over to the modules that hold their steps: agents.engine (runs), agents.turns (executing a
turn) and agents.leases (claiming, keeping and recovering turns).
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from agents import engine, leases, turns
from agents.errors import InvalidTeamDocument
from agents.models import Dialect, ModelProfile, Role, Run, Seat, Team, Turn
from agents.seed_data import DIALECTS, MODEL_PROFILES, STANDARD_TEAM
from agents.team_format import FORMAT_VERSION, RoleSpec, parse_team
from boards.models import Card, Epic

# -- runs and turns ------------------------------------------------------------------------------------------


def run_start(
    *,
    epic: Epic,
    user: Any = None,
    profile: ModelProfile | None = None,
    card: Card | None = None,
    max_parallel: int = 2,
) -> Run:
    """Create a run of the epic (or of one of its cards) and queue its first advance after commit.
    Raises EngineError when the epic may not run (gate closed, a run active, no team or profile)."""
    return engine.run_start(epic=epic, user=user, profile=profile, card=card, max_parallel=max_parallel)


def run_cancel(*, run: Run) -> Run:
    """Ask the run to stop: queued turns are canceled at once, running ones at their next step."""
    return engine.run_cancel(run=run)


def run_advance(*, run_id: int) -> Run | None:
    """Start turns for the work that can go on, or finish the run (and its epic)."""
    return engine.run_advance(run_id=run_id)


def turn_claim(*, turn_id: int, owner: str) -> Turn | None:
    """Take a queued turn under a lease; None when someone else has it or it is no longer queued."""
    return leases.turn_claim(turn_id=turn_id, owner=owner)


def turn_heartbeat(*, turn_id: int, owner: str) -> bool:
    """Extend a turn's lease; False when the lease was lost."""
    return leases.turn_heartbeat(turn_id=turn_id, owner=owner)


def turn_execute(*, turn_id: int) -> None:
    """Claim and execute one turn, then advance its run; safe to call twice for the same turn."""
    turns.turn_execute(turn_id=turn_id)


def turns_reap_stale() -> int:
    """Return running turns whose lease expired to the queue (or fail them), and dispatch lost work again."""
    return leases.turns_reap_stale()


def turns_requeue_orphans() -> int:
    """Dispatch queued turns and active runs again (the embedded worker's in-memory queue was lost)."""
    return leases.turns_requeue_orphans()


# -- teams ---------------------------------------------------------------------------------------------------


def _role_fields(spec: RoleSpec) -> dict[str, Any]:
    return {
        "intent": spec.intent,
        "responsibilities": spec.responsibilities,
        "constraints": spec.constraints,
        "allowed_tools": spec.tools,
        "can_finalize": spec.can_finalize,
        "is_project_manager": spec.is_project_manager,
    }


def _differs(role: Role, fields: dict[str, Any]) -> bool:
    return any(getattr(role, key) != value for key, value in fields.items())


@transaction.atomic
def team_import(*, document: Any) -> Team:
    """Create a team (and the roles it defines) from Orket's JSON format, all or nothing.

    A role that already exists with the same definition is reused; one that exists with a different
    definition is refused rather than silently changed under the other teams that use it.
    """
    spec, problems = parse_team(document)
    if spec is None:
        raise InvalidTeamDocument("The team document has problems; nothing was imported.", problems=problems)
    problems = []
    if Team.objects.filter(name=spec.name).exists():
        problems.append({"path": "name", "message": f"a team named {spec.name!r} already exists"})
    existing_roles = {role.name: role for role in Role.objects.filter(name__in=[r.name for r in spec.roles])}
    for index, role_spec in enumerate(spec.roles):
        existing = existing_roles.get(role_spec.name)
        if existing is not None and _differs(existing, _role_fields(role_spec)):
            problems.append(
                {"path": f"roles[{index}].name", "message": f"a different role named {role_spec.name!r} exists"}
            )
    defined = {role.name for role in spec.roles}
    referenced = {name for seat in spec.seats for name in seat.roles}
    known = defined | set(Role.objects.filter(name__in=referenced - defined).values_list("name", flat=True))
    profiles = {seat.model_profile for seat in spec.seats if seat.model_profile}
    known_profiles = set(ModelProfile.objects.filter(name__in=profiles).values_list("name", flat=True))
    for seat_index, seat in enumerate(spec.seats):
        for role_index, role_name in enumerate(seat.roles):
            if role_name not in known:
                problems.append(
                    {"path": f"seats[{seat_index}].roles[{role_index}]", "message": f"unknown role {role_name!r}"}
                )
        if seat.model_profile and seat.model_profile not in known_profiles:
            problems.append(
                {
                    "path": f"seats[{seat_index}].model_profile",
                    "message": f"unknown model profile {seat.model_profile!r}",
                }
            )
    if problems:
        raise InvalidTeamDocument("The team document has problems; nothing was imported.", problems=problems)

    for role_spec in spec.roles:
        Role.objects.get_or_create(name=role_spec.name, defaults=_role_fields(role_spec))
    roles = {role.name: role for role in Role.objects.filter(name__in=referenced)}
    profile_ids = dict(ModelProfile.objects.filter(name__in=profiles).values_list("name", "id"))
    team = Team.objects.create(name=spec.name, description=spec.description)
    for order, seat_spec in enumerate(spec.seats):
        seat = Seat.objects.create(
            team=team, name=seat_spec.name, order=order, model_profile_id=profile_ids.get(seat_spec.model_profile or "")
        )
        seat.roles.set([roles[name] for name in seat_spec.roles])
    return team


def role_export(role: Role) -> dict[str, Any]:
    return {
        "name": role.name,
        "intent": role.intent,
        "responsibilities": role.responsibilities,
        "constraints": role.constraints,
        "tools": role.allowed_tools,
        "can_finalize": role.can_finalize,
        "is_project_manager": role.is_project_manager,
    }


def team_export(*, team: Team) -> dict[str, Any]:
    seats = list(team.seats.select_related("model_profile").prefetch_related("roles").order_by("order", "name"))
    roles = sorted({role.pk: role for seat in seats for role in seat.roles.all()}.values(), key=lambda r: r.name)
    return {
        "format": FORMAT_VERSION,
        "name": team.name,
        "description": team.description,
        "roles": [role_export(role) for role in roles],
        "seats": [
            {
                "name": seat.name,
                "roles": sorted(role.name for role in seat.roles.all()),
                "model_profile": seat.model_profile.name if seat.model_profile else None,
            }
            for seat in seats
        ],
    }


@transaction.atomic
def seed_standard_configuration() -> bool:
    """Create the dialects, model profiles and the `standard` team when they are missing.

    Returns True when anything was created. Existing rows are never changed.
    """
    created = False
    for fields in DIALECTS:
        _, made = Dialect.objects.get_or_create(name=fields["name"], defaults=fields)
        created |= made
    dialects = {dialect.name: dialect for dialect in Dialect.objects.all()}
    for fields in MODEL_PROFILES:
        values = {**fields, "dialect": dialects.get(fields["dialect"])}
        _, made = ModelProfile.objects.get_or_create(name=fields["name"], defaults=values)
        created |= made
    if not Team.objects.filter(name=STANDARD_TEAM["name"]).exists():
        team_import(document=STANDARD_TEAM)
        created = True
    return created
