"""The one HTTP client of the vault, for every caller in the kernel: analyst handles, the gate, reviewers, studies.

:class:`Transport` sends JSON with the bearer token (and a study's run id) on every request and turns an error
response into the matching :class:`~sandbox.SandboxError` subclass with the vault's message
(:func:`sandbox._private.shared.wire.error_from_body`). :meth:`Transport.charge` is the POST of an answer that may
spend budget: it also tells the notebook display and the study's run log what the vault charged
(:mod:`.spend`), so no caller has to remember to.

Every new connection is checked before a token goes over it (:mod:`.trust`: the server must run as the vault's
OS account), connections are kept alive between requests (one check per connection) and use ``TCP_NODELAY``.
JSON requests to plain paths (no query string, nothing to quote) are written and parsed by :mod:`.http1` (its
own kept-alive connections, opened by the same verifying backend); the others go through httpx. A
busy vault (HTTP 503 or 429 with ``Retry-After``: all workers busy, or the same question being answered right now;
nothing was charged) is asked again after the time it names, for at most ``busy_wait`` seconds in all.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpcore
import httpx

from sandbox._private.shared.errors import SandboxError
from sandbox._private.shared.wire import error_from_body

from .http1 import Http1Pool
from .spend import record_spend
from .trust import Expectation, VerifyingBackend, expect, parse_address

__all__ = ["Transport", "probe_health", "DEFAULT_TIMEOUT_S", "BUSY_WAIT_S", "NO_TIMEOUT"]

#: Seconds a request may take (the vault's policy limits a computation's wall time; a fit may take minutes).
DEFAULT_TIMEOUT_S = 600.0
#: Seconds in all that a call waits for a busy vault (503/429 with Retry-After) before it gives up.
BUSY_WAIT_S = 120.0
#: ``timeout=NO_TIMEOUT`` waits as long as the vault computes (its policy bounds a job's wall time).
NO_TIMEOUT: Any = None
_DEFAULT: Any = object()
_KEEPALIVE_S = 20.0  # below the vault's keep-alive timeout (30 s), so the client always closes an idle one first


def _pool(address: Any, backend: VerifyingBackend) -> httpx.HTTPTransport:
    transport = httpx.HTTPTransport(trust_env=False)
    transport._pool = httpcore.ConnectionPool(  # the same pool httpx builds, with the verifying socket backend
        max_connections=16,
        max_keepalive_connections=8,
        keepalive_expiry=_KEEPALIVE_S,
        uds=address.uds,
        network_backend=backend,
    )
    return transport


def probe_health(url: str, timeout: float = 2.0) -> bool:
    """Whether something answers ``GET /v1/health`` at ``url`` (no token is sent, so no identity check is needed)."""
    try:
        address = parse_address(url)
        with httpx.Client(
            base_url=address.base_url, transport=httpx.HTTPTransport(uds=address.uds, trust_env=False), timeout=timeout
        ) as client:
            return client.get("/v1/health").status_code == 200
    except (httpx.HTTPError, SandboxError):
        return False


class Transport:
    """JSON over HTTP to one vault.

    Parameters
    ----------
    url : str
        The vault's address: ``http://127.0.0.1:PORT`` or ``unix:/path/vault.sock``.
    token : str or None
        Bearer token (analyst or reviewer); ``None`` only for unauthenticated calls.
    run_id : str, optional
        Sent as ``X-Sandbox-Run`` with every request, so the ledger records the study run of each charge.
    timeout : float
        Seconds per request.
    vault_uid : int, optional
        The OS account the vault must run as (the local launcher passes the workspace owner's; otherwise
        ``$SANDBOX_VAULT_USER`` or, for a socket, its folder's owner, or your own account).
    busy_wait : float
        Seconds in all to wait for a busy vault before raising :class:`VaultBusyError`.
    """

    def __init__(
        self,
        url: str,
        token: str | None,
        run_id: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        vault_uid: int | None = None,
        busy_wait: float = BUSY_WAIT_S,
    ) -> None:
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if run_id:
            headers["X-Sandbox-Run"] = run_id
        self.expectation: Expectation = expect(url, vault_uid=vault_uid)
        address = self.expectation.address
        self.url = address.url
        self.busy_wait = busy_wait
        self.backend = VerifyingBackend(self.expectation)
        transport = _pool(address, self.backend)
        self._http = httpx.Client(base_url=address.base_url, headers=headers, timeout=timeout, transport=transport)
        # JSON requests go to httpx's connection pool directly: the same connections (and identity checks), without
        # the client's per-request URL, header and cookie models (about a third of a request's CPU)
        self._core: httpcore.ConnectionPool = transport._pool
        self._base = address.base_url.rstrip("/")
        self._headers = [(k.encode(), v.encode()) for k, v in headers.items()]
        self._timeout = self._http.timeout.as_dict()
        # the plain paths' own HTTP/1.1 (header values that need no checking by h11: printable ASCII)
        self._wire: Http1Pool | None = None
        if all(_HEADER_VALUE.fullmatch(v) for v in headers.values()):
            self._wire = Http1Pool(address, self.backend, max_idle=8, keepalive_expiry=_KEEPALIVE_S)
            host = httpx.URL(address.base_url).netloc.decode("ascii")
            self._head = "".join(f"{k}: {v}\r\n" for k, v in {"Host": host, **headers}.items()).encode("ascii")

    def __repr__(self) -> str:
        return f"Transport({self.url})"

    def close(self) -> None:
        """Close the connection pools (the vault keeps running)."""
        if self._wire is not None:
            self._wire.close()
        self._http.close()

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, timeout: Any, body: Any, params: Any) -> tuple[int, Any, bytes]:
        """Send one request; return its status, a ``get(name)`` of its headers, and its body."""
        if params or not _PLAIN_PATH.fullmatch(path):  # a query string, or a path to quote: httpx encodes them
            extra = {} if timeout is _DEFAULT else {"timeout": timeout}
            full = self._http.request(method, path, params=params, json=body, **extra)
            return full.status_code, full.headers.get, full.content
        limits = self._timeout if timeout is _DEFAULT else httpx.Timeout(timeout).as_dict()
        content = None
        if body is not None:  # encoded as httpx encodes ``json=``
            content = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
        if self._wire is not None and method in _WIRE_METHODS:
            head = f"{method} {path} HTTP/1.1\r\n".encode("ascii") + self._head
            if content is None:
                data = head + b"\r\n"
            else:
                data = b"%sContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
                    head,
                    len(content),
                    content,
                )
            status, raw, payload = self._wire.request(method, data, limits)
            return status, _header_getter(raw), payload
        headers = self._headers if content is None else [*self._headers, (b"Content-Type", b"application/json")]
        resp = self._core.request(
            method, self._base + path, headers=headers, content=content, extensions={"timeout": limits}
        )
        return resp.status, _header_getter(resp.headers), resp.content

    def _send(self, method: str, path: str, *, timeout: Any = _DEFAULT, json: Any = None, params: Any = None) -> Any:
        deadline = time.monotonic() + self.busy_wait
        while True:
            try:
                status, header, content = self._request(method, path, timeout, json, params)
            except (httpx.HTTPError, *_CORE_ERRORS) as exc:
                raise SandboxError(
                    f"Cannot reach the vault at {self.url}: {exc}. Start it with `sandbox vault serve` or call "
                    "sb.connect() without arguments for a local one."
                ) from None
            if status < 400:
                return _loads(content)
            try:
                body = _loads(content)
            except ValueError:
                body = None
            error = error_from_body(status, body)
            wait = _retry_after(status, header)  # 503/429 with Retry-After: busy, or the same question being answered
            if wait is None or time.monotonic() + wait > deadline:
                raise error
            time.sleep(wait)

    def get(self, path: str, params: Mapping[str, Any] | None = None, *, timeout: Any = _DEFAULT) -> Any:
        """GET ``path`` and return its JSON."""
        return self._send("GET", path, params=params, timeout=timeout)

    def post(
        self, path: str, body: Mapping[str, Any], *, params: Mapping[str, Any] | None = None, timeout: Any = _DEFAULT
    ) -> Any:
        """POST ``body`` as JSON to ``path`` and return the JSON answer."""
        return self._send("POST", path, json=body, params=params, timeout=timeout)

    def delete(self, path: str) -> Any:
        """DELETE ``path`` and return the JSON answer."""
        return self._send("DELETE", path)

    def charge(self, path: str, body: Mapping[str, Any], *, timeout: Any = _DEFAULT) -> Any:
        """POST a request whose answer the ledger charges, and record the charge for the display and run log.

        By default it waits as long as the vault computes: the vault's policy bounds every computation's wall time,
        and a client that gave up earlier would cancel the computation and lose its (kept) charge.
        """
        wait = httpx.Timeout(None, connect=30.0) if timeout is _DEFAULT else timeout
        return self.record(self.post(path, body, timeout=wait))

    @staticmethod
    def record(payload: Any) -> Any:
        """Record a charged answer (``epsilon_remaining`` present) for the notebook display and the run log."""
        remaining = payload.get("epsilon_remaining") if isinstance(payload, Mapping) else None
        if isinstance(remaining, int | float):
            record_spend(
                str(payload["dataset"]),
                float(payload.get("charged_epsilon", 0.0)),
                float(remaining),
                result_id=str(payload["id"]),
                sha256=str(payload["sha256"]),
                reused=bool(payload.get("reused")),
            )
        return payload


_CORE_ERRORS = (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol)
_loads = json.loads
_PLAIN_PATH = re.compile(r"/[A-Za-z0-9/_.~-]*")  # sent as it is
_WIRE_METHODS = frozenset({"GET", "POST", "DELETE"})  # not HEAD: its response has no body to read
_HEADER_VALUE = re.compile(r"[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?")  # printable ASCII, no edge spaces


def _header_getter(raw: list[tuple[bytes, bytes]]) -> Callable[[str, str], str]:
    """``get(name, default)`` over raw response headers (names compared without case)."""

    def get(name: str, default: str = "") -> str:
        key = name.lower().encode()
        return next((v.decode("latin-1") for k, v in raw if k.lower() == key), default)

    return get


def _retry_after(status: int, header: Callable[[str, str], str]) -> float | None:
    if status not in (429, 503):
        return None
    try:
        return max(0.05, min(float(header("retry-after", "")), 60.0))
    except ValueError:
        return None
