"""Open the review page without typing a token into it: ``sandbox review open``.

A browser cannot check who answers on a loopback port, so a reviewer who types a token into a page on the vault's
address may be typing it into whatever program holds that port. Instead the reviewer's own tools do the checking:

1. connect to the vault with the reviewer token through :class:`~.transport.Transport`, which proves the server's
   OS account before the token is sent (:mod:`.trust`), and ask it for a one-time login code (60 s, one use);
2. check the review page's address the same way (without a token): in a deployment the vault's Unix socket serves
   the library and a loopback port serves the browser, and both must belong to the same account;
3. open ``/review/enter#code=...``: the page trades the code for a browser session (the code is in the URL
   fragment, which the browser never sends to a server).
"""

from __future__ import annotations

import os
import webbrowser
from pathlib import Path

from sandbox._private.shared.errors import AuthError, NotFoundError, SandboxError

from .transport import Transport

__all__ = ["review_page_link", "open_review_page"]


def review_page_link(url: str, token: str, *, vault_uid: int | None = None) -> str:
    """Return a one-time link to the review page, after proving that both addresses belong to the vault.

    Parameters
    ----------
    url : str
        The vault (``http://127.0.0.1:PORT`` or ``unix:/path``).
    token : str
        A reviewer token.
    vault_uid : int, optional
        The vault's OS account (a local vault: the workspace owner's).

    Raises
    ------
    VaultIdentityError
        The server at ``url`` (or at the page's address) is not the vault; nothing was sent to it.
    """
    with Transport(url, token, vault_uid=vault_uid, timeout=30) as vault:
        login = vault.post("/v1/review/login", {})
        proven = vault.expectation.uid
        page = login.get("page_url") or (None if vault.expectation.address.uds else vault.url)
    if not page:
        raise SandboxError(
            f"The vault at {url} serves no review page: it listens on a Unix socket only. Ask the operator to serve "
            "it with a loopback port as well (`sandbox vault serve --socket ... --port N`)."
        )
    if page.rstrip("/") != url.rstrip("/"):
        with Transport(page, None, vault_uid=proven, timeout=30) as check:
            check.get("/v1/health")  # a new connection: its server must run as the vault's account
    return page.rstrip("/") + str(login["path"])


def open_review_page(
    workspace: str | Path = "workspace", *, url: str | None = None, token: str | None = None, browser: bool = True
) -> str:
    """Open (and return) a one-time link to the review page of the vault at ``url`` or of ``workspace``."""
    from .launch import local_vault_uid
    from .review import _workspace_vault_url

    token = token or os.environ.get("SANDBOX_TOKEN")
    if not token:
        raise AuthError("A reviewer token is needed: pass token=... (or --token) or set SANDBOX_TOKEN.")
    explicit = url or os.environ.get("SANDBOX_VAULT_URL")
    target = explicit or _workspace_vault_url(workspace)
    if not target:
        raise NotFoundError(
            f"No vault URL: pass url=... (or --url), set SANDBOX_VAULT_URL, or start the vault of {workspace}."
        )
    link = review_page_link(target, token, vault_uid=None if explicit else local_vault_uid(workspace))
    if browser:
        webbrowser.open(link)
    return link
