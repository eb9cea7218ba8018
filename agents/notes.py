"""Seat notes: what one seat (or Orket, or a reviewer in Gitea) tells another about a card, shown in
the later turns' prompts. `seat_note_add` is the one writer of SeatNote rows; the agents' add_note
tool, the turn loop's refusal note and the Gitea review loop all go through it."""

from __future__ import annotations

from agents.models import SeatNote


def seat_note_add(*, card_id: int, from_seat: str, to_seat: str, body: str) -> SeatNote:
    return SeatNote.objects.create(card_id=card_id, from_seat=from_seat, to_seat=to_seat, body=body)
