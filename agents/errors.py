"""The agents error hierarchy; the API maps each to an HTTP status with a machine-readable code."""

from __future__ import annotations

from orket_site.errors import OrketError


class AgentsError(OrketError):
    status = 400
    code = "invalid"


class InvalidTeamDocument(AgentsError):
    status = 400
    code = "invalid_team"


class NameTaken(AgentsError):
    status = 409
    code = "name_taken"


class ApprovalDecided(AgentsError):
    """The approval was decided already (or its turn no longer waits for it)."""

    status = 409
    code = "already_decided"


class ApprovalInvalid(AgentsError):
    status = 400
    code = "invalid_decision"


class ApprovalPending(AgentsError):
    """The card waits for an approval of a tool call, not for an answer."""

    status = 409
    code = "approval_pending"


class PathRefused(AgentsError):
    """A path the workspace path policy refuses (outside the checkout, through a link, into .git)."""

    status = 400
    code = "path_refused"


class CodeNotFound(AgentsError):
    """A file, folder, turn or step of a card that does not exist (or made no commit)."""

    status = 404
    code = "not_found"
