"""Role checks for the vault's routers: a FastAPI dependency per set of roles.

The bearer scheme is declared for the OpenAPI schema; the header itself is checked by
:meth:`TokenStore.authenticate` (malformed or unknown token: 401; valid token with the wrong role: 403).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from sandbox._private.shared.errors import QueryError
from sandbox._private.shared.wire import Forbidden
from sandbox._private.vault.service import VaultService
from sandbox._private.vault.tokens import Role, TokenInfo

from .bodies import RUN_ID_PATTERN

__all__ = ["require", "service_of", "run_id_header"]

_bearer = HTTPBearer(auto_error=False, description="A token from `sandbox vault token create`.")


def service_of(request: Request) -> VaultService:
    service: VaultService = request.app.state.service
    return service


def require(*roles: Role) -> Callable[..., TokenInfo]:
    """Build a dependency that authenticates the caller and checks that its role is one of ``roles``."""

    def dependency(request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> TokenInfo:
        info = service_of(request).tokens.authenticate(request.headers.get("authorization"))
        if info.role not in roles:
            raise Forbidden(
                f"Token {info.name!r} has role {info.role!r}; this endpoint needs {' or '.join(roles)}. "
                "Use a token with that role."
            )
        return info

    return dependency


def run_id_header(
    x_sandbox_run: str | None = Header(None, description="Run id recorded with each charge", max_length=128),
) -> str | None:
    """Return the ``X-Sandbox-Run`` header, checked against :data:`RUN_ID_PATTERN`."""
    import re

    if x_sandbox_run is not None and not re.match(RUN_ID_PATTERN, x_sandbox_run):
        raise QueryError(
            f"X-Sandbox-Run {x_sandbox_run[:40]!r} is not a valid run id: use 1-128 letters, digits or '_.:-'."
        )
    return x_sandbox_run
