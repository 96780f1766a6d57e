"""``POST /v1/query`` without the web framework's routing and dependency machinery, for requests it would accept.

A DP count is the vault's most frequent request, and the framework's routing, dependency solving and middleware
cost about 0.5 ms of the vault's CPU per request, as much as reserving the charge. :class:`QueryHotPath` sits in
front of the application and answers ``POST /v1/query`` itself when the request is one the application accepts
as it is: exactly one ``Content-Type: application/json``, a body within ``limits.max_request_bytes`` that is a
valid :class:`~.bodies.AggregateRequest`, a token of an analyst or admin, and a valid ``X-Sandbox-Run`` if any.
It then does what the route does (:func:`.routes_dp.post_query`): the same :class:`ComputeService` call, the same
response body, and any error rendered by the application's own exception handlers.

Every other request, and every one of these that fails a check above, goes to the application unchanged (the
body it read is handed on), so every refusal (400, 401, 403, 413, 422) is the application's own, word for word:
the hot path adds no response an analyst could see that the application would not give.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI, Request, Response

from sandbox._private.vault.tokens import TokenInfo

from .auth import _RUN_ID, authenticate, disconnected
from .bodies import AggregateRequest

__all__ = ["QueryHotPath", "PATH"]

PATH = "/v1/query"
_ROLES = ("analyst", "admin")  # as the route's dependency: routes_dp._analyst
_RUN_ID_MAX = 128  # as auth.run_id_header: Header(max_length=128), then RUN_ID_PATTERN
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


class QueryHotPath:
    """The ASGI application to serve: ``app`` with ``POST /v1/query`` answered directly (see the module docstring).

    Parameters
    ----------
    app : FastAPI
        The vault's application (:func:`.app.create_app`); its ``state.compute`` is the worker pool's door.
    """

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.max_bytes = app.state.service.policy.limits.max_request_bytes
        self._handlers = dict(app.exception_handlers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        compute = getattr(self.app.state, "compute", None)
        if (
            scope["type"] != "http"
            or scope["path"] != PATH
            or scope["method"] != "POST"
            or scope.get("query_string")
            or scope.get("root_path")
            or compute is None
        ):
            await self.app(scope, receive, send)
            return
        headers = scope["headers"]
        names = [k for k, _ in headers]
        if len(set(names)) != len(names) or dict(headers).get(b"content-type") != b"application/json":
            await self.app(scope, receive, send)
            return
        chunks, body = await self._read(scope, receive)
        if body is None:
            await self.app(scope, _replay(chunks, receive), send)
            return
        scope["app"] = self.app  # what the application sets before its routes read request.app
        request = Request(scope, receive)
        checked = self._check(request, body)
        if checked is None:  # the application gives its own answer (refusal or not), from the same bytes
            await self.app(scope, _replay(chunks, receive), send)
            return
        query, caller, run_id = checked
        try:
            text = await compute.query_json(query.to_query_dict(), caller, run_id, disconnected(request))
        except Exception as exc:
            response = await self._handler(exc)(request, exc)
            await response(scope, receive, send)
            return
        # what Response(text, media_type="application/json") sends, without building one
        body = text.encode("utf-8")
        await send({"type": "http.response.start", "status": 200, "headers": _json_headers(len(body))})
        await send({"type": "http.response.body", "body": body})

    async def _read(self, scope: Scope, receive: Receive) -> tuple[list[Message], bytes | None]:
        """Read the whole body; ``None`` instead when the application must see it (too large, disconnected)."""
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            return [], None
        chunks: list[Message] = []
        total = 0
        while True:
            message = await receive()
            chunks.append(message)
            if message.get("type") != "http.request":
                return chunks, None
            total += len(message.get("body", b""))
            if total > self.max_bytes:
                return chunks, None
            if not message.get("more_body"):
                return chunks, b"".join(m.get("body", b"") for m in chunks)

    @staticmethod
    def _check(request: Request, body: bytes) -> tuple[AggregateRequest, TokenInfo, str | None] | None:
        """Run the route's checks (token and role, run id, body); ``None`` if any fails or is not plainly met."""
        run_id = request.headers.get("x-sandbox-run")
        if run_id is not None and (len(run_id) > _RUN_ID_MAX or not _RUN_ID.match(run_id)):
            return None
        try:
            caller = authenticate(request)
        except Exception:
            return None
        if caller.role not in _ROLES:
            return None
        try:
            data = json.loads(body)
            query = AggregateRequest.model_validate(data, from_attributes=True)
        except Exception:  # not JSON, not UTF-8, nested too deep (RecursionError), not a valid request
            return None
        return query, caller, run_id

    def _handler(self, exc: Exception) -> Callable[[Request, Exception], Awaitable[Response]]:
        """Return the application's handler of ``exc``, looked up along its classes as the framework does."""
        for cls in type(exc).__mro__:
            if cls in self._handlers:
                return self._handlers[cls]
        return self._handlers[Exception]


def _json_headers(length: int) -> list[tuple[bytes, bytes]]:
    """Return the headers of a JSON response of ``length`` bytes, as the framework's ``Response`` writes them."""
    return [(b"content-length", str(length).encode("latin-1")), (b"content-type", b"application/json")]


def _replay(chunks: list[Message], receive: Receive) -> Receive:
    """``receive`` that first gives back the messages already read."""

    async def again() -> Message:
        return chunks.pop(0) if chunks else await receive()

    return again
