from django.urls import path

from sandboxes.api.verification_views import CardFixturesView, CardVerificationsView, VerificationDetailView

urlpatterns = [
    path("cards/<int:card_id>/verification-fixtures/", CardFixturesView.as_view(), name="card-verification-fixtures"),
    path("cards/<int:card_id>/verifications/", CardVerificationsView.as_view(), name="card-verifications"),
    path("verifications/<int:pk>/", VerificationDetailView.as_view(), name="verification-detail"),
]
