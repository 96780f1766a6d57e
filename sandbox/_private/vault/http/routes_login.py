"""Endpoints that let a reviewer into the review page without typing a token (see :mod:`.sessions`).

- ``POST /v1/review/login`` (reviewer token): a one-time login code and the page path to open with it;
- ``POST /v1/review/session`` (a one-time code, or a reviewer token): a browser session token;
- ``GET /review/enter``: the page that exchanges the code from its URL fragment and opens ``/review``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from sandbox._private.shared.wire import Forbidden
from sandbox._private.vault.tokens import TokenInfo

from .auth import authenticate, require
from .sessions import CODE_SECONDS, SESSION_SECONDS, ReviewSessions

__all__ = ["router"]

router = APIRouter(tags=["release"])
_reviewer = require("reviewer")
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_ENTER_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Release review - signing in</title></head>
<body><p id="status">Signing in to the review page...</p><script src="/review/enter.js"></script></body></html>
"""
_ENTER_JS = r"""
"use strict";
const found = location.hash.match(/code=(sbc_[A-Za-z0-9_-]+)/);
history.replaceState(null, "", "/review/enter");
function show(text) { document.getElementById("status").textContent = text; }
if (!found) {
  show("No login code in this link: open the review page with `sandbox review open`.");
} else {
  fetch("/v1/review/session", {method: "POST", headers: {"Authorization": "Bearer " + found[1]}})
    .then((r) => r.json().then((d) => {
      if (!r.ok) throw new Error(d.message || ("HTTP " + r.status));
      sessionStorage.setItem("token", d.token);
      location.replace("/review");
    }))
    .catch((e) => show("Could not sign in: " + e.message));
}
"""


def _sessions(request: Request) -> ReviewSessions:
    sessions: ReviewSessions = request.app.state.sessions
    return sessions


def _code_or_reviewer(request: Request) -> TokenInfo:
    info = _sessions(request).redeem(request.headers.get("authorization"))
    if info is not None:
        return info
    info = authenticate(request)
    if info.role != "reviewer":
        raise Forbidden(f"Token {info.name!r} has role {info.role!r}; a review session needs a reviewer token.")
    return info


@router.post("/v1/review/login", summary="A one-time login code for the review page (reviewer)")
def login_code(request: Request, caller: Annotated[TokenInfo, Depends(_reviewer)]) -> dict[str, Any]:
    code = _sessions(request).code_for(caller)
    path = f"/review/enter#code={code}"
    page = request.app.state.page_url
    return {"code": code, "expires_in": CODE_SECONDS, "path": path, "page_url": page}


@router.post("/v1/review/session", summary="Exchange a one-time login code (or a reviewer token) for a session")
def open_session(request: Request, caller: Annotated[TokenInfo, Depends(_code_or_reviewer)]) -> dict[str, Any]:
    return {"token": _sessions(request).open(caller), "expires_in": SESSION_SECONDS, "reviewer": caller.name}


@router.get("/review/enter", response_class=HTMLResponse, include_in_schema=False)
def enter_page() -> HTMLResponse:
    return HTMLResponse(_ENTER_PAGE, headers=_HEADERS)


@router.get("/review/enter.js", include_in_schema=False)
def enter_script() -> Response:
    return Response(_ENTER_JS, media_type="text/javascript", headers=_HEADERS)
