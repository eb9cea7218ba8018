"""Serializers for rocks, epics and cards. They validate shapes and sizes; the services decide."""

from __future__ import annotations

import json
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from boards import machine, markdown
from boards.access import visible_projects
from boards.models import TEXT_MAX, TITLE_MAX, Card, CardHistory, Comment, Epic, Project, Rock
from boards.services import parse_priority
from boards.transfer import LABEL_MAX, MAX_LABELS, SCENARIOS_MAX_BYTES, SEAT_PATTERN

JSON_MAX_BYTES = 20_000


@extend_schema_field(OpenApiTypes.NUMBER)
class PriorityField(serializers.Field):
    """A float; the words high (3.0), medium (2.0) and low (1.0) are accepted on input."""

    default_error_messages = {"invalid": "{message}"}

    def to_internal_value(self, data: Any) -> float:
        try:
            return parse_priority(data)
        except ValueError as error:
            self.fail("invalid", message=str(error))
            raise  # unreachable: fail() raises

    def to_representation(self, value: float) -> float:
        return float(value)


def validate_labels(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise serializers.ValidationError("Labels are a list of strings.")
    if len(value) > MAX_LABELS:
        raise serializers.ValidationError(f"At most {MAX_LABELS} labels.")
    labels: list[str] = []
    for label in value:
        if not isinstance(label, str) or not label.strip():
            raise serializers.ValidationError("Every label is a non-empty string.")
        if len(label) > LABEL_MAX:
            raise serializers.ValidationError(f"A label has at most {LABEL_MAX} characters.")
        labels.append(label.strip())
    return labels


def validate_seat(value: str) -> str:
    if value and not SEAT_PATTERN.match(value):
        raise serializers.ValidationError(
            "A seat name uses lower-case letters, digits, '_' or '-', starting with a letter."
        )
    return value


def _json_size(value: Any, limit: int, what: str) -> Any:
    if len(json.dumps(value)) > limit:
        raise serializers.ValidationError(f"The {what} are larger than {limit} bytes.")
    return value


class RockSerializer(serializers.ModelSerializer):
    type = serializers.SerializerMethodField()

    class Meta:
        model = Rock
        fields = ["id", "type", "project", "name", "description", "status", "rank", "created_at", "updated_at"]
        read_only_fields = fields

    def get_type(self, rock: Rock) -> str:
        return machine.ROCK


class RockCreateSerializer(serializers.Serializer):
    project = serializers.PrimaryKeyRelatedField(queryset=Project.objects.all())
    name = serializers.CharField(max_length=TITLE_MAX)
    description = serializers.CharField(max_length=TEXT_MAX, required=False, allow_blank=True)
    rank = serializers.FloatField(required=False)


class RockUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=TITLE_MAX, required=False)
    description = serializers.CharField(max_length=TEXT_MAX, required=False, allow_blank=True)
    rank = serializers.FloatField(required=False)


class EpicSerializer(serializers.ModelSerializer):
    type = serializers.SerializerMethodField()
    card_count = serializers.IntegerField(read_only=True, default=None)
    done_count = serializers.IntegerField(read_only=True, default=None)

    class Meta:
        model = Epic
        fields = [
            "id",
            "type",
            "project",
            "rock",
            "name",
            "description",
            "status",
            "team",
            "environment",
            "architecture_governance",
            "rank",
            "card_count",
            "done_count",
            "archived_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_type(self, epic: Epic) -> str:
        return machine.EPIC


@extend_schema_field(OpenApiTypes.INT)
class VisibleRockField(serializers.PrimaryKeyRelatedField):
    """A rock the requesting user may see (context["request"]); a rock of a project they may not see
    reads exactly like a missing one."""

    def get_queryset(self) -> Any:
        request = self.context.get("request")
        if request is None:
            return Rock.objects.none()
        return Rock.objects.filter(project__in=visible_projects(request.user))


class EpicUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=TITLE_MAX, required=False)
    description = serializers.CharField(max_length=TEXT_MAX, required=False, allow_blank=True)
    team = serializers.CharField(max_length=100, required=False, allow_blank=True)
    environment = serializers.CharField(max_length=100, required=False, allow_blank=True)
    architecture_governance = serializers.BooleanField(required=False)
    rank = serializers.FloatField(required=False)
    rock = VisibleRockField(required=False, allow_null=True)


class ArchiveSerializer(serializers.Serializer):
    archived = serializers.BooleanField(help_text="true archives (hides from lists); false restores.")


class EpicCreateSerializer(EpicUpdateSerializer):
    project = serializers.PrimaryKeyRelatedField(queryset=Project.objects.all())
    name = serializers.CharField(max_length=TITLE_MAX)


class CardSerializer(serializers.ModelSerializer):
    type = serializers.SerializerMethodField()
    priority = PriorityField()
    depends_on = serializers.SerializerMethodField()
    pull_request = serializers.SerializerMethodField()
    description_html = serializers.SerializerMethodField()

    class Meta:
        model = Card
        fields = [
            "id",
            "type",
            "project",
            "epic",
            "title",
            "description",
            "description_html",
            "status",
            "priority",
            "wait_reason",
            "seat",
            "requirements",
            "acceptance_criteria",
            "labels",
            "verification_fixture",
            "verification_scenarios",
            "last_verification",
            "last_worked_by_seat",
            "metrics",
            "note",
            "rank",
            "depends_on",
            "pull_request",
            "review_cycle",
            "review_reasons",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_type(self, card: Card) -> str:
        return machine.ISSUE

    def get_pull_request(self, card: Card) -> dict[str, Any] | None:
        """{number, url, state} of the card's pull request in the linked forge, or null."""
        return card.pull_request or None

    def get_depends_on(self, card: Card) -> list[int]:
        return sorted(link.depends_on_id for link in card.dependency_links.all())

    def get_description_html(self, card: Card) -> str:
        """The description rendered from Markdown to HTML that holds only safe markup (boards.markdown)."""
        return markdown.render(card.description)


class CardUpdateSerializer(serializers.Serializer):
    """Editable card fields. `status` and `wait_reason` change only through the transition endpoint."""

    title = serializers.CharField(max_length=TITLE_MAX, required=False)
    description = serializers.CharField(max_length=TEXT_MAX, required=False, allow_blank=True)
    priority = PriorityField(required=False)
    seat = serializers.CharField(max_length=80, required=False, allow_blank=True, validators=[validate_seat])
    requirements = serializers.CharField(max_length=TEXT_MAX, required=False, allow_blank=True)
    acceptance_criteria = serializers.CharField(max_length=TEXT_MAX, required=False, allow_blank=True)
    labels = serializers.JSONField(required=False, validators=[validate_labels])
    verification_fixture = serializers.CharField(max_length=500, required=False, allow_blank=True)
    verification_scenarios = serializers.JSONField(required=False)
    metrics = serializers.JSONField(required=False)
    note = serializers.CharField(max_length=TEXT_MAX, required=False, allow_blank=True)
    rank = serializers.FloatField(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        for name in ("status", "wait_reason"):
            if name in self.initial_data:
                raise serializers.ValidationError(
                    {
                        name: "The status cannot be changed by editing the card; "
                        "POST {status, wait_reason, reason} to /api/cards/{id}/transition/ instead."
                    },
                    code="status_readonly",
                )
        if "labels" in attrs:
            attrs["labels"] = validate_labels(attrs["labels"])
        return attrs

    def validate_verification_scenarios(self, value: Any) -> Any:
        if not isinstance(value, list):
            raise serializers.ValidationError("Verification scenarios are a list.")
        return _json_size(value, SCENARIOS_MAX_BYTES, "scenarios")

    def validate_metrics(self, value: Any) -> Any:
        if not isinstance(value, dict):
            raise serializers.ValidationError("Metrics are an object such as {score, grade, shippability_threshold}.")
        for name in ("score", "shippability_threshold"):
            number = value.get(name)
            if number is not None and (isinstance(number, bool) or not isinstance(number, int | float)):
                raise serializers.ValidationError(f"metrics.{name} is a number or null.")
        if not isinstance(value.get("grade", ""), str):
            raise serializers.ValidationError("metrics.grade is a string.")
        return _json_size(value, JSON_MAX_BYTES, "metrics")


class CardCreateSerializer(CardUpdateSerializer):
    epic = serializers.PrimaryKeyRelatedField(queryset=Epic.objects.all())
    title = serializers.CharField(max_length=TITLE_MAX)


class TransitionSerializer(serializers.Serializer):
    status = serializers.CharField(max_length=40)
    wait_reason = serializers.CharField(max_length=40, required=False, allow_blank=True, default="")
    reason = serializers.CharField(max_length=5_000, required=False, allow_blank=True, default="")


class ReorderSerializer(serializers.Serializer):
    """Where to place a card in its column: right before `before`, or right after `after`."""

    after = serializers.IntegerField(min_value=1, required=False, allow_null=True, default=None)
    before = serializers.IntegerField(min_value=1, required=False, allow_null=True, default=None)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("after") is None and attrs.get("before") is None:
            raise serializers.ValidationError("Give the card to place it after or before.", code="required")
        return attrs


class DependencyAddSerializer(serializers.Serializer):
    depends_on = serializers.IntegerField(min_value=1)


class CommentSerializer(serializers.ModelSerializer):
    author = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Comment
        fields = ["id", "card", "author", "author_seat", "body", "created_at"]
        read_only_fields = fields


class CommentCreateSerializer(serializers.Serializer):
    body = serializers.CharField(max_length=TEXT_MAX)


class HistorySerializer(serializers.ModelSerializer):
    actor = serializers.SerializerMethodField()

    class Meta:
        model = CardHistory
        fields = [
            "id",
            "event",
            "card",
            "epic",
            "rock",
            "actor",
            "actor_seat",
            "actor_roles",
            "from_status",
            "to_status",
            "wait_reason",
            "reason",
            "changes",
            "created_at",
        ]
        read_only_fields = fields

    def get_actor(self, row: CardHistory) -> str | None:
        return row.actor_user.get_username() if row.actor_user is not None else None


class ProjectSettingsSerializer(serializers.ModelSerializer):
    class Meta:
        model = Project
        fields = ["architecture_governance", "complexity_threshold", "wip_limits", "require_verification"]
        extra_kwargs = {
            "architecture_governance": {"required": False},
            "require_verification": {"required": False},
            "complexity_threshold": {"required": False},
            "wip_limits": {"required": False},
        }
