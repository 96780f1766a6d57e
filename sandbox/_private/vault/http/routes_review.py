"""The reviewer web page and the fairness reports of release requests (a FastAPI router the vault mounts).

- ``GET /review`` (anyone): the page's shell, ``?lang=nl|en`` (default: the browser's language, else Dutch);
  ``GET /review/app.js`` and ``/review/app.css``: its script and styles. All three carry a strict CSP.
- ``GET /review/fragments/requests`` and ``/review/fragments/requests/{id}`` (reviewer or admin): the list and one
  request as HTML, rendered from the reviewer's view of ``GET /v1/releases[/{id}]``;
- ``GET /v1/releases/{id}/items/{item_id}/report?lang=nl|en`` (reviewer or admin): the fairness report of an audit
  item, rendered from its stored DP values; HTML, or with ``Accept: application/json`` a JSON object with the page
  in ``html`` (what :meth:`sandbox.Reviewer.report` reads);
- ``POST /v1/releases/{id}/items/{item_id}/report-link?lang=`` (reviewer or admin): a one-use link
  ``/review/reports/{code}`` (60 s) that opens that report in a browser tab, which cannot send the token.

An analyst token gets 403 on every reviewer route, as on ``GET /v1/verify``. Routes parse and authenticate, then
read the gate's view of the request; nothing here touches rows.
"""

from __future__ import annotations

import threading
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from sandbox._private.shared.errors import NotFoundError, SandboxError
from sandbox._private.vault.gate.requests import STANDARD_REASON
from sandbox._private.vault.gate.workflow import Actor
from sandbox._private.vault.tokens import TokenInfo

from .auth import require, service_of
from .review_i18n import Labels, choose_lang
from .review_page import ASSETS, PAGE_HEADERS, review_page
from .review_report import ReportTickets, Ticket, audit_item, render_report, report_csp, report_filename
from .review_tables import details_of
from .review_view import RequestPage, list_fragment, request_fragment
from .routes_gate import gate_of

__all__ = ["router"]

router = APIRouter(tags=["review"])
_checker = require("reviewer", "admin")
CheckerCaller = Annotated[TokenInfo, Depends(_checker)]
_REQUEST_ID = r"^req_[0-9a-f]{16}$"
_ITEM_ID = r"^r_[A-Za-z0-9_-]{1,64}$"
_TICKET = r"^sbr_[A-Za-z0-9_-]{32}$"
Lang = Annotated[Literal["nl", "en"] | None, Query(description="Page language: nl or en")]
ReportLang = Annotated[Literal["nl", "en"], Query(description="Report language: nl or en")]
_lock = threading.Lock()


def _actor(info: TokenInfo) -> Actor:
    return Actor(info.name, info.role)


def _lang(request: Request, lang: str | None) -> str:
    return choose_lang(lang, request.headers.get("accept-language"))


def _html(text: str, headers: dict[str, str] | None = None) -> HTMLResponse:
    return HTMLResponse(text, headers=headers or PAGE_HEADERS)


def _tickets(request: Request) -> ReportTickets:
    state = request.app.state
    with _lock:
        if getattr(state, "review_tickets", None) is None:
            state.review_tickets = ReportTickets()
    tickets: ReportTickets = state.review_tickets
    return tickets


def _schemas(request: Request, view: dict[str, Any]) -> list[str]:
    ledger = service_of(request).ledger
    out = []
    for key in sorted({(str(d["ledger"]["dataset"]), int(d["ledger"]["version"])) for d in details_of(view).values()}):
        try:
            out.append(ledger.dataset(*key).schema_json)
        except NotFoundError:
            continue
    return out


def _budgets(request: Request, view: dict[str, Any]) -> list[dict[str, Any]]:
    service = service_of(request)
    out = []
    for name in sorted({str(d["ledger"]["dataset"]) for d in details_of(view).values()}):
        try:
            record = service.ledger.dataset(name)
            status = service.ledger.budget(record, analyst=str(view.get("author")))
        except SandboxError:
            continue
        out.append(status.to_dict())
    return out


def _independence(request: Request, view: dict[str, Any], caller: TokenInfo) -> dict[str, Any] | None:
    """Whether the approving reviewers (and the viewer) are independent of the author, where the vault can tell."""
    told = view.get("independence") or view.get("review_independence")
    if isinstance(told, dict):
        return told
    check = getattr(service_of(request).tokens, "independence", None)  # token provenance of the vault's service
    if not callable(check):
        return None
    reviewers = [str(v["reviewer"]) for v in view.get("votes") or [] if v.get("decision") == "approve"]
    if caller.role == "reviewer":
        reviewers.append(caller.name)
    result = check(str(view.get("author")), list(dict.fromkeys(reviewers)))
    return dict(result.to_dict()) if hasattr(result, "to_dict") else None


@router.get("/review", response_class=HTMLResponse, include_in_schema=False)
def page(request: Request, lang: Lang = None) -> HTMLResponse:
    return _html(review_page(_lang(request, lang)))


def _asset(name: str) -> Response:
    text, media = ASSETS[name]
    return Response(text, media_type=media, headers=PAGE_HEADERS)


@router.get("/review/app.js", include_in_schema=False)
def script() -> Response:
    return _asset("app.js")


@router.get("/review/app.css", include_in_schema=False)
def stylesheet() -> Response:
    return _asset("app.css")


@router.get("/review/icon.svg", include_in_schema=False)
def icon() -> Response:
    return _asset("icon.svg")


@router.get("/review/fragments/requests", response_class=HTMLResponse, summary="The review page's list of requests")
def list_part(request: Request, caller: CheckerCaller, lang: Lang = None, closed: bool = False) -> HTMLResponse:
    gate = gate_of(request)
    rows = gate.requests(_actor(caller), include_closed=closed)
    return _html(list_fragment(rows, _lang(request, lang), flags=gate.flags()))


@router.get(
    "/review/fragments/requests/{request_id}", response_class=HTMLResponse, summary="One request, laid out to decide"
)
def request_part(
    request: Request, caller: CheckerCaller, request_id: str = Path(pattern=_REQUEST_ID), lang: Lang = None
) -> HTMLResponse:
    view = gate_of(request).show(request_id, _actor(caller), detail=True)
    code = _lang(request, lang)
    base = f"/v1/releases/{request_id}/items"
    audits = [str(i["id"]) for i in view["gate"]["items"] if i.get("kind") == "audit"]
    page_data = RequestPage(
        view=view,
        labels=Labels.from_schemas(_schemas(request, view), code),
        report_paths={a: f"{base}/{a}/report" for a in audits},
        budgets=_budgets(request, view),
        independence=_independence(request, view, caller),
        standard_reason=STANDARD_REASON,
    )
    return _html(request_fragment(page_data))


def _report(request: Request, viewer: Actor, request_id: str, item_id: str, lang: str) -> str:
    gate = gate_of(request)
    view = gate.show(request_id, viewer, detail=True)
    return render_report(view, item_id, lang, schemas=_schemas(request, view), policy_sha256=gate.policy.sha256)


@router.get(
    "/v1/releases/{request_id}/items/{item_id}/report",
    summary="The fairness report of an audit item of a request (reviewer), rendered from its DP values",
    response_class=HTMLResponse,
)
def report(
    request: Request,
    caller: CheckerCaller,
    lang: ReportLang = "en",
    request_id: str = Path(pattern=_REQUEST_ID),
    item_id: str = Path(pattern=_ITEM_ID),
) -> Response:
    page_text = _report(request, _actor(caller), request_id, item_id, lang)
    if "application/json" in request.headers.get("accept", "") and "text/html" not in request.headers.get("accept", ""):
        name = report_filename(request_id, item_id, lang)
        body = {"request_id": request_id, "item_id": item_id, "lang": lang, "filename": name, "html": page_text}
        return JSONResponse(body, headers={"Cache-Control": "no-store"})
    return _html(page_text, {**PAGE_HEADERS, "Content-Security-Policy": report_csp(page_text)})


@router.post(
    "/v1/releases/{request_id}/items/{item_id}/report-link",
    summary="A one-use link (60 s) that opens the report of an audit item in a browser tab (reviewer)",
)
def report_link(
    request: Request,
    caller: CheckerCaller,
    lang: ReportLang = "en",
    request_id: str = Path(pattern=_REQUEST_ID),
    item_id: str = Path(pattern=_ITEM_ID),
) -> dict[str, Any]:
    audit_item(gate_of(request).show(request_id, _actor(caller), detail=True), item_id)  # 404 before a link exists
    tickets = _tickets(request)
    code = tickets.issue(Ticket(caller.name, caller.role, request_id, item_id, lang))
    return {"url": f"/review/reports/{code}", "expires_in": tickets.seconds}


@router.get("/review/reports/{code}", response_class=HTMLResponse, include_in_schema=False)
def report_by_link(request: Request, code: Annotated[str, Path(pattern=_TICKET)]) -> HTMLResponse:
    ticket = _tickets(request).redeem(code)
    viewer = Actor(ticket.reviewer, ticket.role)  # type: ignore[arg-type]
    page_text = _report(request, viewer, ticket.request_id, ticket.item_id, ticket.lang)
    return _html(page_text, {**PAGE_HEADERS, "Content-Security-Policy": report_csp(page_text)})
