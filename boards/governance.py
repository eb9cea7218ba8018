"""The complexity gate and the workspace path policy, as pure functions (no Django, no I/O)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

COMPONENT_FOLDERS = frozenset(
    {
        "managers",
        "engines",
        "accessors",
        "utils",
        "controllers",
        "tests",
        "schemas",
        "models",
        "infrastructure",
        "services",
    }
)
DEFAULT_COMPLEXITY_THRESHOLD = 7


@dataclass(frozen=True)
class GateDecision:
    allowed: bool
    code: str = ""
    reason: str = ""


def epic_may_run(*, card_count: int, threshold: int, architecture_governance: bool) -> GateDecision:
    """An epic with more than `threshold` cards needs architecture governance switched on."""
    if card_count > threshold and not architecture_governance:
        return GateDecision(
            False,
            "complexity_gate",
            f"This epic has {card_count} cards, more than the project's limit of {threshold}; "
            "switch architecture governance on (project or epic) before running it, or split the epic.",
        )
    return GateDecision(True)


_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")


def check_workspace_path(path: str) -> GateDecision:
    """Whether a workspace-relative path sits under a recognised component folder.

    Refuses empty, absolute and drive paths, backslashes, and any `..` segment; the component
    folder may be at any depth (`src/services/billing.py`), but the file itself must be inside it.
    """
    if not path or not path.strip():
        return GateDecision(False, "path_empty", "The path is empty.")
    if "\x00" in path:
        return GateDecision(False, "path_invalid", "The path contains a NUL byte.")
    if "\\" in path:
        return GateDecision(False, "path_invalid", "Use forward slashes in workspace paths.")
    if path.startswith("/") or _WINDOWS_DRIVE.match(path):
        return GateDecision(False, "path_absolute", f"{path!r} is absolute; paths are relative to the workspace.")
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        return GateDecision(False, "path_escape", f"{path!r} uses '..'; paths must stay inside the workspace.")
    if not parts:
        return GateDecision(False, "path_empty", "The path names no file.")
    folders = [part.lower() for part in PurePosixPath(*parts).parts[:-1]]
    if not any(folder in COMPONENT_FOLDERS for folder in folders):
        listed = ", ".join(sorted(COMPONENT_FOLDERS))
        return GateDecision(
            False,
            "path_outside_components",
            f"{path!r} is not under a recognised component folder ({listed}).",
        )
    return GateDecision(True)


def path_in_component(path: str) -> bool:
    return check_workspace_path(path).allowed
