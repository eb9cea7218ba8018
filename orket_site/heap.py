"""Keep the garbage collector out of the way of live frames.

A Django process holds well over 100,000 long-lived objects after start-up (modules, functions,
models, URL patterns). CPython's full collection walks all of them, which on these machines paused a
streaming server for 100 to 400 ms at a time. Freezing what exists once start-up is done moves it to
the permanent generation, so later full collections only walk what the process created since.
"""

from __future__ import annotations

import gc


def settle_heap() -> None:
    """Call once, after Django and the URLconf are loaded and before serving."""
    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 - loads every view module now rather than on the first request
    gc.collect()
    gc.freeze()
