"""The one HTTP client of the vault, for every caller in the kernel: analyst handles, the gate, reviewers, studies.

:class:`Transport` sends JSON with the bearer token (and a study's run id) on every request and turns an error
response into the matching :class:`~sandbox.SandboxError` subclass with the vault's message
(:func:`sandbox._private.shared.wire.error_from_body`). :meth:`Transport.charge` is the POST of an answer that may
spend budget: it also tells the notebook display and the study's run log what the vault charged
(:mod:`.spend`), so no caller has to remember to.

Every new connection is checked before a token goes over it (:mod:`.trust`: the server must run as the vault's
OS account), connections are kept alive between requests (one check per connection) and use ``TCP_NODELAY``. A
busy vault (HTTP 503 or 429 with ``Retry-After``: all workers busy, or the same question being answered right now;
nothing was charged) is asked again after the time it names, for at most ``busy_wait`` seconds in all.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import httpcore
import httpx

from sandbox._private.shared.errors import SandboxError
from sandbox._private.shared.wire import error_from_body

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
        self._http = httpx.Client(
            base_url=address.base_url, headers=headers, timeout=timeout, transport=_pool(address, self.backend)
        )

    def __repr__(self) -> str:
        return f"Transport({self.url})"

    def close(self) -> None:
        """Close the connection pool (the vault keeps running)."""
        self._http.close()

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, method: str, path: str, *, timeout: Any = _DEFAULT, **kw: Any) -> Any:
        deadline = time.monotonic() + self.busy_wait
        extra = {} if timeout is _DEFAULT else {"timeout": timeout}
        while True:
            try:
                resp = self._http.request(method, path, **kw, **extra)
            except httpx.HTTPError as exc:
                raise SandboxError(
                    f"Cannot reach the vault at {self.url}: {exc}. Start it with `sandbox vault serve` or call "
                    "sb.connect() without arguments for a local one."
                ) from None
            if resp.status_code < 400:
                return resp.json()
            try:
                body = resp.json()
            except ValueError:
                body = None
            error = error_from_body(resp.status_code, body)
            wait = _retry_after(resp)  # 503/429 with Retry-After: busy, or the same question is being answered
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


def _retry_after(resp: httpx.Response) -> float | None:
    if resp.status_code not in (429, 503):
        return None
    try:
        return max(0.05, min(float(resp.headers.get("retry-after", "")), 60.0))
    except ValueError:
        return None
