"""The pure state machine: tables and the order of the rules, without a database."""

from __future__ import annotations

import pytest

from boards import machine
from boards.machine import ActorFacts, Refusal, TransitionRequest, check_transition

FINALIZER = ActorFacts(seat="guard", roles=frozenset({"integrity_guard"}), can_finalize=True)
CODER = ActorFacts(seat="coder", roles=frozenset({"coder"}))
MAINTAINER = ActorFacts(roles=frozenset({"maintainer"}), is_maintainer=True, can_finalize=True)
PM = ActorFacts(seat="pm", roles=frozenset({"Project Manager"}))


def refusal(**kwargs: object) -> str:
    request = TransitionRequest(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(Refusal) as caught:
        check_transition(request)
    assert caught.value.message
    return caught.value.code


def test_tables_match_the_design() -> None:
    issue = machine.TRANSITIONS["issue"]
    assert issue["ready"] == {"in_progress", "canceled"}
    assert issue["in_progress"] == {"blocked", "waiting_for_developer", "ready_for_testing", "code_review", "canceled"}
    assert issue["blocked"] == issue["waiting_for_developer"] == {"in_progress", "ready", "canceled"}
    assert issue["ready_for_testing"] == {"code_review", "in_progress", "canceled"}
    assert issue["code_review"] == {"done", "in_progress", "ready_for_testing"}
    assert issue["done"] == issue["canceled"] == frozenset()
    assert machine.TRANSITIONS["epic"]["in_progress"] == {"code_review", "done", "canceled"}
    assert machine.TRANSITIONS["epic"]["code_review"] == {"done", "in_progress"}
    assert machine.TRANSITIONS["rock"]["in_progress"] == {"done", "canceled"}
    assert machine.statuses_for("rock") == ("ready", "in_progress", "done", "canceled")


def test_edge_is_checked_first() -> None:
    # Even a request that breaks every later rule answers with the missing edge.
    code = refusal(item_type="issue", from_status="ready", to_status="done", actor=CODER, last_verification="failed")
    assert code == "illegal_transition"
    assert refusal(item_type="issue", from_status="ready", to_status="nonsense", actor=MAINTAINER) == (
        "illegal_transition"
    )
    assert refusal(item_type="epic", from_status="ready", to_status="blocked", actor=MAINTAINER) == (
        "illegal_transition"
    )


@pytest.mark.parametrize("target", ["blocked", "waiting_for_developer"])
def test_wait_reason_rules(target: str) -> None:
    base = {"item_type": "issue", "from_status": "in_progress", "to_status": target, "actor": CODER}
    assert refusal(**base) == "wait_reason_required"
    assert refusal(**base, wait_reason="boredom") == "wait_reason_invalid"
    for reason in machine.WAIT_REASONS:
        check_transition(TransitionRequest(**base, wait_reason=reason))  # type: ignore[arg-type]
    assert (
        refusal(item_type="issue", from_status="blocked", to_status="in_progress", actor=CODER, wait_reason="input")
        == "wait_reason_unexpected"
    )


def test_done_rules_in_order() -> None:
    base = {"item_type": "issue", "from_status": "code_review", "to_status": "done"}
    assert refusal(**base, actor=CODER, last_verification="failed") == "role_forbidden"
    assert refusal(**base, actor=PM) == "role_forbidden"
    assert refusal(**base, actor=FINALIZER, last_worked_by_seat="guard", last_verification="failed") == "same_seat"
    assert refusal(**base, actor=FINALIZER, last_worked_by_seat="coder", last_verification="failed") == (
        "verification_failed"
    )
    check_transition(
        TransitionRequest(**base, actor=FINALIZER, last_worked_by_seat="coder", last_verification="passed")
    )  # type: ignore[arg-type]
    check_transition(TransitionRequest(**base, actor=MAINTAINER, last_worked_by_seat="coder"))  # type: ignore[arg-type]


def test_cancel_needs_maintainer_or_project_manager() -> None:
    base = {"item_type": "issue", "from_status": "in_progress", "to_status": "canceled"}
    assert refusal(**base, actor=CODER) == "cancel_forbidden"
    assert refusal(**base, actor=FINALIZER) == "cancel_forbidden"
    check_transition(TransitionRequest(**base, actor=MAINTAINER))  # type: ignore[arg-type]
    check_transition(TransitionRequest(**base, actor=PM))  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["epic", "rock"])
def test_parents_finish_only_after_children(kind: str) -> None:
    base = {"item_type": kind, "from_status": "in_progress", "to_status": "done", "actor": CODER}
    assert refusal(**base, unfinished_children=2) == "children_unfinished"
    check_transition(TransitionRequest(**base, unfinished_children=0))  # type: ignore[arg-type]


def test_replay_follows_edges_only() -> None:
    steps = [("ready", "in_progress"), ("in_progress", "code_review"), ("code_review", "done")]
    assert machine.replay("ready", "issue", steps) == "done"
    with pytest.raises(Refusal):
        machine.replay("ready", "issue", [("ready", "done")])
    with pytest.raises(Refusal):
        machine.replay("ready", "issue", [("in_progress", "blocked")])
