from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from orket_site import health, metrics, views

api_patterns = [
    path("auth/token/", views.TokenView.as_view(), name="api-token"),
    path("auth/tokens/", views.ApiTokenListView.as_view(), name="api-token-list"),
    path("auth/tokens/<int:pk>/", views.ApiTokenDetailView.as_view(), name="api-token-detail"),
    path("system/worker-ping/", views.WorkerPingView.as_view(), name="api-worker-ping"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # Swagger UI from static files, its start script served apart (?script): no inline script or CDN.
    path(
        "docs/",
        SpectacularSwaggerSplitView.as_view(url_name="api-schema", template_name="orket/api_docs.html"),
        name="api-docs",
    ),
    path("", include("boards.api.urls")),
    path("", include("agents.api.urls")),
    path("", include("sandboxes.api.verification_urls")),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("accounts/login/", views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/password/", views.PasswordChangeView.as_view(), name="password_change"),
    path("accounts/password/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("api/", include(api_patterns)),
    path("", include("agents.gitea.urls")),  # /hooks/gitea/<project>/ (signed, no login), Gitea pages and API
    path("", include("agents.pages_urls")),
    path("", include("boards.pages_urls")),
    path("", include("boards.settings_urls")),
    path("", include("sandboxes.urls")),  # /api/sandboxes/ and /projects/<id>/sandboxes/
    path(settings.ORKET_ADMIN_URL, admin.site.urls),
]
