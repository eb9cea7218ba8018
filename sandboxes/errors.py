"""The sandboxes error hierarchy; the API maps each to an HTTP status with a machine-readable code."""

from __future__ import annotations

from orket_site.errors import OrketError


class SandboxError(OrketError):
    status = 400
    code = "invalid"


class UnsupportedStack(SandboxError):
    status = 400
    code = "unsupported_stack"


class NoWorkspace(SandboxError):
    status = 400
    code = "no_workspace"


class NoPortFree(SandboxError):
    status = 409
    code = "no_port_free"


class TooManySandboxes(SandboxError):
    status = 409
    code = "too_many_sandboxes"


class IllegalSandboxState(SandboxError):
    status = 409
    code = "conflict"


class LogStreamClosed(SandboxError):
    status = 409
    code = "log_stream_closed"
