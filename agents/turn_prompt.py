"""What a turn's first prompt is made of: the card, its neighbours, notes, people's comments, and
the role acting on it, gathered from the database for the pure prompt compiler."""

from __future__ import annotations

from django.db.models import Q

from agents.models import ModelProfile, Role, SeatNote, Team
from agents.prompt_budget import shorten_card_fields
from agents.prompts import CardContext, PromptContext
from agents.prompts import Dialect as DialectContext
from boards.models import Card, CardDependency, Comment

ETHOS = (
    "Work in small, verifiable steps. Say plainly what you did and did not do. Never claim work is "
    "finished that you have not checked."
)
# People's comments shown in a prompt, newest first; older ones stay readable through get_card_context.
MAX_PEOPLE_COMMENTS = 10
MAX_COMMENT_CHARS = 2_000
MIN_CARD_FIELD_CHARS = 800


def people_comments(card: Card) -> list[str]:
    """What people (not agents, not Orket) wrote on the card, newest first."""
    rows = (
        Comment.objects.filter(card_id=card.pk, author__isnull=False)
        .order_by("-id")
        .values_list("author__username", "body")[:MAX_PEOPLE_COMMENTS]
    )
    comments = []
    for username, body in rows:
        text = " ".join(str(body).split())
        if len(text) > MAX_COMMENT_CHARS:
            text = text[:MAX_COMMENT_CHARS] + " [...]"
        comments.append(f"{username}: {text}")
    return comments


def prompt_context(
    *,
    card: Card,
    team: Team,
    seat: str,
    role: Role,
    profile: ModelProfile,
    purpose: str = "",
    diff: str = "",
) -> PromptContext:
    """Everything the prompt compiler needs for `seat` acting as `role` on `card`, for `purpose`
    ("work" or "review"; empty: review exactly when the role can finalize)."""
    purpose = purpose or ("review" if role.can_finalize else "work")
    dialect = profile.dialect
    depends = CardDependency.objects.filter(card_id=card.pk).select_related("depends_on")
    notes = [
        f"{note.from_seat}: {note.body}"
        for note in SeatNote.objects.filter(card=card).filter(Q(to_seat=seat) | Q(to_seat="all")).order_by("id")
    ]
    # Review feedback is what finalizing seats wrote about this card; both the worker and the
    # reviewer see every round of it.
    reviewers = team.seats.filter(roles__can_finalize=True).values_list("name", flat=True)
    feedback = [note.body for note in SeatNote.objects.filter(card=card, from_seat__in=list(reviewers)).order_by("id")]
    governance = card.epic.architecture_governance or card.project.architecture_governance
    # A long card field may not crowd out the rest of the prompt; the whole card stays readable
    # through get_card_context.
    field_chars = max(MIN_CARD_FIELD_CHARS, profile.context_size * 3 // 8)

    def field(text: str) -> str:
        return shorten_card_fields(text, field_chars, hint="call get_card_context for the whole field")

    constrained = profile.supports_json_schema and profile.json_schema_shape != "unsupported"
    return PromptContext(
        role_name=role.name,
        role_intent=role.intent,
        responsibilities=list(role.responsibilities),
        role_constraints=list(role.constraints),
        allowed_tools=list(role.allowed_tools),
        can_finalize=role.can_finalize and purpose == "review",
        purpose=purpose,
        seat=seat,
        dialect=DialectContext(
            model_family=dialect.model_family,
            output_format=dialect.output_format,
            constraints=list(dialect.constraints),
            guardrail=dialect.guardrail,
        )
        if dialect
        else None,
        governance_on=governance,
        ethos=ETHOS,
        card=CardContext(
            id=card.pk,
            title=card.title,
            description=field(card.description),
            status=card.status,
            requirements=field(card.requirements),
            acceptance_criteria=field(card.acceptance_criteria),
            labels=list(card.labels),
            epic_name=card.epic.name,
            seat=card.seat,
        ),
        dependency_outcomes=[
            (d.depends_on_id, d.depends_on.title, d.depends_on.status, d.depends_on.note) for d in depends
        ],
        notes=notes,
        people_comments=people_comments(card),
        latest_verification=card.last_verification or None,
        review_feedback=feedback,
        diff=diff,
        native_tools=profile.supports_native_tools and not constrained,
        constrained=constrained,
    )
