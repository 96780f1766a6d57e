"""The one HTTP client of the vault, for every caller in the kernel: analyst handles, the gate, reviewers, studies.

:class:`Transport` sends JSON with the bearer token (and a study's run id) on every request and turns an error
response into the matching :class:`~sandbox.SandboxError` subclass with the vault's message
(:func:`sandbox._private.shared.wire.error_from_body`). :meth:`Transport.charge` is the POST of an answer that may
spend budget: it also tells the notebook display and the study's run log what the vault charged
(:mod:`.spend`), so no caller has to remember to.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from sandbox._private.shared.errors import SandboxError
from sandbox._private.shared.wire import error_from_body

from .spend import record_spend

__all__ = ["Transport", "probe_health", "DEFAULT_TIMEOUT_S"]

#: Seconds a request may take (a model fit on a national table takes minutes).
DEFAULT_TIMEOUT_S = 600.0


def probe_health(url: str, timeout: float = 2.0) -> bool:
    """Whether a vault answers ``GET /v1/health`` at ``url`` (no token is sent)."""
    try:
        return httpx.get(f"{url.rstrip('/')}/v1/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


class Transport:
    """JSON over HTTP to one vault.

    Parameters
    ----------
    url : str
        The vault's base URL.
    token : str or None
        Bearer token (analyst or reviewer); ``None`` only for the unauthenticated health probe.
    run_id : str, optional
        Sent as ``X-Sandbox-Run`` with every request, so the ledger records the study run of each charge.
    timeout : float
        Seconds per request.
    """

    def __init__(
        self, url: str, token: str | None, run_id: str | None = None, *, timeout: float = DEFAULT_TIMEOUT_S
    ) -> None:
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if run_id:
            headers["X-Sandbox-Run"] = run_id
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def __repr__(self) -> str:
        return f"Transport({self.url})"

    def close(self) -> None:
        """Close the connection pool (the vault keeps running)."""
        self._http.close()

    def _send(self, method: str, path: str, **kw: Any) -> Any:
        try:
            resp = self._http.request(method, path, **kw)
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
        raise error_from_body(resp.status_code, body)

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """GET ``path`` and return its JSON."""
        return self._send("GET", path, params=params)

    def post(self, path: str, body: Mapping[str, Any]) -> Any:
        """POST ``body`` as JSON to ``path`` and return the JSON answer."""
        return self._send("POST", path, json=body)

    def charge(self, path: str, body: Mapping[str, Any]) -> Any:
        """POST a request whose answer the ledger charges, and record the charge for the display and run log."""
        payload = self.post(path, body)
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
