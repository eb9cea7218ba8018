"""Site pages and the token endpoint."""

from __future__ import annotations

import time

from celery.exceptions import TimeoutError as CeleryTimeout
from django.contrib.auth import authenticate
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
        user = authenticate(request._request, **credentials.validated_data)
        if user is None or not user.is_active:
            return Response(
                {"detail": "Those credentials are not valid.", "code": "invalid_credentials"},
                status=status.HTTP_400_BAD_REQUEST,
            )
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
