from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest

from boards.models import Membership, Project


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
