"""How the vault turns every failure into a JSON error: ``{"error": type, "message": text naming the fix}``.

Domain errors keep their type name (so the client can re-raise the matching :class:`SandboxError` subclass) and
get a 4xx status; a busy vault answers 503 (or 429 for an analyst over their job limit) with ``Retry-After``.
Anything unexpected becomes a 500 with an opaque incident id; its traceback goes to the server log only. A pure
ASGI middleware refuses request bodies above the policy's ``limits.max_request_bytes`` (413).
"""

from __future__ import annotations

import json
import logging
import math
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from sandbox._private.shared.errors import IntegrityError, InternalError, SandboxError, VaultBusyError
from sandbox._private.shared.wire import error_body, status_of

__all__ = ["install_error_handlers", "BodyLimitMiddleware"]

log = logging.getLogger("sandbox.vault")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def _incident(exc: BaseException) -> JSONResponse:
    incident = secrets.token_hex(8)
    log.error("incident %s: %s", incident, type(exc).__name__, exc_info=exc)
    return JSONResponse(
        error_body("InternalError", f"Internal error (incident {incident}); the vault log has the details."),
        status_code=500,
    )


def _explain_validation(exc: RequestValidationError) -> tuple[int, str]:
    parts = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            return 400, (
                "The request body is not valid JSON; send a JSON object with 'Content-Type: application/json'."
            )
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        msg = err.get("msg", "invalid")
        if err.get("type") == "extra_forbidden":
            msg = "unknown field; remove it or check its spelling"
        elif loc.endswith("epsilon") or loc.endswith("delta"):
            msg += "; epsilon must be a finite number > 0 (e.g. 0.1), delta a finite number in [0, 1)"
        got = err.get("input")
        got_text = json.dumps(got, default=str)[:80] if not isinstance(got, dict) else "an object"
        parts.append(f"{loc}: {msg} (got {got_text})")
    return 422, "Invalid request: " + "; ".join(parts) + "."


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that give every error the JSON shape above."""

    @app.exception_handler(SandboxError)
    async def _sandbox(_: Request, exc: SandboxError) -> JSONResponse:
        if isinstance(exc, (InternalError, IntegrityError)) and not isinstance(exc, ValueError):
            return _incident(exc)
        # 503 (all workers busy, or the same query being answered) or 429 (this analyst's jobs): retry, never 500
        status = getattr(exc, "status", 503) if isinstance(exc, VaultBusyError) else status_of(exc)
        retry = getattr(exc, "retry_after", None)
        headers = {"Retry-After": str(math.ceil(retry))} if status in (429, 503) and retry is not None else None
        body = error_body(type(exc).__name__.replace("Forbidden", "AuthError"), str(exc))
        return JSONResponse(body, status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        status, message = _explain_validation(exc)
        return JSONResponse(error_body("QueryError", message), status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "NotFoundError" if exc.status_code == 404 else "RequestError"
        detail = str(exc.detail)
        if exc.status_code == 404:
            detail = "No such endpoint; the vault's endpoints are listed at /openapi.json."
        elif exc.status_code == 405:
            detail = "Method not allowed on this endpoint; see /openapi.json for the methods it accepts."
        return JSONResponse(error_body(kind, detail), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _other(_: Request, exc: Exception) -> JSONResponse:
        return _incident(exc)


class BodyLimitMiddleware:
    """Refuse request bodies larger than ``max_bytes`` with 413 before the application reads them."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _refuse(self, send: Send, size: str) -> None:
        body = json.dumps(
            error_body(
                "QueryError",
                f"Request body is {size} bytes, more than the policy's limits.max_request_bytes of {self.max_bytes}; "
                "send a smaller request.",
            )
        ).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send, declared.decode())
            return
        chunks: list[Message] = []
        total = 0
        more = True
        while more:
            message = await receive()
            chunks.append(message)
            total += len(message.get("body", b""))
            if total > self.max_bytes:
                await self._refuse(send, f"more than {total}")
                return
            more = message.get("type") == "http.request" and bool(message.get("more_body"))

        async def replay() -> Message:
            return chunks.pop(0) if chunks else await receive()

        await self.app(scope, replay, send)
