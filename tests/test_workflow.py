"""The review workflow: the full state x action x role matrix against an explicit expected table, and guards."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sandbox._private.shared.errors import ReleaseError
from sandbox._private.shared.policy import ReviewRules
from sandbox._private.vault.gate.workflow import (
    ACTIONS,
    STATES,
    Actor,
    RequestState,
    Vote,
    apply,
    new_request,
    required_approvals,
    visible_votes,
)

AUTHOR = Actor("alice", "analyst")
ROLES = {
    "analyst-author": AUTHOR,
    "other-analyst": Actor("carol", "analyst"),
    "reviewer": Actor("bob", "reviewer"),
    "reviewer-author": Actor("alice", "reviewer"),  # the author also holds a reviewer account
    "admin": Actor("root", "admin"),
}
A, R, RA, AD = "analyst-author", "reviewer", "reviewer-author", "admin"
WHY = "Read the request: purpose, disclosure findings and privacy spend checked."  # a comment of substance
AUTHORS = {A, RA}  # both are the author by name

# Written out by hand from the issue (not derived from TRANSITIONS): (state, action) -> (roles, next state).
# A model request needing 2 approvals; in partially_reviewed another reviewer (erin) has approved already,
# in reviewed erin approved and frank returned (a split round).
EXPECTED: dict[tuple[str, str], tuple[set[str], str]] = {
    ("draft", "submit"): (AUTHORS, "submitted"),
    ("draft", "comment"): (AUTHORS, "draft"),
    ("draft", "withdraw"): (AUTHORS, "withdrawn"),
    ("submitted", "approve"): ({R}, "partially_reviewed"),
    ("submitted", "reject"): ({R}, "partially_reviewed"),
    ("submitted", "return"): ({R}, "partially_reviewed"),
    ("submitted", "comment"): (AUTHORS | {R}, "submitted"),
    ("submitted", "withdraw"): (AUTHORS, "withdrawn"),
    ("partially_reviewed", "approve"): ({R}, "approved"),
    ("partially_reviewed", "reject"): ({R}, "reviewed"),
    ("partially_reviewed", "return"): ({R}, "reviewed"),
    ("partially_reviewed", "comment"): (AUTHORS | {R}, "partially_reviewed"),
    ("partially_reviewed", "withdraw"): (AUTHORS, "withdrawn"),
    ("reviewed", "reject"): ({R}, "rejected"),
    ("reviewed", "return"): ({R}, "returned"),
    ("reviewed", "comment"): (AUTHORS | {R}, "reviewed"),
    ("reviewed", "withdraw"): (AUTHORS, "withdrawn"),
    ("returned", "respond"): (AUTHORS, "returned"),
    ("returned", "resubmit"): (AUTHORS, "submitted"),
    ("returned", "comment"): (AUTHORS | {R}, "returned"),
    ("returned", "withdraw"): (AUTHORS, "withdrawn"),
    ("approved", "release"): ({R, AD}, "released"),
    ("approved", "comment"): (AUTHORS | {R}, "approved"),
    ("approved", "withdraw"): (AUTHORS, "withdrawn"),
}


def state_in(status: str) -> RequestState:
    base = RequestState("req-1", "alice", required=2, status=status)  # type: ignore[arg-type]
    if status == "partially_reviewed":
        return replace(base, votes=(Vote("erin", "approve", 1),))
    if status == "reviewed":
        return replace(base, votes=(Vote("erin", "approve", 1), Vote("frank", "return", 1, "fix")))
    if status == "returned":
        return replace(base, responded=True)
    return base


@pytest.mark.parametrize("role", list(ROLES))
@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("status", STATES)
def test_full_transition_matrix(status: str, action: str, role: str) -> None:
    state = state_in(status)
    allowed, target = EXPECTED.get((status, action), (set(), ""))
    if role in allowed:
        t = apply(state, action, ROLES[role], comment=WHY)  # type: ignore[arg-type]
        assert t.state.status == target
        assert t.events, "every mutation must produce an audit event"
        assert all(e.payload["request_id"] == "req-1" and e.actor == ROLES[role].name for e in t.events)
        assert any(e.type == "request.state" for e in t.events) == (target != status)
    else:
        with pytest.raises(ReleaseError, match=r"cannot|only|can never"):
            apply(state, action, ROLES[role], comment=WHY)  # type: ignore[arg-type]


def test_expected_table_covers_only_known_states_and_actions() -> None:
    assert {s for s, _ in EXPECTED} <= set(STATES)
    assert {a for _, a in EXPECTED} <= set(ACTIONS)
    assert len(STATES) * len(ACTIONS) * len(ROLES) == 405


def test_author_can_never_approve_own_request() -> None:
    with pytest.raises(ReleaseError, match="alice is the author of request req-1 and can never approve it"):
        apply(state_in("submitted"), "approve", Actor("alice", "reviewer"))


def test_closed_state_names_that_nothing_is_allowed() -> None:
    with pytest.raises(ReleaseError, match=r"it is released, where the allowed actions are nothing"):
        apply(state_in("released"), "comment", AUTHOR, comment="x")


def review_until_decided(state: RequestState, reviewers: list[str]) -> list[str]:
    seen = []
    for name in reviewers:
        state = apply(state, "approve", Actor(name, "reviewer"), comment=f"{name}: {WHY}").state
        seen.append(state.status)
    return seen


def test_models_need_two_approvals_tables_one() -> None:
    rules = ReviewRules()
    assert required_approvals(rules, ["table", "audit", "model"]) == 2
    assert required_approvals(rules, ["table", "table"]) == 1
    model = apply(new_request("m", "alice", 2).state, "submit", AUTHOR).state
    assert review_until_decided(model, ["bob", "erin"]) == ["partially_reviewed", "approved"]
    table = apply(new_request("t", "alice", 1).state, "submit", AUTHOR).state
    assert review_until_decided(table, ["bob"]) == ["approved"]


def test_reviewer_votes_once_per_round() -> None:
    s = apply(state_in("submitted"), "approve", Actor("bob", "reviewer"), comment=WHY).state
    with pytest.raises(ReleaseError, match="bob already voted approve on request req-1 in round 1"):
        apply(s, "reject", Actor("bob", "reviewer"), comment="changed my mind")


def test_votes_hidden_until_all_required_reviews_are_in() -> None:
    bob, erin = Actor("bob", "reviewer"), Actor("erin", "reviewer")
    s = apply(state_in("submitted"), "return", bob, comment="Please explain how the income bands were chosen.").state
    assert [v.reviewer for v in visible_votes(s, bob)] == ["bob"]
    assert visible_votes(s, erin) == ()
    assert visible_votes(s, AUTHOR) == ()
    s = apply(s, "approve", erin, comment=WHY).state
    assert s.status == "reviewed"
    assert [v.decision for v in visible_votes(s, AUTHOR)] == ["return", "approve"]


def test_unanimous_rounds_decide_themselves() -> None:
    bob, erin = Actor("bob", "reviewer"), Actor("erin", "reviewer")
    for decision, final in [("reject", "rejected"), ("return", "returned")]:
        no = "The purpose does not need household-level detail."  # a second reviewer may give the same reason
        s = apply(state_in("submitted"), decision, bob, comment=no).state  # type: ignore[arg-type]
        assert apply(s, decision, erin, comment=no).state.status == final  # type: ignore[arg-type]


def test_returned_request_needs_response_before_resubmission() -> None:
    returned = replace(state_in("returned"), responded=False)
    with pytest.raises(ReleaseError, match=r"respond to the reviewers .* before resubmitting"):
        apply(returned, "resubmit", AUTHOR)
    t = apply(returned, "respond", AUTHOR, comment="merged the small bands")
    assert [e.type for e in t.events] == ["request.response"]
    t = apply(t.state, "resubmit", AUTHOR)
    assert (t.state.status, t.state.round, t.state.current_votes) == ("submitted", 2, ())
    # the old round's votes are kept, the new round starts empty; bob may vote again
    assert apply(t.state, "approve", Actor("bob", "reviewer"), comment=WHY).state.status == "partially_reviewed"


def test_blocked_request_can_never_be_submitted() -> None:
    s = new_request("b", "alice", 1, blocked=True).state
    assert s.public_status == "blocked"
    with pytest.raises(ReleaseError, match=r"blocked by the gate .* never be offered for review"):
        apply(s, "submit", AUTHOR)
    with pytest.raises(ReleaseError, match="blocked by the gate"):
        apply(replace(state_in("returned"), blocked=True), "resubmit", AUTHOR)


@pytest.mark.parametrize("action", ["reject", "return", "comment", "respond"])
def test_actions_that_need_a_comment(action: str) -> None:
    status = "returned" if action == "respond" else "submitted"
    actor = AUTHOR if action == "respond" else Actor("bob", "reviewer")
    with pytest.raises(ReleaseError, match=f"{action} needs a comment"):
        apply(state_in(status), action, actor, comment="  ")  # type: ignore[arg-type]


def test_happy_path_events_in_order() -> None:
    t = new_request("r", "alice", 1)
    events = list(t.events)
    for action, actor in [
        ("submit", AUTHOR),
        ("approve", Actor("bob", "reviewer")),
        ("release", Actor("bob", "reviewer")),
    ]:
        t = apply(t.state, action, actor, comment=WHY if action == "approve" else "")  # type: ignore[arg-type]
        events += t.events
    assert t.state.public_status == "released"
    assert [(e.type, e.payload.get("to")) for e in events] == [
        ("request.create", None),
        ("request.state", "submitted"),
        ("request.vote", None),
        ("request.state", "approved"),
        ("request.state", "released"),
    ]


def test_bad_actor_and_unknown_action() -> None:
    with pytest.raises(ReleaseError, match="unknown role 'boss'"):
        Actor("x", "boss")  # type: ignore[arg-type]
    with pytest.raises(ReleaseError, match="unknown action 'publish'"):
        apply(state_in("approved"), "publish", AUTHOR)  # type: ignore[arg-type]
