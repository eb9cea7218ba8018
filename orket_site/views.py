"""Site pages and the token endpoint."""

from __future__ import annotations

import time
from typing import Any

from celery.exceptions import TimeoutError as CeleryTimeout
from django.contrib.auth import authenticate
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.authtoken.models import Token
from rest_framework.permissions import AllowAny, IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView

from boards.access import visible_projects
from orket_site.login_limits import login_failed, login_limit, login_succeeded
from orket_site.tasks import worker_ping

WORKER_PING_TIMEOUT_SECONDS = 5.0


@require_safe
def home(request: HttpRequest) -> HttpResponse:
    projects = visible_projects(request.user).order_by("name")
    return render(request, "home.html", {"projects": projects})


class CredentialsSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, trim_whitespace=False)


class LoginThrottle(AnonRateThrottle):
    rate = "30/min"


class ObtainTokenView(APIView):
    """Exchange a username and password for an API token."""

    authentication_classes: list[type] = []
    permission_classes = [AllowAny]
    throttle_classes = [LoginThrottle]

    @extend_schema(
        request=CredentialsSerializer,
        responses={200: inline_serializer("TokenResponse", {"token": serializers.CharField()})},
    )
    def post(self, request: Request) -> Response:
        credentials = CredentialsSerializer(data=request.data)
        credentials.is_valid(raise_exception=True)
        username = credentials.validated_data["username"]
        limit = login_limit(request._request, username)
        if limit.locked:
            return Response(
                {"detail": limit.message, "code": "too_many_attempts"},
                status=status.HTTP_429_TOO_MANY_REQUESTS,
                headers={"Retry-After": str(limit.retry_after_seconds)},
            )
        user = authenticate(request._request, **credentials.validated_data)
        if user is None or not user.is_active:
            login_failed(request._request, username)
            return Response(
                {"detail": "Those credentials are not valid.", "code": "invalid_credentials"},
                status=status.HTTP_400_BAD_REQUEST,
            )
        login_succeeded(request._request, username)
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})


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
    """Django's login page, refusing further attempts once an account or address failed too often."""

    redirect_authenticated_user = True

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        username = str(request.POST.get("username", ""))[:150]
        limit = login_limit(request, username)
        if limit.locked:
            context = self.get_context_data(form=self.form_class(request), login_locked=limit.message)
            response = self.render_to_response(context, status=429)
            response["Retry-After"] = str(limit.retry_after_seconds)
            return response
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form: AuthenticationForm) -> HttpResponse:
        login_failed(self.request, str(self.request.POST.get("username", ""))[:150])
        return super().form_invalid(form)

    def form_valid(self, form: AuthenticationForm) -> HttpResponse:
        login_succeeded(self.request, form.get_user().get_username())
        return super().form_valid(form)
