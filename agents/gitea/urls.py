"""Routes of the Gitea integration: the webhook, its pages and its API (included once at the root)."""

from django.urls import URLPattern, path

from agents.gitea import views

urlpatterns: list[URLPattern] = [
    path("hooks/gitea/<str:project>/", views.gitea_webhook, name="gitea-webhook"),
    path("projects/<int:project_id>/settings/gitea/", views.gitea_settings_page, name="gitea-settings-page"),
    path("projects/<int:project_id>/gitea/deliveries/", views.gitea_deliveries_page, name="gitea-deliveries-page"),
    path(
        "projects/<int:project_id>/gitea/deliveries/<int:delivery_id>/reprocess/",
        views.gitea_delivery_reprocess_page,
        name="gitea-delivery-reprocess-page",
    ),
    path("api/projects/<int:project_id>/gitea/", views.gitea_link_api, name="api-gitea-link"),
    path("api/projects/<int:project_id>/gitea/deliveries/", views.gitea_deliveries_api, name="api-gitea-deliveries"),
    path(
        "api/projects/<int:project_id>/gitea/deliveries/<int:delivery_id>/reprocess/",
        views.gitea_delivery_reprocess_api,
        name="api-gitea-delivery-reprocess",
    ),
]
