from django.contrib import admin

from agents.models import Dialect, ModelProfile, Role, Seat, Team


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
    list_display = ["name", "provider", "model", "base_url", "context_size", "supports_native_tools", "api_key_env"]
    list_filter = ["provider", "supports_native_tools", "supports_json_schema"]
    search_fields = ["name", "model", "base_url"]
    list_select_related = ["dialect"]
