"""``POST /v1/query`` through the hot path answers byte for byte as the application does, for every request.

The reference is the application itself (:func:`create_app`, the framework's routing, dependencies and error
handlers). Each request of a battery (valid ones, and every kind of refusal: malformed JSON, another content type,
a missing, malformed, unknown or reviewer token, a bad run id, a body over the limit, unknown fields, a query
string, duplicate headers) is sent to both, and status, headers and body must be equal. The computation behind the
route is the real :class:`ComputeService` door's signature, recorded: the test checks that the hot path made the
same call the route makes, and that errors it raises (budget, busy with ``Retry-After``, an unexpected one) are
rendered by the application's own handlers. The served vault (``test_vault_system``, ``tests/neighbours``) runs
the hot path end to end.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import write_policy

from sandbox._private.shared.errors import BudgetExceededError, VaultBusyError
from sandbox._private.vault.http.app import create_app
from sandbox._private.vault.http.hotpath import QueryHotPath
from sandbox._private.vault.server import open_service

_QUERY = {"dataset": "households", "kind": "count", "by": ["household_type"], "epsilon": 0.5}


class _Door:
    """Records what the route passes on and answers like the worker pool's door (or raises what it is told)."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, Any], str, str | None]] = []
        self.raises: BaseException | None = None

    async def query_json(self, body: dict[str, Any], caller: Any, run_id: str | None, disconnected: Any) -> str:
        self.calls.append((body, caller.name, run_id))
        if self.raises is not None:
            raise self.raises
        return json.dumps({"answered": body["epsilon"], "by": caller.name}, sort_keys=True)


class _Counting:
    """The application, counting the requests that reach it (those the hot path handed on)."""

    def __init__(self, app: Any) -> None:
        self.app, self.state, self.exception_handlers, self.seen = app, app.state, app.exception_handlers, 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.seen += 1
        await self.app(scope, receive, send)


def _call(app: Any, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes, query: bytes = b""):
    async def run() -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        out: list[dict[str, Any]] = []
        pieces = [body[i : i + 700] for i in range(0, len(body), 700)] or [b""]
        messages = [{"type": "http.request", "body": p, "more_body": i < len(pieces) - 1} for i, p in enumerate(pieces)]

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop(0)
            await asyncio.sleep(3600)
            raise AssertionError("unreachable")

        async def send(message: dict[str, Any]) -> None:
            out.append(message)

        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
            "path": path, "raw_path": path.encode(), "query_string": query, "root_path": "", "headers": headers,
            "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000), "state": {},
        }  # fmt: skip
        await app(scope, receive, send)
        start = next(m for m in out if m["type"] == "http.response.start")
        data = b"".join(m.get("body", b"") for m in out if m["type"] == "http.response.body")
        return start["status"], sorted(start.get("headers", [])), data

    return asyncio.run(run())


def _incident_free(body: bytes) -> bytes:
    return re.sub(rb"incident [0-9a-f]{16}", b"incident X", body)


@pytest.fixture()
def apps(tmp_path: Path) -> dict[str, Any]:
    policy = write_policy(tmp_path / "p.yaml", {"max_request_bytes": 4096}, epsilon_per_dataset=5.0)
    svc = open_service(tmp_path / "ws", policy=policy)
    tokens = {role: svc.tokens.create(f"{role}1", role) for role in ("analyst", "reviewer", "admin")}
    door = _Door()
    app = create_app(svc, compute=door)  # type: ignore[arg-type]
    counting = _Counting(app)
    return {"app": app, "hot": QueryHotPath(counting), "counting": counting, "door": door, "tokens": tokens}


def _headers(token: str | None, content_type: bytes | None = b"application/json", **extra: str) -> list[Any]:
    out = [(b"host", b"127.0.0.1")]
    if content_type is not None:
        out.append((b"content-type", content_type))
    if token is not None:
        out.append((b"authorization", f"Bearer {token}".encode()))
    out += [(k.replace("_", "-").encode(), v.encode()) for k, v in extra.items()]
    return out


def test_every_request_gets_the_applications_answer(apps: dict[str, Any]) -> None:
    analyst, reviewer, admin = (apps["tokens"][r] for r in ("analyst", "reviewer", "admin"))
    body = json.dumps(_QUERY).encode()
    cases: list[tuple[str, list[Any], bytes, bytes, bool]] = [  # name, headers, body, query string, hot?
        ("valid analyst", _headers(analyst), body, b"", True),
        ("valid admin with run id", _headers(admin, x_sandbox_run="run-1.a:b"), body, b"", True),
        ("valid, body in pieces", _headers(analyst), json.dumps({**_QUERY, "where": {"x": ["a" * 900]}}).encode(),
         b"", True),
        ("no token", _headers(None), body, b"", False),
        ("malformed token", [*_headers(None), (b"authorization", b"Bearer nope")], body, b"", False),
        ("unknown token", _headers("sbx_" + "A" * 43), body, b"", False),
        ("reviewer token", _headers(reviewer), body, b"", False),
        ("bad run id", _headers(analyst, x_sandbox_run="white space"), body, b"", False),
        ("run id too long", _headers(analyst, x_sandbox_run="r" * 129), body, b"", False),
        ("not JSON", _headers(analyst), b"{nope", b"", False),
        ("not UTF-8", _headers(analyst), b'{"dataset": "\xff"}', b"", False),
        ("JSON, not an object", _headers(analyst), b"[1, 2]", b"", False),
        ("JSON nested too deep", _headers(analyst), b'{"where": {"a": ' + b"[" * 1500 + b"]" * 1500 + b"}}", b"",
         False),
        ("empty body", _headers(analyst), b"", b"", False),
        ("unknown field", _headers(analyst), json.dumps({**_QUERY, "epsilonn": 1}).encode(), b"", False),
        ("bad epsilon", _headers(analyst), json.dumps({**_QUERY, "epsilon": -1}).encode(), b"", False),
        ("NaN epsilon", _headers(analyst), body.replace(b"0.5", b"NaN"), b"", False),
        ("body over the limit", _headers(analyst), json.dumps({**_QUERY, "where": {"x": ["a" * 5000]}}).encode(),
         b"", False),
        ("declared over the limit", [*_headers(analyst), (b"content-length", b"99999")], body, b"", False),
        ("text/plain", _headers(analyst, content_type=b"text/plain"), body, b"", False),
        ("json with charset", _headers(analyst, content_type=b"application/json; charset=utf-8"), body, b"", False),
        ("no content type", _headers(analyst, content_type=None), body, b"", False),
        ("query string", _headers(analyst), body, b"x=1", False),
        ("two tokens", [*_headers(analyst), (b"authorization", f"Bearer {reviewer}".encode())], body, b"", False),
    ]  # fmt: skip
    served = 0
    for name, headers, data, query, hot in cases:
        before_calls, before_seen = len(apps["door"].calls), apps["counting"].seen
        got = _call(apps["hot"], "POST", "/v1/query", headers, data, query)
        hot_calls = apps["door"].calls[before_calls:]
        assert (apps["counting"].seen == before_seen) is hot, name  # served by the hot path, or handed on
        want = _call(apps["app"], "POST", "/v1/query", headers, data, query)
        assert got == want, name
        if want[0] == 200:
            assert hot_calls == apps["door"].calls[len(apps["door"].calls) - 1 :], name  # the same call
            served += hot
    assert served == 3
    # other endpoints are the application's
    seen = apps["counting"].seen
    assert _call(apps["hot"], "GET", "/v1/datasets", _headers(analyst), b"") == _call(
        apps["app"], "GET", "/v1/datasets", _headers(analyst), b""
    )
    assert _call(apps["hot"], "GET", "/v1/query", _headers(analyst), b"")[0] == 405
    assert apps["counting"].seen == seen + 2


@pytest.mark.parametrize(
    "error",
    [
        BudgetExceededError("Privacy budget of population 'p' exceeded: requested ε=0.5."),
        VaultBusyError("All 2 query workers of the vault are busy."),
        RuntimeError("a bug"),
    ],
)
def test_errors_are_rendered_by_the_applications_handlers(apps: dict[str, Any], error: Exception) -> None:
    if isinstance(error, VaultBusyError):
        error.status, error.retry_after = 503, 3  # type: ignore[attr-defined]
    apps["door"].raises = error
    headers, body = _headers(apps["tokens"]["analyst"]), json.dumps(_QUERY).encode()
    got = _call(apps["hot"], "POST", "/v1/query", headers, body)
    assert apps["counting"].seen == 0  # the hot path served it
    try:
        want = _call(apps["app"], "POST", "/v1/query", headers, body)
    except RuntimeError:  # the framework re-raises an unexpected error to the server after its 500 response
        want = None
    status, hdrs, data = got
    if want is not None:
        assert (status, hdrs, _incident_free(data)) == (want[0], want[1], _incident_free(want[2]))
    expected = {BudgetExceededError: 409, VaultBusyError: 503, RuntimeError: 500}[type(error)]
    assert status == expected
    assert (
        json.loads(data)["error"] == {409: "BudgetExceededError", 503: "VaultBusyError", 500: "InternalError"}[expected]
    )
    if expected == 503:
        assert (b"retry-after", b"3") in hdrs
