"""``sandbox review``: list, show and decide release requests as a reviewer (over HTTP, with a reviewer token)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from typing import Any

import click

from .._private.kernel.review import ACTIONS, Reviewer, connect_reviewer
from .._private.shared.errors import AuthError, NotFoundError
from ._options import existing_workspace

_REQUEST_ID = re.compile(r"^req_[0-9a-f]{16}$")


def _connection_options(envvars: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add ``--url``, ``--token`` and ``--workspace`` to the group (with environment variables) or a subcommand.

    On every subcommand they come again without defaults, so they work before or after the subcommand's name.
    """

    def env(name: str) -> str | None:
        return name if envvars else None

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        f = click.option(
            "--workspace",
            default="workspace" if envvars else None,
            show_default=envvars,
            envvar=env("SANDBOX_WORKSPACE"),
            type=click.Path(file_okay=False),
            help="Workspace whose running vault to use (or $SANDBOX_WORKSPACE)." if envvars else "As for review.",
        )(f)
        f = click.option(
            "--token",
            envvar=env("SANDBOX_TOKEN"),
            default=None,
            help="Reviewer token (or $SANDBOX_TOKEN)." if envvars else "As for review.",
        )(f)
        return click.option(
            "--url",
            envvar=env("SANDBOX_VAULT_URL"),
            default=None,
            help="Vault URL (default: the workspace's vault)." if envvars else "As for review.",
        )(f)

    return decorate


@click.group()
@_connection_options(envvars=True)
@click.pass_context
def review(ctx: click.Context, url: str | None, token: str | None, workspace: str) -> None:
    """Review release requests: list, show, report, approve, reject, return, comment.

    --url, --token and --workspace may come before or after the subcommand (``sandbox review list --all
    --workspace W``); after it they win.
    """
    lazy = _LazyReviewer(url, token, workspace)
    ctx.obj = lazy
    ctx.call_on_close(lazy.close)


class _LazyReviewer:
    """Connects on the first call, so that ``sandbox review list --help`` needs no token or running vault."""

    def __init__(self, url: str | None, token: str | None, workspace: str) -> None:
        self._args = (url, token, workspace)
        self._reviewer: Reviewer | None = None

    def override(self, url: str | None, token: str | None, workspace: str | None) -> _LazyReviewer:
        """Let options given after the subcommand win over the group's."""
        old_url, old_token, old_workspace = self._args
        self._args = (url or old_url, token or old_token, workspace or old_workspace)
        return self

    def get(self) -> Reviewer:
        if self._reviewer is None:
            url, token, workspace = self._args
            if not (token or os.environ.get("SANDBOX_TOKEN")):
                raise AuthError(
                    "A reviewer token is needed: --token TOKEN (before or after the subcommand) or "
                    "SANDBOX_TOKEN=$(sandbox vault token create --role reviewer --name YOUR_NAME "
                    f"--workspace {workspace})."
                )
            if not (url or os.environ.get("SANDBOX_VAULT_URL")):
                _require_running_vault(workspace)
            self._reviewer = connect_reviewer(workspace, url=url, token=token)
        return self._reviewer

    def close(self) -> None:
        if self._reviewer is not None:
            self._reviewer.close()


def _require_running_vault(workspace: str) -> None:
    """Refuse, with the command that fixes it, a workspace that is missing or whose vault is not running."""
    from sandbox._private.shared.layout import WorkspaceLayout

    path = existing_workspace(
        workspace,
        "Pass --workspace PATH (or set SANDBOX_WORKSPACE) to the folder that holds "
        "vault/, or --url URL for a deployed vault.",
    )
    if WorkspaceLayout(path).read_discovery() is None:
        raise NotFoundError(
            f"The vault of {path} is not running. Start it: sandbox vault start --workspace {workspace} "
            "(stop it later with sandbox vault stop), or pass --url URL for a deployed vault."
        )


def _request_id(value: str) -> str:
    if not _REQUEST_ID.match(value):
        shown = "an empty id" if not value else f"{value!r}"
        raise click.BadParameter(
            f"{shown} is not a request id (req_ followed by 16 hex digits); `sandbox review list --all` shows them.",
            param_hint="REQUEST_ID",
        )
    return value


def _line(r: dict[str, Any]) -> str:
    gate = r["gate"]
    exact = (r.get("reviewer_findings") or {}).get("disclosure_verdict", "-")
    return (
        f"{r['id']}  {r['status']:<14} {r['votes_in']}/{r['required_approvals']} reviews  gate={gate['verdict']:<6} "
        f"exact={exact:<6} eps={gate['total_epsilon']:.3f}  {r['author']}: {r['title']}"
    )


@review.command("list")
@click.option("--all", "everything", is_flag=True, help="Include released, rejected and withdrawn requests.")
@_connection_options(envvars=False)
@click.pass_obj
def list_requests(
    vault: _LazyReviewer, everything: bool, url: str | None, token: str | None, workspace: str | None
) -> None:
    """List the requests waiting for review (or all of them)."""
    rows = vault.override(url, token, workspace).get().requests(closed=everything)
    for r in rows:
        click.echo(_line(r))
    if not rows:
        click.echo("no requests")


def _show(r: dict[str, Any]) -> list[str]:
    gate = r["gate"]
    out = [_line(r), f"purpose: {r['purpose']}", f"justification: {r['justification'] or '-'}"]
    out += [f"gate: {reason}" for reason in gate["reasons"]]
    for item in gate["items"]:
        out.append(f"  {item['kind']:<9} {item['id']}  {item['dataset']}  eps={item['epsilon']:g}  {item['verdict']}")
        out += [f"      - {reason}" for reason in item["reasons"]]
        exact = {f["id"]: f for f in (r.get("reviewer_findings") or {}).get("items", [])}.get(item["id"])
        if exact:  # reviewers only: the rules on the true counts
            out.append(f"      exact disclosure checks: {exact['disclosure_verdict']}")
            out += [f"      ! {reason}" for reason in exact["reasons"]]
        detail = (r.get("details") or {}).get(item["id"])
        if detail and item["kind"] == "audit":
            verdict = detail["values"].get("verdict") or {}
            out.append(f"      fairness audit: {verdict.get('status')}; " + "; ".join(verdict.get("reasons", [])))
        if detail:
            led = detail["ledger"]
            out.append(
                f"      provenance: {led['mechanism']}, run {led['run_id'] or '-'}, query {json.dumps(led['query'])}"
            )
    flags = (r.get("reviewer_findings") or {}).get("flags", [])
    out += [
        f"flag: {f['analyst']} on {f['dataset']}, {f['day']}: {len(f['request_ids'])} blocked or failing" for f in flags
    ]
    out += [f"vote: {v['reviewer']} {v['decision']} {v['comment']}".rstrip() for v in r["votes"]]
    out += [f"comment: {c['author']}: {c['text']}" for c in r["comments"]]
    return out


@review.command("show")
@click.argument("request_id")
@click.option("--json", "as_json", is_flag=True, help="Print the full JSON.")
@_connection_options(envvars=False)
@click.pass_obj
def show(
    vault: _LazyReviewer, request_id: str, as_json: bool, url: str | None, token: str | None, workspace: str | None
) -> None:
    """Show a request: items, checks, fairness verdict, privacy spend, provenance, votes and comments."""
    request_id = _request_id(request_id)  # before connecting: a malformed id needs no vault to be refused
    r = vault.override(url, token, workspace).get().request(request_id)
    click.echo(json.dumps(r, indent=2) if as_json else "\n".join(_show(r)))


@review.command("report")
@click.argument("request_id")
@click.option("--lang", type=click.Choice(["nl", "en", "both"]), default="both", show_default=True)
@click.option("--out", "out", default="review_reports", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the reports.")  # fmt: skip
@click.pass_obj
def report(vault: _LazyReviewer, request_id: str, lang: str, out: str) -> None:
    """Write the fairness reports of a request's audit items (Dutch and/or English HTML) to a folder."""
    langs = ("nl", "en") if lang == "both" else (lang,)
    paths = vault.get().save_reports(request_id, out, langs)
    for path in paths:
        click.echo(str(path))
    if not paths:
        click.echo(f"request {request_id} has no fairness audit item")


def _decide(action: str, needs_comment: bool) -> click.Command:
    @click.command(
        action, help=f"{action.capitalize()} a request" + (" (a comment is required)." if needs_comment else ".")
    )
    @click.argument("request_id")
    @click.option("-m", "--comment", default="", required=needs_comment, help="Why (shown to the author).")
    @_connection_options(envvars=False)
    @click.pass_obj
    def command(
        vault: _LazyReviewer, request_id: str, comment: str, url: str | None, token: str | None, workspace: str | None
    ) -> None:
        request_id = _request_id(request_id)
        r = vault.override(url, token, workspace).get().act(request_id, action, comment)
        click.echo(f"{action}: {_line(r)}")

    return command


for _action, _needs in ACTIONS.items():
    review.add_command(_decide(_action, _needs))


@review.command("open")
@click.option("--print-only", is_flag=True, help="Print the one-time link instead of opening a browser.")
@click.pass_obj
def open_page(vault: _LazyReviewer, print_only: bool) -> None:
    """Open the review page with a one-time login link, after checking that the server is the vault."""
    from .._private.kernel.review_login import open_review_page

    url, token, workspace = vault._args
    click.echo(open_review_page(workspace, url=url, token=token, browser=not print_only))
