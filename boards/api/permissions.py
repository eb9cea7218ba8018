"""DRF permission for project-scoped endpoints.

A view sets `project_roles` (action or HTTP method to minimum role; "*" as the fallback) and
implements `get_project_id()` for list/create requests; objects answer through `project_id_of(obj)`.
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

from boards.access import require_project_role
from boards.models import ProjectRole


def minimum_role(view: APIView, request: Request) -> str:
    roles: dict[str, str] = getattr(view, "project_roles", {})
    action = getattr(view, "action", None)
    if action and action in roles:
        return roles[action]
    if request.method in roles:
        return roles[request.method]
    if "*" in roles:
        return roles["*"]
    return ProjectRole.VIEWER if request.method in SAFE_METHODS else ProjectRole.MEMBER


class ProjectRolePermission(BasePermission):
    def has_permission(self, request: Request, view: APIView) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        get_project_id = getattr(view, "get_project_id", None)
        project_id = get_project_id() if get_project_id else None
        if project_id is not None:
            require_project_role(request.user, project_id, minimum_role(view, request))
        return True

    def has_object_permission(self, request: Request, view: APIView, obj: Any) -> bool:
        project_id_of = getattr(view, "project_id_of", None)
        project_id = project_id_of(obj) if project_id_of else obj.project_id
        require_project_role(request.user, project_id, minimum_role(view, request))
        return True
