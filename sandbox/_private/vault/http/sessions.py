"""Browser sessions of reviewers, so that a reviewer never types a token into a page.

``sandbox review open`` (:func:`sandbox._private.kernel.trust_review.review_page_link`) first proves that the
server at the vault's address is the vault (:mod:`sandbox._private.kernel.trust`), then asks it for a one-time
login code (``POST /v1/review/login``, 60 s, one use) and opens ``/review/enter#code=...`` in the browser. That page
exchanges the code for a session token (``POST /v1/review/session``, 8 h) and keeps it in the tab's
``sessionStorage``, where the review page reads it. A port squatter who is handed the link gets only a code that
expires in a minute and works on no other server. Codes and sessions live in the vault's memory (a restart ends
them) and only their sha256 is kept.
"""

from __future__ import annotations

import hashlib
import secrets
import time

from sandbox._private.shared.errors import AuthError
from sandbox._private.vault.tokens import TokenInfo

__all__ = ["ReviewSessions", "CODE_SECONDS", "SESSION_SECONDS"]

CODE_SECONDS = 60.0
SESSION_SECONDS = 8 * 3600.0
_CODE, _SESSION = "sbc_", "sbs_"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii", "replace")).hexdigest()


class ReviewSessions:
    """One-time login codes and session tokens of reviewers (see the module docstring)."""

    def __init__(self) -> None:
        self._codes: dict[str, tuple[TokenInfo, float]] = {}
        self._sessions: dict[str, tuple[TokenInfo, float]] = {}

    def _prune(self) -> None:
        now = time.monotonic()
        for store in (self._codes, self._sessions):
            for key in [k for k, (_, until) in store.items() if until < now]:
                del store[key]

    def code_for(self, reviewer: TokenInfo) -> str:
        """Mint a one-time login code for ``reviewer``, valid for :data:`CODE_SECONDS`."""
        self._prune()
        code = _CODE + secrets.token_urlsafe(24)
        self._codes[_digest(code)] = (reviewer, time.monotonic() + CODE_SECONDS)
        return code

    def open(self, reviewer: TokenInfo) -> str:
        """Open a session for ``reviewer`` and return its token, valid for :data:`SESSION_SECONDS`."""
        self._prune()
        token = _SESSION + secrets.token_urlsafe(32)
        self._sessions[_digest(token)] = (reviewer, time.monotonic() + SESSION_SECONDS)
        return token

    def redeem(self, header: str | None) -> TokenInfo | None:
        """Return the reviewer of a one-time code in ``header`` (using it up), or ``None`` if it holds no code."""
        token = _bearer(header)
        if token is None or not token.startswith(_CODE):
            return None
        self._prune()
        found = self._codes.pop(_digest(token), None)
        if found is None:
            raise AuthError(
                "This login code is unknown, used or expired (codes last 60 s); run `sandbox review open` again."
            )
        return found[0]

    def authenticate(self, header: str | None) -> TokenInfo | None:
        """Return the reviewer of a session token in ``header``, or ``None`` if it holds no session token."""
        token = _bearer(header)
        if token is None or not token.startswith(_SESSION):
            return None
        found = self._sessions.get(_digest(token))
        if found is None or found[1] < time.monotonic():
            raise AuthError(
                "This review session is unknown or expired; open the review page again (`sandbox review open`)."
            )
        return found[0]


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None
