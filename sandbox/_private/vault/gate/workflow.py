"""The review workflow of a release request: a table of allowed transitions with an owner per action.

``TRANSITIONS[(state, action)]`` names who may take the action in that state and where it leads; every
other pair is refused. Owners are:

- ``author``: the analyst who created the request (matched by name, whatever their role);
- ``reviewer``: an account with the reviewer role that is *not* the author, so an author can never vote on,
  reject or release their own request;
- ``admin``: an operator account; it may only retry the release of an approved request (for example after a
  crash between approval and release).

Votes (approve / reject / return) are collected in ``submitted`` and ``partially_reviewed``; each reviewer
votes once per round, and a vote stays hidden from other reviewers until the number of votes required by
the policy (``review.approvals_table``, or ``review.approvals_model`` when the request holds a model) is in.
Then a unanimous round decides itself (all approve -> ``approved``, all reject -> ``rejected``, all return ->
``returned``); a split round stays ``reviewed`` until a reviewer rejects or returns it. A returned request
needs the author's response before it can be resubmitted, which starts a new round. A request the gate
blocked (a failing item) can never be submitted.

**The comment rule.** Approve, reject and return each need a comment of substance (:mod:`.comment_rule`): not
empty, at least 20 letters or digits, at least 3 different words beyond stock approvals and filler ("ok", "lgtm",
"prima", "akkoord", "looks good to me" are refused), and an approval must not repeat word for word a comment already
on the request or the reviewer's own approval of another request. A plain comment or an author's response needs
only to be non-empty. The rule is applied here, so every client of the vault meets it.

Every function is pure: it takes an immutable :class:`RequestState` and returns a :class:`Transition` with
the new state and the audit events the caller must append to the audit log.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from sandbox._private.shared.errors import ReleaseError
from sandbox._private.shared.policy import ReviewRules

from .comment_rule import DECISIONS, check_decision_comment

__all__ = [
    "State",
    "Action",
    "Role",
    "Owner",
    "STATES",
    "ACTIONS",
    "ROLES",
    "TRANSITIONS",
    "VOTE",
    "Actor",
    "Vote",
    "Comment",
    "AuditEvent",
    "RequestState",
    "Transition",
    "apply",
    "new_request",
    "required_approvals",
    "visible_votes",
]

State = Literal[
    "draft", "submitted", "partially_reviewed", "reviewed", "approved", "rejected", "returned", "released",
    "withdrawn",
]  # fmt: skip
Action = Literal["submit", "approve", "reject", "return", "comment", "respond", "resubmit", "release", "withdraw"]
Role = Literal["analyst", "reviewer", "admin"]
Owner = Literal["author", "reviewer", "admin"]
Decision = Literal["approve", "reject", "return"]

STATES: tuple[State, ...] = (
    "draft", "submitted", "partially_reviewed", "reviewed", "approved", "rejected", "returned", "released",
    "withdrawn",
)  # fmt: skip
ACTIONS: tuple[Action, ...] = (
    "submit", "approve", "reject", "return", "comment", "respond", "resubmit", "release", "withdraw",
)  # fmt: skip
ROLES: tuple[Role, ...] = ("analyst", "reviewer", "admin")
VOTE = "<vote>"  # target of a vote: decided by the votes so far (see module docstring)

_A: frozenset[Owner] = frozenset({"author"})
_R: frozenset[Owner] = frozenset({"reviewer"})
_AR: frozenset[Owner] = frozenset({"author", "reviewer"})
_RA: frozenset[Owner] = frozenset({"reviewer", "admin"})

#: (state, action) -> (who may act, next state). ``None`` keeps the state; ``VOTE`` counts the votes.
TRANSITIONS: dict[tuple[State, Action], tuple[frozenset[Owner], str | None]] = {
    ("draft", "submit"): (_A, "submitted"),
    ("draft", "comment"): (_A, None),
    ("draft", "withdraw"): (_A, "withdrawn"),
    **{(s, a): (_R, VOTE) for s in ("submitted", "partially_reviewed") for a in ("approve", "reject", "return")},
    ("submitted", "comment"): (_AR, None),
    ("submitted", "withdraw"): (_A, "withdrawn"),
    ("partially_reviewed", "comment"): (_AR, None),
    ("partially_reviewed", "withdraw"): (_A, "withdrawn"),
    ("reviewed", "reject"): (_R, "rejected"),
    ("reviewed", "return"): (_R, "returned"),
    ("reviewed", "comment"): (_AR, None),
    ("reviewed", "withdraw"): (_A, "withdrawn"),
    ("returned", "respond"): (_A, None),
    ("returned", "resubmit"): (_A, "submitted"),
    ("returned", "comment"): (_AR, None),
    ("returned", "withdraw"): (_A, "withdrawn"),
    ("approved", "release"): (_RA, "released"),
    ("approved", "comment"): (_AR, None),
    ("approved", "withdraw"): (_A, "withdrawn"),
}

_NEEDS_TEXT: frozenset[str] = frozenset({"comment", "respond"})  # decisions: see the comment rule
_UNANIMOUS: dict[str, State] = {"approve": "approved", "reject": "rejected", "return": "returned"}
_VOTING: frozenset[str] = frozenset({"submitted", "partially_reviewed"})


@dataclass(frozen=True)
class Actor:
    """Who acts: an account name and its role."""

    name: str
    role: Role

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ReleaseError(f"an actor needs a non-empty name, got {self.name!r}.")
        if self.role not in ROLES:
            raise ReleaseError(f"unknown role {self.role!r}; roles are {', '.join(ROLES)}.")


@dataclass(frozen=True)
class Vote:
    """One reviewer's vote in one review round."""

    reviewer: str
    decision: Decision
    round: int
    comment: str = ""


@dataclass(frozen=True)
class Comment:
    """A comment (or, with ``response=True``, the author's response to a return)."""

    author: str
    text: str
    round: int
    response: bool = False


@dataclass(frozen=True)
class AuditEvent:
    """An event the caller appends to the audit log (``type`` and a JSON-ready ``payload``)."""

    type: str
    actor: str
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RequestState:
    """The reviewable state of one release request (an immutable value; transitions return a new one).

    Parameters
    ----------
    request_id : str
        The request's id.
    author : str
        The analyst who created it.
    required : int
        Distinct approvals needed (see :func:`required_approvals`).
    status : State
        Where the request is in the workflow.
    blocked : bool
        The gate found a failing item; the request can never be submitted.
    round : int
        Review round, starting at 1 and raised by every resubmission.
    votes, comments : tuple
        Every vote and comment of every round, oldest first.
    responded : bool
        Whether the author has responded since the last return.
    """

    request_id: str
    author: str
    required: int
    status: State = "draft"
    blocked: bool = False
    round: int = 1
    votes: tuple[Vote, ...] = ()
    comments: tuple[Comment, ...] = ()
    responded: bool = False

    def __post_init__(self) -> None:
        if self.status not in STATES:
            raise ReleaseError(f"unknown state {self.status!r}; states are {', '.join(STATES)}.")
        if self.required < 1:
            raise ReleaseError(f"required approvals must be at least 1, got {self.required}.")

    @property
    def current_votes(self) -> tuple[Vote, ...]:
        """The votes of the current round."""
        return tuple(v for v in self.votes if v.round == self.round)

    @property
    def public_status(self) -> str:
        """What the analyst sees: ``blocked``, ``pending_review`` or the state itself."""
        if self.blocked and self.status in ("draft", "returned"):
            return "blocked"
        if self.status in ("submitted", "partially_reviewed", "reviewed"):
            return "pending_review"
        return self.status


@dataclass(frozen=True)
class Transition:
    """The result of an action: the new state and the audit events to append."""

    state: RequestState
    events: tuple[AuditEvent, ...]


def required_approvals(rules: ReviewRules, kinds: Iterable[str]) -> int:
    """Approvals a request needs: ``approvals_model`` if any item is a model, else ``approvals_table``."""
    return rules.approvals_model if "model" in set(kinds) else rules.approvals_table


def new_request(request_id: str, author: str, required: int, *, blocked: bool = False) -> Transition:
    """Create a request in ``draft``, with its creation event."""
    state = RequestState(request_id, author, required, blocked=blocked)
    event = AuditEvent("request.create", author, {"request_id": request_id, "required": required, "blocked": blocked})
    return Transition(state, (event,))


def visible_votes(state: RequestState, viewer: Actor) -> tuple[Vote, ...]:
    """Return the votes ``viewer`` may see: all once every required review is in, else their own."""
    if state.status not in _VOTING:
        return state.current_votes
    return tuple(v for v in state.current_votes if v.reviewer == viewer.name)


def _owners_match(owners: frozenset[Owner], state: RequestState, actor: Actor) -> bool:
    is_author = actor.name == state.author
    return (
        ("author" in owners and is_author)
        or ("reviewer" in owners and actor.role == "reviewer" and not is_author)
        or ("admin" in owners and actor.role == "admin")
    )


def _refuse_owner(owners: frozenset[Owner], state: RequestState, action: str, actor: Actor) -> ReleaseError:
    if "reviewer" in owners and actor.name == state.author:
        return ReleaseError(
            f"{actor.name} is the author of request {state.request_id} and can never {action} it; "
            "another reviewer must do it."
        )
    who = " or ".join(
        {"author": f"the author ({state.author})", "reviewer": "a reviewer other than the author", "admin": "an admin"}[
            o
        ]
        for o in sorted(owners)
    )
    return ReleaseError(
        f"only {who} may {action} request {state.request_id} while it is {state.status}; {actor.name} is {actor.role}."
    )


def _check_allowed(state: RequestState, action: Action, actor: Actor) -> str | None:
    rule = TRANSITIONS.get((state.status, action))
    if rule is None:
        allowed = sorted(a for (s, a) in TRANSITIONS if s == state.status)
        hint = ", ".join(allowed) if allowed else "nothing (the request is closed)"
        raise ReleaseError(
            f"cannot {action} request {state.request_id}: it is {state.status}, where the allowed actions are {hint}."
        )
    owners, target = rule
    if not _owners_match(owners, state, actor):
        raise _refuse_owner(owners, state, action, actor)
    return target


def _check_guards(
    state: RequestState, action: Action, actor: Actor, text: str, own_approvals: Iterable[tuple[str, str]]
) -> None:
    if action in _NEEDS_TEXT and not text.strip():
        raise ReleaseError(f"{action} needs a comment explaining it; pass comment='...'.")
    if action in ("submit", "resubmit") and state.blocked:
        raise ReleaseError(
            f"request {state.request_id} is blocked by the gate (an item failed its checks) and can never be "
            "offered for review; fix the items and create a new request."
        )
    if action == "resubmit" and not state.responded:
        raise ReleaseError(
            f"request {state.request_id} was returned; respond to the reviewers (action 'respond' with a "
            "comment) before resubmitting."
        )
    if state.status in _VOTING and action in _UNANIMOUS:
        mine = [v for v in state.current_votes if v.reviewer == actor.name]
        if mine:
            raise ReleaseError(
                f"{actor.name} already voted {mine[0].decision} on request {state.request_id} in round "
                f"{state.round}; a reviewer votes once per round."
            )
    if action in DECISIONS:  # last: a refusal of the action itself says more than one of its comment
        earlier = [(v.reviewer, v.comment) for v in state.votes] + [(c.author, c.text) for c in state.comments]
        check_decision_comment(action, text, on_request=earlier, own_approvals=own_approvals)


def _after_vote(state: RequestState) -> State:
    votes = state.current_votes
    if len(votes) < state.required:
        return "partially_reviewed"
    decisions = {v.decision for v in votes}
    return _UNANIMOUS[decisions.pop()] if len(decisions) == 1 else "reviewed"


def _event(state: RequestState, actor: Actor, kind: str, **payload: Any) -> AuditEvent:
    return AuditEvent(f"request.{kind}", actor.name, {"request_id": state.request_id, **payload})


def apply(
    state: RequestState,
    action: Action,
    actor: Actor,
    *,
    comment: str = "",
    own_approvals: Iterable[tuple[str, str]] = (),
) -> Transition:
    """Take ``action`` on ``state`` as ``actor``.

    Parameters
    ----------
    state : RequestState
        The request as it is now.
    action : Action
        One of :data:`ACTIONS`.
    actor : Actor
        Who acts.
    comment : str
        Text of a comment or response (required), or of a vote: approve, reject and return need a comment of
        substance (the comment rule in the module docstring).
    own_approvals : iterable of (request id, comment)
        The acting reviewer's approval comments on other requests (for the comment rule; the caller looks them up).

    Returns
    -------
    Transition
        The new state and the audit events to append (one per vote, comment and state change).

    Raises
    ------
    ReleaseError
        If the action is not allowed in this state, the actor does not own it, or a guard fails; the message
        says why and what to do instead.
    """
    if action not in ACTIONS:
        raise ReleaseError(f"unknown action {action!r}; actions are {', '.join(ACTIONS)}.")
    target = _check_allowed(state, action, actor)
    _check_guards(state, action, actor, comment, own_approvals)
    events: list[AuditEvent] = []
    new = state
    if target == VOTE:
        decision: Decision = action  # type: ignore[assignment]
        new = replace(new, votes=(*new.votes, Vote(actor.name, decision, new.round, comment)))
        events.append(_event(state, actor, "vote", decision=decision, round=new.round, comment=comment))
        target = _after_vote(new)
    elif comment.strip():
        is_response = action == "respond"
        new = replace(new, comments=(*new.comments, Comment(actor.name, comment, new.round, is_response)))
        events.append(_event(state, actor, "response" if is_response else "comment", text=comment, round=new.round))
        new = replace(new, responded=new.responded or is_response)
    if target is not None and target != state.status:
        if action == "resubmit":
            new = replace(new, round=new.round + 1, responded=False)
        if target == "returned":
            new = replace(new, responded=False)
        new = replace(new, status=target)  # type: ignore[arg-type]
        events.append(_event(state, actor, "state", action=action, **{"from": state.status, "to": target}))
    return Transition(new, tuple(events))
