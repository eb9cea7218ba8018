"""Signals other apps may listen to without boards knowing them (boards depends on no other app).

`card_entered_review` is sent after the commit that moved an issue into code_review, with
`card_id` and `project_id`; the sandboxes app starts a verification run on it.
"""

from __future__ import annotations

from django.dispatch import Signal

card_entered_review = Signal()
