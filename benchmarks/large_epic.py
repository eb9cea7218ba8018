"""The large epic the board benchmarks import: an epic document in the import format, its cards in
chains of ten (card n depends on card n-1 within each block of ten)."""

from __future__ import annotations

from typing import Any

SEATS = ("coder", "architect", "reviewer")
PRIORITIES = ("high", "medium", "low")


def large_epic_document(count: int, summary: str = "Card {number}") -> dict[str, Any]:
    """An epic of `count` cards; `summary` is formatted with each card's number (from 1)."""
    cards = [_card(index, summary) for index in range(count)]
    return {"name": f"Bench epic {count}", "team": "standard", "cards": cards}


def _card(index: int, summary: str) -> dict[str, Any]:
    number = index + 1
    card: dict[str, Any] = {
        "id": str(number),
        "summary": summary.format(number=number),
        "seat": SEATS[index % 3],
        "priority": PRIORITIES[index % 3],
        "description": "Benchmark card. " * 5,
        "labels": ["bench", f"group-{index % 7}"],
    }
    if index % 10:
        card["depends_on"] = [str(index)]
    return card
