"""Which environment variables may hold a secret Orket sends out (a Gitea token, a model server's API
key). No Django.

Only names the operator has marked with the fixed prefix ORKET_SECRET_ may be read this way, so a
project maintainer who names a variable cannot make the server send SECRET_KEY, DATABASE_URL or an
admin password to a server of their choosing. Every writer (services, serializers, model
validators) and every reader (GiteaLink.token, ModelProfile.api_key) goes through this module.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

SECRET_PREFIX = "ORKET_SECRET_"  # noqa: S105 - a name prefix, not a secret
_SECRET_NAME = re.compile(rf"^{SECRET_PREFIX}[A-Z0-9_]+$")
# Said the same way for every refused name: it never tells whether the variable exists.
REFUSAL = (
    f"Only environment variables whose names start with {SECRET_PREFIX} (uppercase letters, digits and '_') "
    "can hold a token or key; the operator sets them on the server."
)


class SecretVariableRefused(Exception):
    """A name that is not marked for secrets; agents.outbound_policy turns it into a 400."""

    code = "secret_variable_refused"

    def __init__(self, message: str = REFUSAL) -> None:
        super().__init__(message)
        self.message = message


def secret_variable_allowed(name: str) -> bool:
    """Whether `name` is a variable the operator marked for secrets."""
    return bool(_SECRET_NAME.match(name))


def secret_variable_check(name: str) -> str:
    """The name, stripped, when it is empty or allowed; SecretVariableRefused otherwise."""
    name = name.strip()
    if name and not secret_variable_allowed(name):
        raise SecretVariableRefused
    return name


def secret_variable_read(name: str, environ: Mapping[str, str] | None = None) -> str:
    """The value of an allowed variable ("" when unset); SecretVariableRefused for any other name,
    including names stored before the rule existed."""
    if not secret_variable_allowed(name):
        raise SecretVariableRefused
    return (os.environ if environ is None else environ).get(name, "")
