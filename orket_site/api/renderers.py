"""The API's JSON renderer: rows written before lone surrogates were refused on input may still hold
them in JSON fields; they are sent as U+FFFD instead of failing the whole answer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework.renderers import JSONRenderer

from orket_site.untrusted_json import replace_lone_surrogates


def without_lone_surrogates(value: Any) -> Any:
    """A copy of `value` whose strings (keys too) have every lone surrogate replaced by U+FFFD."""
    if isinstance(value, str):
        return replace_lone_surrogates(value)
    if isinstance(value, Mapping):
        return {without_lone_surrogates(key): without_lone_surrogates(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [without_lone_surrogates(item) for item in value]
    return value


class SafeJSONRenderer(JSONRenderer):
    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: Mapping[str, Any] | None = None
    ) -> bytes:
        try:
            return super().render(data, accepted_media_type, renderer_context)
        except UnicodeEncodeError:
            return super().render(without_lone_surrogates(data), accepted_media_type, renderer_context)
