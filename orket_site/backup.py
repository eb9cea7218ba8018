"""Back up one project (its database rows, its git workspace and its verification fixtures) into a
single .tar.gz file, and restore such a file into another installation.

Rows keep their primary keys, so card branches (`card/<id>`), workspace folders and links stay
valid; a restore therefore refuses to overwrite any row that already exists and names it. Rows that
every installation shares (users, teams, model profiles) are matched by name and created when missing.
"""

from __future__ import annotations

import datetime
import decimal
import hashlib
import io
import json
import shutil
import tarfile
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import serializers
from django.core.management.color import no_style
from django.db import connection, models, transaction
from django.utils import timezone

from agents.models import Dialect, ModelProfile, Team
from agents.services import seed_standard_configuration, team_export, team_import
from agents.workspaces import project_workspace_root
from boards.models import Project

FORMAT = "orket-project-backup"
VERSION = 1
ROWS = "rows.json"
MANIFEST = "manifest.json"
SHARED = "shared.json"
WORKSPACE_PREFIX = "workspace/"
FIXTURE_PREFIX = "fixtures/"

# Every project-owned model, parents before children, with how to find the project's rows.
ProjectRows = Callable[[Project], models.QuerySet[Any]]
OWNED: list[tuple[str, ProjectRows]] = [
    ("boards.Project", lambda p: Project.objects.filter(pk=p.pk)),
    ("boards.Membership", lambda p: _model("boards.Membership").objects.filter(project=p)),
    ("boards.Rock", lambda p: _model("boards.Rock").objects.filter(project=p)),
    ("boards.Epic", lambda p: _model("boards.Epic").objects.filter(project=p)),
    ("boards.Card", lambda p: _model("boards.Card").objects.filter(project=p)),
    ("boards.CardDependency", lambda p: _model("boards.CardDependency").objects.filter(card__project=p)),
    ("boards.Comment", lambda p: _model("boards.Comment").objects.filter(card__project=p)),
    ("boards.CardHistory", lambda p: _model("boards.CardHistory").objects.filter(project=p)),
    ("agents.ProjectAgentSettings", lambda p: _model("agents.ProjectAgentSettings").objects.filter(project=p)),
    ("agents.EpicAgentSettings", lambda p: _model("agents.EpicAgentSettings").objects.filter(epic__project=p)),
    ("agents.EpicPlan", lambda p: _model("agents.EpicPlan").objects.filter(project=p)),
    ("agents.Run", lambda p: _model("agents.Run").objects.filter(project=p)),
    ("agents.Turn", lambda p: _model("agents.Turn").objects.filter(run__project=p)),
    ("agents.TurnStep", lambda p: _model("agents.TurnStep").objects.filter(turn__run__project=p)),
    ("agents.ToolApproval", lambda p: _model("agents.ToolApproval").objects.filter(project=p)),
    ("agents.RunEvent", lambda p: _model("agents.RunEvent").objects.filter(run__project=p)),
    ("agents.SeatNote", lambda p: _model("agents.SeatNote").objects.filter(card__project=p)),
    ("agents.GiteaLink", lambda p: _model("agents.GiteaLink").objects.filter(project=p)),
    ("agents.SourceRepository", lambda p: _model("agents.SourceRepository").objects.filter(project=p)),
    ("agents.WebhookDelivery", lambda p: _model("agents.WebhookDelivery").objects.filter(project=p)),
    ("agents.ForgeEventKey", lambda p: _model("agents.ForgeEventKey").objects.filter(project=p)),
    ("agents.PullRequestLink", lambda p: _model("agents.PullRequestLink").objects.filter(project=p)),
    ("sandboxes.SandboxSettings", lambda p: _model("sandboxes.SandboxSettings").objects.filter(project=p)),
    ("sandboxes.VerificationFixture", lambda p: _model("sandboxes.VerificationFixture").objects.filter(project=p)),
    ("sandboxes.VerificationRun", lambda p: _model("sandboxes.VerificationRun").objects.filter(card__project=p)),
]
# Models deliberately left out, and why.
NOT_BACKED_UP = {
    "sandboxes.Sandbox": "a running sandbox is rebuilt from the workspace, not restored",
    "sandboxes.PortLease": "ports belong to the machine that leased them",
    "agents.Role": "shared configuration, carried inside the team definitions",
    "agents.Dialect": "shared configuration, seeded on every installation",
    "agents.ModelProfile": "shared configuration, matched by name (created when missing)",
    "agents.Team": "shared configuration, matched by name (created when missing)",
    "agents.Seat": "part of a team definition",
    "sandboxes.LogStream": "live output kept for watching; each call's record keeps its output",
    "sandboxes.LogLine": "live output kept for watching; each call's record keeps its output",
}


class BackupError(Exception):
    """The backup file or the target installation does not allow the operation; says why."""


@dataclass
class RestoreReport:
    project_id: int
    rows: dict[str, int] = field(default_factory=dict)
    created_users: list[str] = field(default_factory=list)
    workspace_files: int = 0
    fixture_files: int = 0


def _model(label: str) -> type[models.Model]:
    return apps.get_model(label)


def _data_dir() -> Path:
    return Path(settings.DATA_DIR)


def workspace_dir(project_id: int) -> Path:
    return project_workspace_root(_data_dir(), project_id)


def _fixture_files(fixtures: Iterable[Any]) -> list[Path]:
    return [Path(fixture.storage_path) for fixture in fixtures if Path(fixture.storage_path).is_file()]


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(timezone.now().timestamp())
    info.mode = 0o600
    archive.addfile(info, io.BytesIO(data))


def _shared_rows(project: Project) -> dict[str, Any]:
    user_model = get_user_model()
    owned = {label: rows(project) for label, rows in OWNED}
    user_ids: set[int] = set()
    for label, queryset in owned.items():
        for model_field in _model(label)._meta.fields:
            if model_field.is_relation and model_field.related_model is user_model:
                user_ids.update(v for v in queryset.values_list(model_field.attname, flat=True) if v is not None)
    runs = owned["agents.Run"]
    profile_ids = set(runs.values_list("model_profile_id", flat=True))
    profile_ids.update(
        v for v in owned["agents.ProjectAgentSettings"].values_list("default_model_profile_id", flat=True) if v
    )
    profile_ids.update(v for v in owned["agents.Turn"].values_list("model_profile_id", flat=True) if v)
    profile_ids.update(v for v in owned["agents.EpicAgentSettings"].values_list("model_profile_id", flat=True) if v)
    profile_ids.update(v for v in owned["agents.EpicPlan"].values_list("model_profile_id", flat=True) if v)
    return {
        "users": [
            {"id": user.pk, "username": user.get_username(), "email": user.email, "is_active": user.is_active}
            for user in user_model.objects.filter(pk__in=user_ids).order_by("pk")
        ],
        "teams": [
            {"id": team.pk, "definition": team_export(team=team)}
            for team in Team.objects.filter(pk__in=set(runs.values_list("team_id", flat=True))).order_by("pk")
        ],
        "model_profiles": json.loads(
            serializers.serialize("json", ModelProfile.objects.filter(pk__in=profile_ids).order_by("pk"))
        ),
        "dialects": {d.pk: d.name for d in Dialect.objects.all()},
    }


def project_backup(*, project: Project, output: Path) -> dict[str, Any]:
    """Write the project's backup to `output`; returns the manifest."""
    counts: dict[str, int] = {}
    rows: list[Any] = []
    with transaction.atomic():  # one consistent view of every table (REPEATABLE READ on PostgreSQL)
        for label, select in OWNED:
            queryset = select(project).order_by("pk")
            serialized = serializers.serialize("python", queryset)
            counts[label] = len(serialized)
            rows.extend(serialized)
        shared = _shared_rows(project)
        fixtures = _fixture_files(_model("sandboxes.VerificationFixture").objects.filter(project=project))
    rows_bytes = json.dumps(rows, separators=(",", ":"), default=_exact).encode()
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "created_at": timezone.now().isoformat(),
        "project": {"id": project.pk, "slug": project.slug, "name": project.name},
        "rows": counts,
        "rows_sha256": hashlib.sha256(rows_bytes).hexdigest(),
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    with tarfile.open(partial, "w:gz") as archive:
        _add_bytes(archive, MANIFEST, json.dumps(manifest, indent=2).encode())
        _add_bytes(archive, ROWS, rows_bytes)
        _add_bytes(archive, SHARED, json.dumps(shared).encode())
        workspace = workspace_dir(project.pk)
        if workspace.is_dir():
            archive.add(workspace, arcname=WORKSPACE_PREFIX.rstrip("/"), recursive=True)
        for path in fixtures:
            archive.add(path, arcname=f"{FIXTURE_PREFIX}{path.name}")
    partial.replace(output)
    return manifest


def _exact(value: Any) -> Any:
    """JSON for what the python serializer leaves as objects; datetimes keep their microseconds."""
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    raise TypeError(f"cannot back up a value of type {type(value).__name__}")


def _read_json(archive: tarfile.TarFile, name: str) -> Any:
    member = archive.extractfile(name)
    if member is None:
        raise BackupError(f"The backup has no {name}.")
    return json.loads(member.read())


def _check_manifest(archive: tarfile.TarFile) -> dict[str, Any]:
    try:
        manifest = _read_json(archive, MANIFEST)
    except KeyError as error:
        raise BackupError("This is not an Orket project backup: it has no manifest.json.") from error
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise BackupError(f"Unsupported backup format {manifest.get('format')!r} version {manifest.get('version')!r}.")
    return manifest


def _map_users(shared: dict[str, Any], report: RestoreReport) -> dict[int, int]:
    user_model = get_user_model()
    mapping = {}
    for user in shared["users"]:
        existing = user_model.objects.filter(username=user["username"]).first()
        if existing is None:
            existing = user_model(username=user["username"], email=user["email"], is_active=user["is_active"])
            existing.set_unusable_password()
            existing.save()
            report.created_users.append(user["username"])
        mapping[user["id"]] = existing.pk
    return mapping


def _map_profiles(shared: dict[str, Any]) -> dict[int, int]:
    dialect_names = {int(pk): name for pk, name in shared["dialects"].items()}
    mapping = {}
    for row in shared["model_profiles"]:
        fields = dict(row["fields"])
        existing = ModelProfile.objects.filter(name=fields["name"]).first()
        if existing is None:
            dialect_name = dialect_names.get(fields.pop("dialect"))
            dialect = Dialect.objects.filter(name=dialect_name).first()
            if dialect is None:
                raise BackupError(f"Model profile {fields['name']!r} needs dialect {dialect_name!r}, missing here.")
            existing = ModelProfile.objects.create(dialect=dialect, **fields)
        mapping[row["pk"]] = existing.pk
    return mapping


def _map_teams(shared: dict[str, Any]) -> dict[int, int]:
    mapping = {}
    for team in shared["teams"]:
        existing = Team.objects.filter(name=team["definition"]["name"]).first()
        mapping[team["id"]] = (existing or team_import(document=team["definition"])).pk
    return mapping


def _refuse_conflicts(objects: list[Any]) -> None:
    by_model: dict[type[models.Model], list[Any]] = {}
    for wrapped in objects:
        by_model.setdefault(type(wrapped.object), []).append(wrapped.object.pk)
    for model, pks in by_model.items():
        taken = sorted(model.objects.filter(pk__in=pks).values_list("pk", flat=True))
        if taken:
            shown = ", ".join(str(pk) for pk in taken[:10])
            raise BackupError(
                f"This installation already has {model._meta.verbose_name_plural} with the ids {shown}: restore "
                "into an installation that does not hold this project (or delete it first)."
            )
    slugs = [w.object.slug for w in objects if isinstance(w.object, Project)]
    if Project.objects.filter(slug__in=slugs).exists():
        raise BackupError(f"A project with the slug {slugs[0]!r} already exists here.")


def _remap(objects: list[Any], remaps: dict[type[models.Model], dict[int, int]]) -> None:
    left_out = {_model(label) for label in NOT_BACKED_UP}
    for wrapped in objects:
        instance = wrapped.object
        for model_field in instance._meta.fields:
            if not model_field.is_relation:
                continue
            if model_field.related_model in left_out and model_field.related_model not in remaps:
                setattr(instance, model_field.attname, None)  # e.g. a verification run's sandbox
                continue
            mapping = remaps.get(model_field.related_model)
            value = getattr(instance, model_field.attname)
            if mapping is not None and value is not None:
                if value not in mapping:
                    raise BackupError(f"{instance._meta.label} {instance.pk} points at a missing {model_field.name}.")
                setattr(instance, model_field.attname, mapping[value])


def _workspace_members(archive: tarfile.TarFile) -> list[tarfile.TarInfo]:
    prefix = WORKSPACE_PREFIX.rstrip("/")
    return [m for m in archive.getmembers() if m.name == prefix or m.name.startswith(WORKSPACE_PREFIX)]


def _restore_files(archive: tarfile.TarFile, project_id: int, fixtures: dict[str, Path], report: RestoreReport) -> None:
    """Unpack the workspace (the "data" filter refuses absolute paths, `..` and links out) and fixtures."""
    workspace = workspace_dir(project_id)
    staging = workspace.parent / f".restore-{project_id}"
    shutil.rmtree(staging, ignore_errors=True)
    members = _workspace_members(archive)
    try:
        archive.extractall(staging, members=members, filter="data")
        if (staging / WORKSPACE_PREFIX.rstrip("/")).is_dir():
            (staging / WORKSPACE_PREFIX.rstrip("/")).replace(workspace)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    report.workspace_files = sum(member.isfile() for member in members)
    for name, target in fixtures.items():
        source = archive.extractfile(f"{FIXTURE_PREFIX}{name}")
        if source is None:
            raise BackupError(f"The backup lacks the fixture file {name}.")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read())
        report.fixture_files += 1


def _fixture_targets(objects: list[Any], project_id: int) -> dict[str, Path]:
    """New storage paths for the restored fixtures, under this installation's data folder."""
    from sandboxes.verification import fixtures_root

    targets = {}
    for wrapped in objects:
        instance = wrapped.object
        if instance._meta.label == "sandboxes.VerificationFixture":
            name = Path(instance.storage_path).name
            target = fixtures_root() / str(project_id) / name
            instance.storage_path = str(target)
            targets[name] = target
    return targets


def _reset_sequences(labels: Iterable[str]) -> None:
    statements = connection.ops.sequence_reset_sql(no_style(), [_model(label) for label in labels])
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def project_restore(*, source: Path) -> RestoreReport:
    """Restore a backup written by `project_backup`; all rows or none."""
    try:
        archive = tarfile.open(source, "r:gz")  # noqa: SIM115 - closed by the with block below
    except (OSError, tarfile.TarError) as error:
        raise BackupError(f"Cannot read {source}: {error}") from error
    with archive:
        manifest = _check_manifest(archive)
        try:
            rows_bytes = archive.extractfile(ROWS).read()  # type: ignore[union-attr]
        except KeyError as error:
            raise BackupError("The backup has no rows.json; the file is damaged.") from error
        if hashlib.sha256(rows_bytes).hexdigest() != manifest.get("rows_sha256"):
            raise BackupError("The backup's rows do not match the checksum in its manifest; the file is damaged.")
        shared = _read_json(archive, SHARED)
        project_id = int(manifest["project"]["id"])
        report = RestoreReport(project_id=project_id)
        with transaction.atomic():
            seed_standard_configuration()  # dialects, roles and the standard team, as every installation has
            objects = list(serializers.deserialize("python", json.loads(rows_bytes), ignorenonexistent=True))
            _refuse_conflicts(objects)
            if workspace_dir(project_id).exists():
                raise BackupError(f"The workspace folder {workspace_dir(project_id)} already exists here.")
            remaps = {
                get_user_model(): _map_users(shared, report),
                ModelProfile: _map_profiles(shared),
                Team: _map_teams(shared),
            }
            _remap(objects, remaps)
            fixture_targets = _fixture_targets(objects, project_id)
            for wrapped in objects:
                wrapped.save()
                label = wrapped.object._meta.label
                report.rows[label] = report.rows.get(label, 0) + 1
            _reset_sequences(report.rows)
            try:
                _restore_files(archive, project_id, fixture_targets, report)
            except BaseException:
                shutil.rmtree(workspace_dir(project_id), ignore_errors=True)
                for target in fixture_targets.values():
                    target.unlink(missing_ok=True)
                raise
        return report
