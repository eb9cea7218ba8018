"""The API's JSON parser: the body size cap (even without a Content-Length) and Orket's decoder of
untrusted JSON (no lone surrogates, NaN, infinite numbers, giant integers or deep nesting)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from orket_site import untrusted_json
from orket_site.api.errors import PayloadTooLarge


class LimitedJSONParser(JSONParser):
    def parse(
        self, stream: IO[bytes], media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> Any:
        limit = settings.ORKET_MAX_BODY_BYTES
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise PayloadTooLarge(f"Request body is larger than {limit} bytes.")
        if not raw.strip():
            raise ParseError("The request body is empty; send a JSON object.", code="parse_error")
        try:
            return untrusted_json.loads(raw)
        except untrusted_json.MalformedJSON as error:
            code = "parse_error" if error.code == "syntax" else error.code
            raise ParseError(error.message, code=code) from error
