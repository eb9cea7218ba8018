from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest

from boards.models import Card, CardDependency, CardHistory, Comment, Epic, Membership, Project, Rock


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "member_count", "created_by", "created_at"]
    search_fields = ["name", "slug", "description"]
    list_filter = ["created_at"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["created_at", "updated_at"]
    inlines = [MembershipInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Project]:
        return super().get_queryset(request).annotate(num_members=Count("memberships")).select_related("created_by")

    @admin.display(description="Members", ordering="num_members")
    def member_count(self, project: Project) -> int:
        return project.num_members


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["project", "user", "role", "created_at"]
    list_filter = ["role", "project"]
    search_fields = ["project__name", "project__slug", "user__username", "user__email"]
    autocomplete_fields = ["user", "project"]


class ReadOnlyHistoryInline(admin.TabularInline):
    model = CardHistory
    extra = 0
    can_delete = False
    fields = ["created_at", "event", "actor_user", "actor_seat", "from_status", "to_status", "wait_reason", "reason"]
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class CardHistoryInline(ReadOnlyHistoryInline):
    fk_name = "card"


class DependencyInline(admin.TabularInline):
    model = CardDependency
    fk_name = "card"
    extra = 0
    raw_id_fields = ["depends_on"]


class CommentInline(admin.TabularInline):
    model = Comment
    extra = 0
    raw_id_fields = ["author"]


@admin.register(Rock)
class RockAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "status", "rank", "created_at"]
    list_filter = ["status", "project"]
    search_fields = ["name", "description", "project__name"]
    readonly_fields = ["status", "created_at", "updated_at"]
    raw_id_fields = ["project"]


@admin.register(Epic)
class EpicAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "rock", "status", "team", "architecture_governance", "card_count", "updated_at"]
    list_filter = ["status", "architecture_governance", "project"]
    search_fields = ["name", "description", "team", "project__name"]
    readonly_fields = ["status", "created_at", "updated_at"]
    raw_id_fields = ["project", "rock"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Epic]:
        return super().get_queryset(request).annotate(num_cards=Count("cards")).select_related("project", "rock")

    @admin.display(description="Cards", ordering="num_cards")
    def card_count(self, epic: Epic) -> int:
        return epic.num_cards


@admin.register(Card)
class CardAdmin(admin.ModelAdmin):
    """Status and wait_reason are read-only here: they change only through card_transition."""

    list_display = ["title", "epic", "status", "wait_reason", "priority", "seat", "last_verification", "updated_at"]
    list_filter = ["status", "wait_reason", "last_verification", "project"]
    search_fields = ["title", "description", "seat", "epic__name"]
    readonly_fields = ["status", "wait_reason", "last_worked_by_seat", "created_at", "updated_at"]
    raw_id_fields = ["project", "epic"]
    inlines = [DependencyInline, CommentInline, CardHistoryInline]
    list_select_related = ["epic"]


@admin.register(CardDependency)
class CardDependencyAdmin(admin.ModelAdmin):
    list_display = ["card", "depends_on", "created_at"]
    search_fields = ["card__title", "depends_on__title"]
    raw_id_fields = ["card", "depends_on"]
    list_select_related = ["card", "depends_on"]


@admin.register(Comment)
class CommentAdmin(admin.ModelAdmin):
    list_display = ["card", "author", "author_seat", "created_at"]
    list_filter = ["created_at"]
    search_fields = ["body", "card__title", "author__username", "author_seat"]
    raw_id_fields = ["card", "author"]


@admin.register(CardHistory)
class CardHistoryAdmin(admin.ModelAdmin):
    """The audit history: read-only for everyone."""

    list_display = [
        "created_at",
        "project",
        "event",
        "card",
        "epic",
        "rock",
        "actor_user",
        "actor_seat",
        "from_status",
        "to_status",
    ]
    list_filter = ["event", "to_status", "project"]
    search_fields = ["reason", "actor_seat", "actor_user__username", "card__title", "epic__name", "rock__name"]
    list_select_related = ["project", "card", "epic", "rock", "actor_user"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
