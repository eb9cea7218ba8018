from django.contrib import admin
from django.http import HttpRequest

from agents.models import (
    Dialect,
    EpicAgentSettings,
    ModelProfile,
    ProjectAgentSettings,
    Role,
    Run,
    RunEvent,
    Seat,
    SeatNote,
    Team,
    Turn,
    TurnStep,
)


class SeatInline(admin.TabularInline):
    model = Seat
    extra = 0
    filter_horizontal = ["roles"]


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "description", "updated_at"]
    search_fields = ["name", "description"]
    inlines = [SeatInline]


@admin.register(Role)
class RoleAdmin(admin.ModelAdmin):
    list_display = ["name", "can_finalize", "is_project_manager", "intent"]
    list_filter = ["can_finalize", "is_project_manager"]
    search_fields = ["name", "intent"]


@admin.register(Seat)
class SeatAdmin(admin.ModelAdmin):
    list_display = ["name", "team", "model_profile", "order"]
    list_filter = ["team"]
    search_fields = ["name", "team__name"]
    filter_horizontal = ["roles"]
    list_select_related = ["team", "model_profile"]


@admin.register(Dialect)
class DialectAdmin(admin.ModelAdmin):
    list_display = ["name", "model_family", "output_format"]
    list_filter = ["output_format", "model_family"]
    search_fields = ["name", "model_family", "guardrail"]


@admin.register(ModelProfile)
class ModelProfileAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "provider",
        "model",
        "base_url",
        "context_size",
        "max_steps",
        "supports_native_tools",
        "supports_json_schema",
        "json_schema_shape",
        "api_key_env",
    ]
    readonly_fields = ["json_schema_shape", "chars_per_token"]
    list_filter = ["provider", "supports_native_tools", "supports_json_schema"]
    search_fields = ["name", "model", "base_url"]
    list_select_related = ["dialect"]


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records of what happened: readable, never edited by hand."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "epic", "status", "model_profile", "tokens_in", "tokens_out", "created_at"]
    list_filter = ["status", "project"]
    search_fields = ["epic__name", "status_reason"]
    list_select_related = ["project", "epic", "model_profile"]
    readonly_fields = [f.name for f in Run._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


class TurnStepInline(admin.TabularInline):
    model = TurnStep
    extra = 0
    fields = ["number", "outcome", "request_tokens", "tokens_in", "tokens_out", "model_ms", "engine_ms", "calls"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Turn)
class TurnAdmin(ReadOnlyAdmin):
    inlines = [TurnStepInline]
    list_display = ["id", "run", "card", "number", "seat", "role", "purpose", "status", "attempts", "duration_ms"]
    list_filter = ["status", "role", "provider"]
    search_fields = ["seat", "role", "outcome", "raw_answer"]
    list_select_related = ["run", "card"]


@admin.register(RunEvent)
class RunEventAdmin(ReadOnlyAdmin):
    list_display = ["run", "seq", "kind", "card_id", "created_at"]
    list_filter = ["kind"]
    search_fields = ["kind", "run__id"]


@admin.register(SeatNote)
class SeatNoteAdmin(ReadOnlyAdmin):
    list_display = ["card", "from_seat", "to_seat", "created_at"]
    search_fields = ["body", "from_seat", "to_seat"]


@admin.register(ProjectAgentSettings)
class ProjectAgentSettingsAdmin(admin.ModelAdmin):
    list_display = ["project", "default_model_profile"]
    list_select_related = ["project", "default_model_profile"]


from agents.gitea import admin as gitea_admin  # noqa: E402, F401  (registers the Gitea admin)


@admin.register(EpicAgentSettings)
class EpicAgentSettingsAdmin(admin.ModelAdmin):
    list_display = ["epic", "model_profile"]
    list_select_related = ["epic", "model_profile"]
    search_fields = ["epic__name"]
