"""Host ports for sandboxes, leased in the database from ORKET_SANDBOX_PORT_RANGE (default 20000-20999).

The unique constraint on `PortLease.port` is the lock: a lease is an INSERT inside a savepoint, and
when another sandbox took the port first (IntegrityError, on PostgreSQL after its transaction
commits) the next free port is tried. Two sandboxes created at the same moment never share a port,
on PostgreSQL or SQLite. A port something else on this machine already listens on is skipped.
Leases go when the sandbox is deleted (`release_ports`).
"""

from __future__ import annotations

import os
import random
import socket

from django.conf import settings
from django.db import IntegrityError, transaction

from sandboxes.errors import NoPortFree
from sandboxes.models import PortLease, Sandbox

DEFAULT_RANGE = "20000-20999"


def port_range() -> tuple[int, int]:
    raw = str(getattr(settings, "ORKET_SANDBOX_PORT_RANGE", "") or os.environ.get("ORKET_SANDBOX_PORT_RANGE", ""))
    raw = raw.strip() or DEFAULT_RANGE
    try:
        low_text, high_text = raw.split("-", 1)
        low, high = int(low_text), int(high_text)
    except ValueError as error:
        raise ValueError(f"ORKET_SANDBOX_PORT_RANGE must look like 20000-20999, not {raw!r}") from error
    if not 1024 <= low <= high <= 65535:
        raise ValueError(f"ORKET_SANDBOX_PORT_RANGE must lie within 1024-65535 with low <= high, not {raw!r}")
    return low, high


def port_busy(port: int) -> bool:
    """True when something on this machine already holds 127.0.0.1:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def lease_port(*, sandbox: Sandbox, service: str) -> int:
    """Lease one free port of the range for `service` of `sandbox`; NoPortFree when none is left."""
    existing = PortLease.objects.filter(sandbox=sandbox, service=service).values_list("port", flat=True).first()
    if existing is not None:
        return int(existing)
    low, high = port_range()
    taken = set(PortLease.objects.filter(port__gte=low, port__lte=high).values_list("port", flat=True))
    candidates = [port for port in range(low, high + 1) if port not in taken]
    # Start at a random place so concurrent creations rarely try the same port first.
    if candidates:
        start = random.randrange(len(candidates))
        candidates = candidates[start:] + candidates[:start]
    for port in candidates:
        if port_busy(port):
            continue
        try:
            with transaction.atomic():
                PortLease.objects.create(port=port, sandbox=sandbox, service=service)
        except IntegrityError:
            continue  # taken by a concurrent creation, or held by this sandbox's other service
        return port
    raise NoPortFree(f"Every port of {low}-{high} is leased or in use; delete a sandbox first.")


def lease_ports(*, sandbox: Sandbox, services: list[str]) -> dict[str, int]:
    return {service: lease_port(sandbox=sandbox, service=service) for service in services}


def release_ports(*, sandbox: Sandbox) -> int:
    deleted, _ = PortLease.objects.filter(sandbox=sandbox).delete()
    return deleted


def leased_ports(sandbox: Sandbox) -> dict[str, int]:
    return dict(PortLease.objects.filter(sandbox=sandbox).values_list("service", "port"))
