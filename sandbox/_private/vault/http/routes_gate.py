"""HTTP endpoints of the release gate and the reviewer web page (a FastAPI router the vault mounts).

:func:`~sandbox._private.vault.http.app.create_app` mounts it. The router reaches the vault through
``request.app.state.service`` (a ``VaultService``: workspace layout, ledger, policy, tokens) and keeps one
:class:`ReleaseService` in ``request.app.state.gate``, created on first use, which runs the crash recovery
(:meth:`ReleaseService.recover`) before serving anything.

- ``POST /v1/releases`` (analyst): check items, create and submit a request (with the author's ``register``
  fields of the Algoritmeregister draft of its model; a field over the standard's limits is a 422);
- ``GET /v1/releases`` and ``GET /v1/releases/{id}`` (any role): what the caller may see; a reviewer or admin who
  is not the author also gets ``reviewer_findings`` (the exact disclosure findings; see
  :mod:`sandbox._private.vault.gate.findings`), an analyst only the gate's view computed from DP values;
- ``POST /v1/releases/{id}/actions`` (any role, checked per action): submit, approve, reject, return,
  comment, respond, resubmit, withdraw; approve / reject / return need a reviewer token;
- ``POST /v1/releases/{id}/release`` (reviewer or admin): retry the release of an approved request;
- ``GET /v1/gate/flags`` (reviewer or admin): analysts whose requests were blocked, or failed the exact disclosure
  checks, repeatedly on one dataset and day;
- ``GET /v1/verify`` (reviewer or admin): the chain and outbox check.

The reviewer page and the reports of audit items are in :mod:`.routes_review`.
"""

from __future__ import annotations

import threading
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Path, Request
from pydantic import BaseModel, ConfigDict, Field, JsonValue

from sandbox._private.shared.wire import Forbidden
from sandbox._private.vault.gate.requests import ReleaseService
from sandbox._private.vault.gate.workflow import Actor
from sandbox._private.vault.tokens import TokenInfo

from .auth import require

__all__ = ["router", "gate_of"]

router = APIRouter(tags=["release"])
_anyone = require("analyst", "reviewer", "admin")
_analyst = require("analyst")
_checker = require("reviewer", "admin")
_lock = threading.Lock()
AnyCaller = Annotated[TokenInfo, Depends(_anyone)]
AnalystCaller = Annotated[TokenInfo, Depends(_analyst)]
CheckerCaller = Annotated[TokenInfo, Depends(_checker)]
_REQUEST_ID = r"^req_[0-9a-f]{16}$"
_REVIEWER_ACTIONS = ("approve", "reject", "return")


class ReleaseBody(BaseModel):
    """A release request from ``ws.release``."""

    model_config = ConfigDict(extra="forbid")
    items: list[Any] = Field(max_length=1000)
    title: str = Field(max_length=1000)
    purpose: str = Field(max_length=10_000)
    justification: str = Field("", max_length=10_000)
    # the author's Algoritmeregister fields (sb.author_fields_help()); checked against publication standard 1.0
    # by the gate, which refuses a bad one with 422 naming the field and its limit ("register" on the wire; the
    # attribute has another name, since pydantic's BaseModel has one called register)
    register_fields: dict[str, JsonValue] | None = Field(None, alias="register", max_length=64)


class ActionBody(BaseModel):
    """A workflow action with an optional comment."""

    model_config = ConfigDict(extra="forbid")
    action: Literal["submit", "approve", "reject", "return", "comment", "respond", "resubmit", "withdraw"]
    comment: str = Field("", max_length=10_000)


def gate_of(request: Request) -> ReleaseService:
    """Return the app's :class:`ReleaseService`, creating it (and running crash recovery) on first use."""
    return _gate_of_app(request.app)


def recover_on_startup(app: FastAPI) -> None:
    """Create the gate and run its crash recovery before the vault serves anything (called by ``serve``)."""
    _gate_of_app(app)


def _gate_of_app(app: FastAPI) -> ReleaseService:
    state = app.state
    with _lock:
        gate = getattr(state, "gate", None)
        if gate is None:
            vault = state.service
            compute = getattr(state, "compute", None)  # a served vault computes in its worker pool
            complete = compute.complete if compute is not None else vault.complete
            gate = ReleaseService(vault.layout.workspace, vault.ledger, vault.policy, complete=complete)
            gate.recover()
            state.gate = gate
    return gate


def _actor(info: TokenInfo) -> Actor:
    return Actor(info.name, info.role)


@router.post("/v1/releases", summary="Check items at the gate and create (and submit) a release request")
def create_release(request: Request, body: ReleaseBody, caller: AnalystCaller) -> dict[str, Any]:
    return gate_of(request).create(
        body.items,
        author=_actor(caller),
        title=body.title,
        purpose=body.purpose,
        justification=body.justification,
        register=body.register_fields,
    )


@router.get("/v1/releases", summary="Release requests the caller may see")
def list_releases(request: Request, caller: AnyCaller, closed: bool = False) -> list[dict[str, Any]]:
    return gate_of(request).requests(_actor(caller), include_closed=closed)


@router.get("/v1/releases/{request_id}", summary="One release request with its checks, spend and provenance")
def show_release(request: Request, caller: AnyCaller, request_id: str = Path(pattern=_REQUEST_ID)) -> dict[str, Any]:
    return gate_of(request).show(request_id, _actor(caller), detail=True)


@router.post("/v1/releases/{request_id}/actions", summary="Take a review workflow action")
def act_on_release(
    request: Request,
    body: ActionBody,
    caller: AnyCaller,
    request_id: str = Path(pattern=_REQUEST_ID),
) -> dict[str, Any]:
    if body.action in _REVIEWER_ACTIONS and caller.role != "reviewer":
        raise Forbidden(
            f"{body.action} is a reviewer action; token {caller.name!r} has role {caller.role!r}. Use a reviewer token."
        )
    return gate_of(request).act(request_id, body.action, _actor(caller), body.comment)


@router.post("/v1/releases/{request_id}/release", summary="Retry the release of an approved request")
def retry_release(
    request: Request, caller: CheckerCaller, request_id: str = Path(pattern=_REQUEST_ID)
) -> dict[str, Any]:
    gate = gate_of(request)
    gate.release(request_id, _actor(caller))
    return gate.show(request_id, _actor(caller))


@router.get("/v1/gate/flags", summary="Analysts with repeated blocked or exact-fail requests (reviewers and admins)")
def gate_flags(request: Request, _: CheckerCaller) -> list[dict[str, Any]]:
    return gate_of(request).flags()


@router.get("/v1/verify", summary="Recompute the audit log chain and the outbox hashes")
def verify(request: Request, _: CheckerCaller) -> dict[str, Any]:
    report = gate_of(request).verify()
    return {"ok": report.ok, "first_problem": report.first_problem, "lines": report.lines()}
