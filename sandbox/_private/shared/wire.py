"""The vault's wire format, known to both sides: name patterns, the error body, and error types by HTTP status.

Every failure crosses the wire as ``{"error": <exception type name>, "message": <text naming the fix>}``. The
vault picks the HTTP status with :func:`status_of`; the kernel turns a body back into the matching
:class:`~sandbox.SandboxError` subclass with :func:`error_from_body`. Both sides use the same patterns for
dataset and column names, result ids and run ids.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from . import errors as _errors
from .errors import (
    AnswerPendingError,
    AuthError,
    BudgetExceededError,
    NotFoundError,
    PolicyError,
    QueryError,
    RegisterFieldError,
    RequestCapError,
    SandboxError,
    SchemaError,
    VaultBusyError,
)

__all__ = [
    "NAME_PATTERN",
    "NAME_RE",
    "RESULT_ID_PATTERN",
    "RUN_ID_PATTERN",
    "Forbidden",
    "error_body",
    "status_of",
    "error_class",
    "error_from_body",
]

#: Dataset, table, column and derived-column names: lower-case, starting with a letter, at most 63 characters.
NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
NAME_RE = re.compile(NAME_PATTERN)
#: Ids the vault mints for stored answers.
RESULT_ID_PATTERN = r"^r_[A-Za-z0-9_-]{1,64}$"
#: The ``X-Sandbox-Run`` header a study run sends.
RUN_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"


class Forbidden(AuthError):
    """The token is valid but its role may not use this endpoint (HTTP 403)."""


_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (Forbidden, 403),
    (RequestCapError, 429),
    (AuthError, 401),
    (NotFoundError, 404),
    (BudgetExceededError, 409),
    (VaultBusyError, 503),
    (RegisterFieldError, 422),
    (QueryError, 422),
    (SchemaError, 422),
    (PolicyError, 422),
    (AnswerPendingError, 503),  # retryable: the same query is being answered; its stored answer will be free
)


def error_body(kind: str, message: str) -> dict[str, str]:
    """Return the JSON body of an error response."""
    return {"error": kind, "message": message}


def status_of(exc: SandboxError) -> int:
    """HTTP status of a domain error (4xx for the caller's mistakes, 500 for the rest)."""
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 400 if isinstance(exc, ValueError) else 500


def error_class(name: str, status: int) -> type[SandboxError]:
    """Return the exception type named by an error body (``AuthError`` for 401/403 and ``SandboxError`` otherwise)."""
    cls = getattr(_errors, name, None)
    if isinstance(cls, type) and issubclass(cls, SandboxError):
        return cls
    return AuthError if status in (401, 403) else SandboxError


def error_from_body(status: int, body: Any) -> SandboxError:
    """Return the exception to raise for an error response with ``status`` and parsed JSON ``body`` (or ``None``)."""
    if isinstance(body, Mapping) and isinstance(body.get("error"), str) and isinstance(body.get("message"), str):
        return error_class(body["error"], status)(body["message"])
    return error_class("", status)(f"The vault answered HTTP {status} without an error message.")
