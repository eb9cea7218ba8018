"""Who asks for a change: a person (their project role is looked up) or an agent seat with roles."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from boards import machine
from boards.access import require_project_role
from boards.models import ProjectRole


@dataclass(frozen=True)
class Actor:
    """A person (`user`), an agent seat (`seat`, `roles`, `can_finalize`), or Orket itself (`system`)."""

    user: Any = None
    seat: str = ""
    roles: tuple[str, ...] = ()
    can_finalize: bool = False
    system: bool = False
    # A seat carrying out a decision a person made elsewhere (an approval in the code forge).
    for_person: bool = False

    @classmethod
    def for_user(cls, user: Any) -> Actor:
        return cls(user=user)

    @classmethod
    def for_seat(
        cls,
        seat: str,
        roles: tuple[str, ...] | list[str] = (),
        *,
        can_finalize: bool = False,
        for_person: bool = False,
    ) -> Actor:
        if not seat.strip():
            raise ValueError("An agent actor needs a seat name.")
        return cls(seat=seat.strip(), roles=tuple(roles), can_finalize=can_finalize, for_person=for_person)

    @classmethod
    def orket(cls, what: str = "orket") -> Actor:
        """Orket acting on its own account (roll-up, import)."""
        return cls(seat=what, system=True)

    @property
    def is_user(self) -> bool:
        return self.user is not None

    def describe(self) -> str:
        if self.user is not None:
            return str(getattr(self.user, "username", self.user))
        return self.seat

    def facts(self, project_id: int, minimum: str = ProjectRole.MEMBER) -> machine.ActorFacts:
        """The facts the state machine needs. A person must hold at least `minimum` in the project
        (NotFound for non-members, Forbidden for weaker roles). A project maintainer counts as a
        finalizing role: the person who approves on behalf of the integrity guard."""
        if self.user is not None:
            role = require_project_role(self.user, project_id, minimum)
            maintainer = role == ProjectRole.MAINTAINER
            return machine.ActorFacts(
                seat="", roles=frozenset({role}), is_maintainer=maintainer, can_finalize=maintainer
            )
        return machine.ActorFacts(
            seat="" if self.system else self.seat,
            roles=frozenset(self.roles),
            is_maintainer=False,
            can_finalize=self.can_finalize and not self.system,
            decided_by_person=self.for_person,
        )

    def history_fields(self) -> dict[str, Any]:
        if self.user is not None:
            return {"actor_user": self.user, "actor_seat": "", "actor_roles": []}
        roles = list(self.roles)
        if self.can_finalize and "finalizer" not in roles:
            roles.append("finalizer")
        return {"actor_user": None, "actor_seat": self.seat, "actor_roles": roles}
