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


class EngineError(AgentsError):
    """The engine refuses to start or go on with a run (gate closed, run active, no team or profile)."""

    status = 409
    code = "run_refused"


class ReviewByPerson(EngineError):
    """No seat may review the card (the only finalizers did its work): a person must."""

    code = "review_by_person"


class GiteaLinkInvalid(AgentsError):
    status = 400
    code = "gitea_invalid"


class DeliveryRefused(AgentsError):
    """A webhook delivery that is not stored: unsigned, wrongly signed, too large or unreadable."""

    status = 400
    code = "delivery_refused"


class DeliveryTooLarge(DeliveryRefused):
    status = 413
    code = "too_large"


class DeliveryUnsigned(DeliveryRefused):
    status = 401
    code = "signature_missing"


class DeliverySignatureInvalid(DeliveryRefused):
    status = 401
    code = "signature_invalid"


class DeliveryMalformed(DeliveryRefused):
    """The body is not a JSON object, or not a payload of the event it claims to be (`code` says which)."""

    status = 400
    code = "malformed_json"
