"""Reads for the Run dialog: which model profiles a run may use (the default marked, unreachable ones
flagged), how many cards may run at a time, and the token budget that follows.

Reachability is checked for every profile at once with a short timeout and kept for a little while,
so opening the dialog again costs nothing; the dialog asks for this after the page has loaded.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache

from agents import engine, selectors
from agents.models import EpicAgentSettings, ModelProfile, Run
from boards import machine
from boards.models import Card, Epic

logger = logging.getLogger(__name__)

REACHABLE_TIMEOUT_SECONDS = 1.5
REACHABLE_CACHE_SECONDS = 30
WORKERS_CACHE_SECONDS = 30
EMBEDDED_MAX_PARALLEL = 8
RUN_MAX_PARALLEL = 16  # Run.max_parallel's validator
DEFAULT_PARALLEL = 2


def _reachable_key(profile: ModelProfile) -> str:
    return f"orket:profile-reachable:{profile.pk}:{profile.updated_at.timestamp()}"


def profiles_reachable(profiles: list[ModelProfile]) -> dict[int, bool]:
    """profile id -> whether its server answers, checked in parallel, cached briefly."""
    known = cache.get_many([_reachable_key(p) for p in profiles])
    result = {p.pk: known[_reachable_key(p)] for p in profiles if _reachable_key(p) in known}
    missing = [p for p in profiles if p.pk not in result]
    if missing:
        with ThreadPoolExecutor(max_workers=min(8, len(missing))) as pool:
            answers = list(pool.map(lambda p: engine.model_server_answers(p, REACHABLE_TIMEOUT_SECONDS), missing))
        for profile, answer in zip(missing, answers, strict=True):
            result[profile.pk] = answer
        cache.set_many({_reachable_key(p): result[p.pk] for p in missing}, REACHABLE_CACHE_SECONDS)
    return result


@dataclass(frozen=True)
class Parallelism:
    maximum: int
    source: str


def _answering_workers() -> int:
    from orket_site.celery import app as celery_app

    try:
        replies = celery_app.control.ping(timeout=0.5) or []
    except Exception:  # any broker failure means no worker is known to answer
        logger.warning("could not ask the Celery workers how many answer", exc_info=True)
        return 0
    return len(replies)


def parallelism() -> Parallelism:
    """How many cards a run may work at a time here, and where that number comes from."""
    configured = getattr(settings, "ORKET_MAX_PARALLEL", None)
    if configured:
        return Parallelism(min(int(configured), RUN_MAX_PARALLEL), "the ORKET_MAX_PARALLEL setting")
    if settings.CELERY_BROKER_URL.startswith("memory://"):
        return Parallelism(EMBEDDED_MAX_PARALLEL, "the embedded default (one process)")
    workers = cache.get("orket:answering-workers")
    if workers is None:
        workers = _answering_workers()
        cache.set("orket:answering-workers", workers, WORKERS_CACHE_SECONDS)
    if workers < 1:
        return Parallelism(1, "no Celery worker answered; runs wait for one")
    return Parallelism(min(workers, RUN_MAX_PARALLEL), f"{workers} Celery worker(s) answering")


def parallel_limit() -> Parallelism:
    """The most cards at a time a run may be started with: the setting or the embedded default; with
    Celery workers, the model's own limit (workers may join after the run is started)."""
    configured = getattr(settings, "ORKET_MAX_PARALLEL", None)
    if configured or settings.CELERY_BROKER_URL.startswith("memory://"):
        return parallelism()
    return Parallelism(RUN_MAX_PARALLEL, "the most a run takes")


def default_choice(epic: Epic) -> tuple[ModelProfile, str]:
    """The profile a run uses when none is chosen, following agents.engine.turn_profile: the epic's
    own profile, else the project default (which names Ollama or the scripted team when unset)."""
    epic_row = EpicAgentSettings.objects.filter(epic=epic, model_profile__isnull=False).select_related("model_profile")
    chosen = epic_row.first()
    if chosen is not None:
        return chosen.model_profile, "the epic's profile"
    return engine.default_profile(epic.project_id), "the project default"


def run_options(epic: Epic, *, check_reachable: bool = True) -> dict[str, Any]:
    profiles = list(ModelProfile.objects.order_by("name"))
    default, default_reason = default_choice(epic)
    reachable = profiles_reachable(profiles) if check_reachable else {}
    team = selectors.team_for(epic)
    seats_with_profiles = [
        {"seat": seat.name, "profile": seat.model_profile.name}
        for seat in team.seats.select_related("model_profile").filter(model_profile__isnull=False)
    ]
    cards = Card.objects.filter(epic=epic).exclude(status__in=[machine.DONE, machine.CANCELED]).count()
    card_budget = Run._meta.get_field("card_token_budget").get_default()
    run_budget = Run._meta.get_field("token_budget").get_default()
    limits = parallelism()
    return {
        "epic": epic.pk,
        "profiles": [
            {
                "id": p.pk,
                "name": p.name,
                "provider": p.provider,
                "model": selectors.model_label(p),
                "is_default": p.pk == default.pk,
                "reachable": reachable.get(p.pk),
            }
            for p in profiles
        ],
        "default_profile": default.name,
        "default_reason": default_reason,
        "seats_with_profiles": seats_with_profiles,
        "parallel": {
            "maximum": limits.maximum,
            "default": min(DEFAULT_PARALLEL, limits.maximum),
            "source": limits.source,
        },
        "cards": cards,
        "card_token_budget": card_budget,
        "run_token_budget": run_budget,
        "estimated_tokens": min(card_budget * cards, run_budget),
    }
