"""Bearer tokens with a role. Only each token's sha256 is stored (``tokens.json``, mode 0600).

A token looks like ``sbx_`` followed by 43 URL-safe characters; anything else is *malformed* (HTTP 401 before
any lookup). Roles: ``analyst`` (queries and models), ``reviewer`` (reads budgets and results; the review
workflow adds more), ``admin`` (everything).

Each token also records where it was minted: the OS account that minted it, and whether that was the account that
owns the workspace on a vault in **laptop mode** (no ``--socket`` deployment remembered in ``vault/config.json``).
In laptop mode the analyst owns the vault's files and can mint any token, so reviews made with such tokens are not
independent of the author: :meth:`TokenStore.independence` says so, for the release gate to write "not
independently reviewed" into a release's manifest and report.
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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from sandbox._private.shared.errors import AuthError
from sandbox._private.shared.files import write_private

__all__ = [
    "Role",
    "ROLES",
    "TokenInfo",
    "TokenStore",
    "TOKEN_PATTERN",
    "ensure_client_token",
    "ReviewIndependence",
    "INDEPENDENT",
    "NOT_INDEPENDENT",
]

Role = Literal["analyst", "reviewer", "admin"]
ROLES: tuple[Role, ...] = ("analyst", "reviewer", "admin")
TOKEN_PATTERN = re.compile(r"^sbx_[A-Za-z0-9_-]{43}$")
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


#: Labels of a release's review, for its manifest and report.
INDEPENDENT = "independently reviewed"
NOT_INDEPENDENT = "not independently reviewed"


@dataclass(frozen=True)
class TokenInfo:
    """Who a token belongs to, and where it was minted.

    Attributes
    ----------
    minted_by : str or None
        OS account that minted the token (``None``: minted before the vault recorded it).
    minted_uid : int or None
        Its uid.
    local : bool or None
        Minted by the account that owns the workspace, on a vault in laptop mode (see the module docstring).
    """

    name: str
    role: Role
    sha256: str
    created: str
    minted_by: str | None = None
    minted_uid: int | None = None
    local: bool | None = None


@dataclass(frozen=True)
class ReviewIndependence:
    """Whether the reviewers who approved a release are independent of its author, and why not."""

    independent: bool
    reasons: tuple[str, ...]

    @property
    def label(self) -> str:
        """``"independently reviewed"`` or ``"not independently reviewed"``."""
        return INDEPENDENT if self.independent else NOT_INDEPENDENT

    def to_dict(self) -> dict[str, Any]:
        return {"independent": self.independent, "label": self.label, "reasons": list(self.reasons)}


def _deployment(vault_folder: Path) -> bool:
    """Whether the workspace's vault is remembered as a deployment (listening on a Unix socket)."""
    try:
        config = json.loads((vault_folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and bool(config.get("socket"))


class TokenStore:
    """The token file of one vault.

    Parameters
    ----------
    path : Path
        ``<workspace>/vault/tokens.json``.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cache: tuple[tuple[int, int, int], list[TokenInfo]] | None = None

    def _load(self) -> list[TokenInfo]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return []
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)  # every write replaces the file: a new inode
        if self._cache is not None and self._cache[0] == stamp:
            return self._cache[1]
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        fields = set(TokenInfo.__dataclass_fields__)
        tokens = [TokenInfo(**{k: v for k, v in t.items() if k in fields}) for t in data.get("tokens", [])]
        self._cache = (stamp, tokens)
        return tokens

    def create(self, name: str, role: str) -> str:
        """Create a token; the plain token is returned once and never stored."""
        if role not in ROLES:
            raise AuthError(f"Role {role!r} does not exist; use one of {', '.join(ROLES)}.")
        if not _NAME.match(name):
            raise AuthError(f"Token name {name!r} is not allowed: use 1-64 letters, digits or '_.@-'.")
        token = "sbx_" + secrets.token_urlsafe(32)
        uid = os.geteuid()
        owner = os.stat(self.path.parent).st_uid
        info = TokenInfo(
            name,
            role,
            _digest(token),
            datetime.now(UTC).isoformat(timespec="seconds"),
            minted_by=_os_user(),
            minted_uid=uid,
            local=uid == owner and not _deployment(self.path.parent),
        )
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

    def independence(self, author: str, reviewers: Sequence[str]) -> ReviewIndependence:
        """Tell whether ``reviewers`` (the names of the approving reviewer tokens) are independent of ``author``.

        They are not when a reviewer token of one of those names was minted on this vault in laptop mode by the
        account that owns the workspace (the author's own account when the author works on a local vault), or when
        it is not known where it was minted (a token from before the vault recorded it), or when no reviewer token
        of that name exists. Every reason names the reviewer and the account.

        Parameters
        ----------
        author : str
            Name of the author's analyst token.
        reviewers : sequence of str
            Names of the reviewers whose approvals released the request.
        """
        tokens = self._load()
        by_name: dict[str, list[TokenInfo]] = {}
        for t in tokens:
            by_name.setdefault(t.name, []).append(t)
        author_local = [t for t in by_name.get(author, []) if t.role == "analyst" and t.local]
        reasons = []
        for name in dict.fromkeys(reviewers):
            mine = [t for t in by_name.get(name, []) if t.role == "reviewer"]
            if not mine:
                reasons.append(f"reviewer {name!r} holds no reviewer token of this vault")
            for t in mine:
                if t.local is None:
                    reasons.append(f"reviewer token {name!r} is older than the record of where tokens are minted")
                elif t.local:
                    same = any(a.minted_uid == t.minted_uid for a in author_local)
                    whose = " (the author's own account)" if same else ""
                    reasons.append(
                        f"reviewer token {name!r} was minted on a local vault by OS account {t.minted_by!r}, "
                        f"the owner of the workspace{whose}, who can mint any token there"
                    )
        if author in reviewers:
            reasons.append(f"the author {author!r} is among the reviewers")
        return ReviewIndependence(not reasons, tuple(reasons))

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


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.geteuid()}"


def ensure_client_token(store: TokenStore, path: Path) -> None:
    """Create the workspace owner's analyst token in ``path`` (mode 0600) unless it is there already.

    The vault writes this file when it starts, so that ``sb.connect()`` with no arguments (the laptop mode, where
    the kernel runs as the OS user who owns the workspace) finds its token; the kernel only ever reads it.
    """
    if path.exists():
        return
    name = "".join(ch if ch.isalnum() or ch in "_.@-" else "_" for ch in _os_user())[:64] or "analyst"
    write_private(path, store.create(name, "analyst") + "\n")
