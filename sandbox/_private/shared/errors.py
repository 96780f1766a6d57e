"""The exception hierarchy of the sandbox.

Every error the sandbox raises on purpose derives from :class:`SandboxError`. User errors also inherit the
matching built-in (``ValueError``, ``PermissionError``, ...), so ``except ValueError`` keeps working for callers
that do not know the sandbox. :class:`InternalError` marks a bug in the sandbox itself, never a user mistake.

Messages state the numbers involved and name the fix.
"""

from __future__ import annotations

__all__ = [
    "SandboxError",
    "SchemaError",
    "PolicyError",
    "ScenarioError",
    "QueryError",
    "BudgetExceededError",
    "AnswerPendingError",
    "NotFoundError",
    "AuthError",
    "FairnessInputError",
    "ReleaseError",
    "RequestCapError",
    "RegisterFieldError",
    "IntegrityError",
    "OutputPathError",
    "StudyError",
    "StudyRunError",
    "VaultBusyError",
    "ComputeLimitError",
    "VaultIdentityError",
    "InternalError",
]


class SandboxError(Exception):
    """Root of every error the sandbox raises on purpose."""


class SchemaError(SandboxError, ValueError):
    """A public schema is malformed, or data does not match its schema."""


class PolicyError(SandboxError, ValueError):
    """A policy file is malformed; the message names the field and the fix."""


class ScenarioError(SandboxError, ValueError):
    """A synthetic-population scenario file is malformed; the message names the field and the fix."""


class QueryError(SandboxError, ValueError):
    """A query is not allowed: unknown column, wrong type, invalid epsilon, forbidden feature..."""


class BudgetExceededError(SandboxError, ValueError):
    """A query would spend more privacy budget than remains."""


class AnswerPendingError(SandboxError):
    """The same query is being answered right now; its stored answer is free once it is ready: retry.

    ``retry_after`` is the number of seconds after which a retry is worth making.
    """

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NotFoundError(SandboxError, LookupError):
    """A dataset, result, request or run does not exist."""


class AuthError(SandboxError, PermissionError):
    """A token is missing, malformed, unknown, or its role may not perform the action."""


class FairnessInputError(SandboxError, ValueError):
    """Inputs to a fairness audit are inconsistent (lengths, labels, missing groups...)."""


class ReleaseError(SandboxError, ValueError):
    """A release request or review action is refused by the gate or the workflow."""


class RegisterFieldError(ReleaseError):
    """A field of an Algoritmeregister draft breaks publication standard 1.0 (HTTP 422): field, limit and fix."""


class RequestCapError(ReleaseError):
    """A release request is over the policy's daily cap (HTTP 429); the message states the cap and its reset."""


class IntegrityError(SandboxError):
    """A hash chain, an outbox file or a ledger entry does not match what was recorded."""


class OutputPathError(SandboxError, OSError):
    """An output location cannot be written; the message names the path and the fix."""


class StudyError(SandboxError, ValueError):
    """A study notebook or its parameters are invalid (no parameters cell, unknown name, wrong type...)."""


class StudyRunError(SandboxError, RuntimeError):
    """A study run failed: a cell raised, the kernel died or the vault was not reachable."""


class VaultBusyError(SandboxError, RuntimeError):
    """The vault's workers are all busy (HTTP 503), or the analyst has too many jobs at once (HTTP 429).

    The response carries ``Retry-After``; nothing was charged.
    """


class ComputeLimitError(QueryError):
    """A computation ran over the policy's CPU or wall-time limit and was stopped; its charge is kept."""


class VaultIdentityError(SandboxError, ConnectionError):
    """The server at the vault's address has not proven that it is the vault; no token was sent to it."""


class InternalError(SandboxError, RuntimeError):
    """An internal invariant failed. This is probably a bug in the sandbox: please report it."""


class SandboxWarning(UserWarning):
    """Something will be refused, though nothing failed yet (e.g. ``cost()`` of a spec that ``fit()`` refuses)."""
