"""The operator's outbound policy (ORKET_OUTBOUND_HOSTS) and the secret-variable rule as Django code
uses them: checks for services, readers and model validators, the guarded connections, and the
refusals as OrketErrors (400 with a code). The rules themselves are in agents.outbound and
agents.secret_variables, which do not import Django."""

from __future__ import annotations

import functools
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError

from agents import outbound, secret_variables
from agents.errors import AgentsError


class OutboundNotAllowed(AgentsError):
    status = 400
    code = outbound.OutboundRefused.code


class SecretVariableNotAllowed(AgentsError):
    status = 400
    code = secret_variables.SecretVariableRefused.code


@functools.lru_cache(maxsize=8)
def _parsed(entries: tuple[str, ...]) -> outbound.OutboundPolicy:
    try:
        return outbound.OutboundPolicy.parse(entries)
    except ValueError as error:
        raise ImproperlyConfigured(f"{outbound.SETTING}: {error}") from error


def policy() -> outbound.OutboundPolicy:
    entries = getattr(settings, outbound.SETTING, outbound.DEFAULT_OUTBOUND_HOSTS)
    if isinstance(entries, str):
        entries = entries.split(",")
    return _parsed(tuple(entry.strip() for entry in entries if entry.strip()))


def url_check(url: str) -> str:
    """The URL when the server may connect to it; OutboundNotAllowed (400) otherwise."""
    try:
        outbound.url_check(policy(), url)
    except outbound.OutboundRefused as refused:
        raise OutboundNotAllowed(refused.message) from refused
    return url


def http_client_options() -> dict[str, Any]:
    """Options for an httpx client (or a provider) whose every connection follows the policy."""
    return {"transport": outbound.GuardedTransport(policy()), "trust_env": False}


def git_config(url: str) -> dict[str, str]:
    """git configuration pinning a push or fetch of `url` to checked addresses; OutboundNotAllowed."""
    try:
        return outbound.git_connection_config(policy(), url)
    except outbound.OutboundRefused as refused:
        raise OutboundNotAllowed(refused.message) from refused


def secret_variable_check(name: str) -> str:
    """The name, stripped, when empty or marked for secrets (ORKET_SECRET_...); a 400 otherwise."""
    try:
        return secret_variables.secret_variable_check(name)
    except secret_variables.SecretVariableRefused as refused:
        raise SecretVariableNotAllowed(refused.message) from refused


def secret_variable_read(name: str) -> str:
    """The value of a variable marked for secrets; SecretVariableNotAllowed for any other name."""
    try:
        return secret_variables.secret_variable_read(name)
    except secret_variables.SecretVariableRefused as refused:
        raise SecretVariableNotAllowed(refused.message) from refused


def validate_outbound_url(value: str) -> None:
    """Model field validator (admin forms, full_clean)."""
    if not value:
        return
    try:
        url_check(value)
    except OutboundNotAllowed as refused:
        raise ValidationError(refused.message, code=refused.code) from refused


def validate_secret_variable(value: str) -> None:
    """Model field validator: empty, or a name with the ORKET_SECRET_ prefix."""
    try:
        secret_variable_check(value)
    except SecretVariableNotAllowed as refused:
        raise ValidationError(refused.message, code=refused.code) from refused
