"""Bearer tokens with a role. Only each token's sha256 is stored (``tokens.json``, mode 0600).

A token looks like ``sbx_`` followed by 43 URL-safe characters; anything else is *malformed* (HTTP 401 before
any lookup). Roles: ``analyst`` (queries and models), ``reviewer`` (reads budgets and results; the review
workflow adds more), ``admin`` (everything).
"""

from __future__ import annotations

import fcntl
import getpass
import hashlib
import hmac
import json
import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from sandbox._private.shared.errors import AuthError
from sandbox._private.shared.files import write_private

__all__ = ["Role", "ROLES", "TokenInfo", "TokenStore", "TOKEN_PATTERN", "ensure_client_token"]

Role = Literal["analyst", "reviewer", "admin"]
ROLES: tuple[Role, ...] = ("analyst", "reviewer", "admin")
TOKEN_PATTERN = re.compile(r"^sbx_[A-Za-z0-9_-]{43}$")
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


@dataclass(frozen=True)
class TokenInfo:
    """Who a token belongs to."""

    name: str
    role: Role
    sha256: str
    created: str


class TokenStore:
    """The token file of one vault.

    Parameters
    ----------
    path : Path
        ``<workspace>/vault/tokens.json``.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> list[TokenInfo]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        return [TokenInfo(**t) for t in data.get("tokens", [])]

    def create(self, name: str, role: str) -> str:
        """Create a token; the plain token is returned once and never stored."""
        if role not in ROLES:
            raise AuthError(f"Role {role!r} does not exist; use one of {', '.join(ROLES)}.")
        if not _NAME.match(name):
            raise AuthError(f"Token name {name!r} is not allowed: use 1-64 letters, digits or '_.@-'.")
        token = "sbx_" + secrets.token_urlsafe(32)
        info = TokenInfo(name, role, _digest(token), datetime.now(UTC).isoformat(timespec="seconds"))
        lock = os.open(self.path.with_name(".tokens.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)  # read-modify-write: concurrent creations must not lose a token
            tokens = [*self._load(), info]
            write_private(self.path, json.dumps({"tokens": [t.__dict__ for t in tokens]}, indent=2) + "\n")
        finally:
            os.close(lock)
        return token

    def list(self) -> list[TokenInfo]:
        return self._load()

    def authenticate(self, header: str | None) -> TokenInfo:
        """Return the owner of an ``Authorization: Bearer <token>`` header; :class:`AuthError` says what is wrong."""
        if not header:
            raise AuthError(
                "No token: send 'Authorization: Bearer <token>' (create one with `sandbox vault token create`)."
            )
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not TOKEN_PATTERN.match(token):
            raise AuthError(
                "Malformed token: expected 'Authorization: Bearer sbx_<43 characters>'. Copy the token printed by "
                "`sandbox vault token create` exactly."
            )
        digest = _digest(token)
        for info in self._load():
            if hmac.compare_digest(info.sha256, digest):
                return info
        raise AuthError(
            "Unknown token: it is well-formed but not issued by this vault. Create one with "
            "`sandbox vault token create --role analyst --name NAME`."
        )


def ensure_client_token(store: TokenStore, path: Path) -> None:
    """Create the workspace owner's analyst token in ``path`` (mode 0600) unless it is there already.

    The vault writes this file when it starts, so that ``sb.connect()`` with no arguments (the laptop mode, where
    the kernel runs as the OS user who owns the workspace) finds its token; the kernel only ever reads it.
    """
    if path.exists():
        return
    name = "".join(ch if ch.isalnum() or ch in "_.@-" else "_" for ch in getpass.getuser())[:64] or "analyst"
    write_private(path, store.create(name, "analyst") + "\n")
