"""This installation's sandbox settings, identity and state folders: read by the services and by the
log followers alike, so neither has to import the other for them."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from django.conf import settings

from sandboxes import names
from sandboxes.models import Sandbox


def setting(name: str, default: str) -> str:
    """A Django setting, else the environment variable of the same name, else `default`."""
    value = getattr(settings, name, None)
    if value is None or value == "":
        value = os.environ.get(name, "")
    return str(value).strip() or default


def instance_id() -> str:
    """ORKET_INSTANCE, else a digest of the data folder: the `orket.instance` label on everything this
    installation starts, so clean-up never takes another installation's (or test run's) sandboxes."""
    found = setting("ORKET_INSTANCE", "")
    if found:
        return names.sanitize_name(found)
    return hashlib.sha256(str(Path(settings.DATA_DIR).resolve()).encode()).hexdigest()[:16]


def sandboxes_root() -> Path:
    return Path(settings.DATA_DIR) / "sandboxes"


def state_dir(sandbox: Sandbox) -> Path:
    return sandboxes_root() / sandbox.name
