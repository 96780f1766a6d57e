"""Handles on computations that run in the vault while the notebook goes on: ``hh.fit(spec, epsilon=1, wait=False)``.

A :class:`Job` follows one job of the vault (``GET /v1/jobs/{id}``): ``status`` asks for its state, ``result()``
waits for it (long-polling, so nothing spins) and returns what the blocking call would have returned, and
``cancel()`` stops it. Its charge was reserved when it was submitted: a job that fails, runs over the policy's
limits or is cancelled keeps its charge, and ``result()`` raises the vault's error saying so. Only the analyst who
submitted a job can see it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from sandbox._private.shared.errors import SandboxError
from sandbox._private.shared.wire import error_from_body

from .transport import Transport

__all__ = ["Job"]

_POLL_S = 30.0
_ENDED = ("done", "failed", "cancelled")


class Job:
    """One computation of yours in the vault (see the module docstring).

    Parameters
    ----------
    transport : Transport
        The connection it was submitted on.
    view : mapping
        The vault's description of the job (``id``, ``kind``, ``dataset``, ``state``, ...).
    make : callable
        Turns the stored answer (the payload of the blocking call) into the result object.
    """

    def __init__(self, transport: Transport, view: Mapping[str, Any], make: Callable[[Mapping[str, Any]], Any]) -> None:
        self._t = transport
        self._view = dict(view)
        self._make = make
        self._result: Any = None
        self.id: str = str(view["id"])
        self.kind: str = str(view["kind"])
        self.dataset: str = str(view["dataset"])

    def __repr__(self) -> str:
        return f"Job({self.id}, {self.kind} on {self.dataset}, {self._view['state']})"

    def refresh(self, wait: float = 0.0) -> dict[str, Any]:
        """Ask the vault for the job's state (waiting up to ``wait`` seconds, at most 60, for it to end)."""
        params = {"wait": wait} if wait else None
        self._view = dict(self._t.get(f"/v1/jobs/{self.id}", params, timeout=wait + 30.0))
        return dict(self._view)

    @property
    def status(self) -> str:
        """``queued``, ``running``, ``done``, ``failed`` or ``cancelled`` (asks the vault unless it has ended)."""
        if self._view["state"] not in _ENDED:
            self.refresh()
        return str(self._view["state"])

    def done(self) -> bool:
        """Whether the job has ended (successfully or not)."""
        return self.status in _ENDED

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the job (at most ``timeout`` seconds; ``None``: as long as it runs) and return its result.

        Raises
        ------
        TimeoutError
            The job has not ended within ``timeout`` seconds (it goes on; ask again).
        SandboxError
            The vault's error when the job failed, ran over a limit or was cancelled (its charge is kept).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._view["state"] not in _ENDED:
            left = _POLL_S if deadline is None else min(_POLL_S, deadline - time.monotonic())
            if left <= 0:
                raise TimeoutError(
                    f"Job {self.id} is still {self._view['state']} after {timeout:g} s; call .result() again later."
                )
            self.refresh(wait=max(left, 0.1))
        if self._view["state"] != "done":
            error = self._view.get("error") or {}
            raise _error(error)
        if self._result is None:
            self._result = self._make(self._t.record(self._view["result"]))
        return self._result

    def cancel(self) -> str:
        """Stop the job if it still runs (its charge is kept); returns its state afterwards."""
        self._view = dict(self._t.delete(f"/v1/jobs/{self.id}"))
        return str(self._view["state"])


def _error(error: Mapping[str, Any]) -> SandboxError:
    return error_from_body(int(error.get("status", 500)), error)
