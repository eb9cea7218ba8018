"""Site pages and the token endpoint."""

from __future__ import annotations

import time
from typing import Any

from celery.exceptions import TimeoutError as CeleryTimeout
from django.contrib.auth import authenticate
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.views.decorators.http import require_safe
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.permissions import AllowAny, IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView

from boards.work_pages import home_context
from orket_site.api_tokens import api_token_create, api_token_revoke, api_tokens_of
from orket_site.errors import OrketError
from orket_site.forms import SignInLimitedPasswordChangeForm
from orket_site.models import ApiToken
from orket_site.tasks import worker_ping

WORKER_PING_TIMEOUT_SECONDS = 5.0


@login_not_required
@require_safe
def favicon(request: HttpRequest) -> HttpResponse:
    """/favicon.ico, which browsers ask for on their own, answered from the static files."""
    return redirect(static("orket/favicon.ico"))


@require_safe
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html", home_context(request))


class CredentialsSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, trim_whitespace=False)
    name = serializers.CharField(
        max_length=100, required=False, default="", allow_blank=True, help_text="What the token is for."
    )


class IssuedTokenSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="Send as `Authorization: Token <token>`; shown only this once.")
    id = serializers.IntegerField()
    name = serializers.CharField()
    expires_at = serializers.DateTimeField()


class ApiTokenSerializer(serializers.ModelSerializer):
    prefix = serializers.CharField(source="token_key", help_text="The key's first characters, to recognise it.")
    expires_at = serializers.DateTimeField(source="expiry")
    current = serializers.SerializerMethodField(help_text="True for the token this request was made with.")

    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created", "expires_at", "last_used", "current"]

    def get_current(self, token: ApiToken) -> bool:
        return token == self.context["request"].auth


class NotTokenAuthenticated(OrketError):
    code = "not_token_authenticated"


class LoginThrottle(AnonRateThrottle):
    rate = "30/min"


class TokenView(APIView):
    """POST: exchange a username and password for a new API token. DELETE: revoke the token this
    request is made with."""

    @property
    def presents_password(self) -> bool:
        # The schema generator asks before it has set a request.
        return getattr(self.request, "method", None) == "POST"

    def get_authenticators(self) -> list[Any]:
        return [] if self.presents_password else super().get_authenticators()

    def get_permissions(self) -> list[Any]:
        return [AllowAny()] if self.presents_password else super().get_permissions()

    def get_throttles(self) -> list[Any]:
        return [LoginThrottle()] if self.presents_password else super().get_throttles()

    @extend_schema(
        request=CredentialsSerializer,
        responses={200: IssuedTokenSerializer},
        description="Exchange a username and password for a new API token, named for the client that uses it.",
    )
    def post(self, request: Request) -> Response:
        credentials = CredentialsSerializer(data=request.data)
        credentials.is_valid(raise_exception=True)
        data = credentials.validated_data
        # The sign-in limits apply inside authenticate() (orket_site.login_limits).
        user = authenticate(request._request, username=data["username"], password=data["password"])
        if user is None:
            return Response(
                {"detail": "Those credentials are not valid.", "code": "invalid_credentials"},
                status=status.HTTP_400_BAD_REQUEST,
            )
        token, key = api_token_create(user=user, name=data["name"])
        return Response(
            IssuedTokenSerializer({"token": key, "id": token.pk, "name": token.name, "expires_at": token.expiry}).data
        )

    @extend_schema(request=None, responses={204: None}, description="Revoke the token this request is made with.")
    def delete(self, request: Request) -> Response:
        if not isinstance(request.auth, ApiToken):
            raise NotTokenAuthenticated("This request was not made with an API token.")
        api_token_revoke(user=request.user, token_id=request.auth.pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ApiTokenListView(generics.ListAPIView):
    """Your API tokens that have not expired, newest first; the keys themselves are never shown again."""

    serializer_class = ApiTokenSerializer

    def get_queryset(self) -> QuerySet[ApiToken]:
        return api_tokens_of(self.request.user)


class ApiTokenDetailView(APIView):
    @extend_schema(request=None, responses={204: None})
    def delete(self, request: Request, pk: int) -> Response:
        """Revoke one of your API tokens."""
        api_token_revoke(user=request.user, token_id=pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WorkerPingView(APIView):
    """Send a task through the broker and wait for a worker to answer: proof that work gets done."""

    permission_classes = [IsAdminUser]

    @extend_schema(
        request=None,
        responses={
            200: inline_serializer(
                "WorkerPing",
                {
                    "hostname": serializers.CharField(),
                    "pid": serializers.IntegerField(),
                    "round_trip_ms": serializers.FloatField(),
                },
            )
        },
    )
    def post(self, request: Request) -> Response:
        started = time.perf_counter()
        result = worker_ping.delay()
        try:
            # The embedded worker shares this process, where Celery forbids joins unless told they are safe.
            answer = result.get(timeout=WORKER_PING_TIMEOUT_SECONDS, disable_sync_subtasks=False)
        except CeleryTimeout:
            result.forget()
            return Response(
                {
                    "detail": f"No Celery worker answered within {WORKER_PING_TIMEOUT_SECONDS:.0f} s.",
                    "code": "worker_unavailable",
                },
                status=status.HTTP_503_SERVICE_UNAVAILABLE,
            )
        answer["round_trip_ms"] = round((time.perf_counter() - started) * 1000, 1)
        return Response(answer)


class LoginView(auth_views.LoginView):
    """Django's login page; the sign-in limits apply inside authenticate() (orket_site.login_limits)."""

    redirect_authenticated_user = True


class PasswordChangeView(auth_views.PasswordChangeView):
    """Django's password change, with the old password checked through the sign-in limits."""

    form_class = SignInLimitedPasswordChangeForm

    def get_form_kwargs(self) -> dict[str, Any]:
        return {**super().get_form_kwargs(), "request": self.request}
