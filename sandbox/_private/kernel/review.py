"""The reviewer's side: list, read and decide release requests over the vault's HTTP API.

:class:`Reviewer` is what ``sandbox review`` and notebook 04 use; it goes through the same :class:`.Transport` as
the analyst's handles, with a reviewer token. The vault checks every action against the review workflow (an
author never approves their own request; a model needs two approvals by default) and every decision's comment
against the comment rule (approve, reject and return need reasons of substance, not "ok"). :meth:`Reviewer.report`
fetches the fairness report of an audit item in Dutch or English, rendered by the vault from the audit's DP values.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from sandbox._private.shared.errors import AuthError, NotFoundError, OutputPathError
from sandbox._private.shared.layout import WorkspaceLayout

from .transport import Transport

__all__ = ["Reviewer", "connect_reviewer", "ACTIONS", "REPORT_LANGS"]

#: Decisions and other actions a reviewer may take, and whether each needs a comment (all do).
ACTIONS: dict[str, bool] = {"approve": True, "reject": True, "return": True, "comment": True}
#: Languages of the fairness reports.
REPORT_LANGS = ("nl", "en")
_TIMEOUT_S = 120.0


class Reviewer:
    """A reviewer's connection to one vault.

    Parameters
    ----------
    url : str
        The vault's URL.
    token : str
        A reviewer token (``sandbox vault token create --role reviewer --name NAME``).
    """

    def __init__(self, url: str, token: str) -> None:
        self._t = Transport(url, token, timeout=_TIMEOUT_S)
        self.url = self._t.url

    def __repr__(self) -> str:
        return f"Reviewer({self.url})"

    def __enter__(self) -> Reviewer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection."""
        self._t.close()

    def requests(self, *, closed: bool = False) -> list[dict[str, Any]]:
        """Return the requests waiting for review (with ``closed=True`` also released, rejected and withdrawn ones)."""
        return list(self._t.get("/v1/releases", {"closed": "true" if closed else "false"}))

    def request(self, request_id: str) -> dict[str, Any]:
        """Return one request with its gate checks, privacy spend, provenance, item details, votes and comments."""
        if not request_id:
            raise NotFoundError("No request id given; `sandbox review list` shows the ids of open requests.")
        return dict(self._t.get(f"/v1/releases/{request_id}"))

    def act(self, request_id: str, action: str, comment: str = "") -> dict[str, Any]:
        """Take ``action`` (approve, reject, return, comment) on a request; returns the request afterwards.

        Approve, reject and return need a comment of substance: what you checked and why (the vault refuses
        an empty comment, "ok", "lgtm", "prima" and a copy of another approval, with a message that says so).
        """
        if not request_id:
            raise NotFoundError("No request id given; `sandbox review list` shows the ids of open requests.")
        return dict(self._t.post(f"/v1/releases/{request_id}/actions", {"action": action, "comment": comment}))

    def approve(self, request_id: str, comment: str) -> dict[str, Any]:
        """Approve a request; ``comment`` says what you checked and why it may leave."""
        return self.act(request_id, "approve", comment)

    def reject(self, request_id: str, comment: str) -> dict[str, Any]:
        """Reject a request (the comment says why)."""
        return self.act(request_id, "reject", comment)

    def send_back(self, request_id: str, comment: str) -> dict[str, Any]:
        """Return a request to its author (the comment says what to change)."""
        return self.act(request_id, "return", comment)

    def report(self, request_id: str, item_id: str, lang: str = "en") -> str:
        """Return the fairness report (HTML) of audit ``item_id`` of a request, in ``lang`` ('nl' or 'en').

        The vault renders it from the audit's stored DP values, headed by the request, model, target, features,
        dataset version, author and policy it belongs to.
        """
        if lang not in REPORT_LANGS:
            raise NotFoundError(f"no report language {lang!r}; reports are in {' and '.join(REPORT_LANGS)}.")
        body = self._t.get(f"/v1/releases/{request_id}/items/{item_id}/report", {"lang": lang})
        return str(body["html"])

    def save_reports(self, request_id: str, folder: str | Path, langs: tuple[str, ...] = REPORT_LANGS) -> list[Path]:
        """Write the fairness reports of every audit item of a request to ``folder``; return the files.

        Files are named ``<request>_<audit item>_fairness_report_<lang>.html``.
        """
        out = Path(folder)
        items = [i["id"] for i in self.request(request_id)["gate"]["items"] if i["kind"] == "audit"]
        pages = [  # every report first: a refusal of the vault leaves nothing half-written
            (out / f"{request_id}_{item_id}_fairness_report_{lang}.html", self.report(request_id, item_id, lang))
            for item_id in items
            for lang in langs
        ]
        written = []
        try:
            out.mkdir(parents=True, exist_ok=True)
            for path, page in pages:
                path.write_text(page, encoding="utf-8")
                written.append(path)
        except OSError as exc:
            raise OutputPathError(
                f"cannot write the reports to {str(out)!r}: {exc.strerror}; choose a writable folder."
            ) from None
        return written


def _workspace_vault_url(workspace: str | Path) -> str | None:
    try:
        info = json.loads(WorkspaceLayout(Path(workspace).resolve()).discovery.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    url = info.get("url") if isinstance(info, dict) else None
    return str(url) if url else None


def connect_reviewer(
    workspace: str | Path = "workspace", *, url: str | None = None, token: str | None = None
) -> Reviewer:
    """Connect as a reviewer.

    Parameters
    ----------
    workspace : str or Path
        Whose local vault to use when no ``url`` (and no ``SANDBOX_VAULT_URL``) is given.
    url : str, optional
        The vault (default ``$SANDBOX_VAULT_URL``, else the workspace's running local vault).
    token : str, optional
        Reviewer token (default ``$SANDBOX_TOKEN``).

    Raises
    ------
    AuthError
        No token given.
    NotFoundError
        No URL given and the workspace has no running vault.
    """
    token = token or os.environ.get("SANDBOX_TOKEN")
    if not token:
        raise AuthError("A reviewer token is needed: pass token=... (or --token) or set SANDBOX_TOKEN.")
    url = url or os.environ.get("SANDBOX_VAULT_URL") or _workspace_vault_url(workspace)
    if not url:
        raise NotFoundError(
            f"No vault URL: pass url=... (or --url), set SANDBOX_VAULT_URL, or start the vault of {workspace}."
        )
    return Reviewer(url, token)
