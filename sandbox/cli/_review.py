"""``sandbox review``: list, show and decide release requests as a reviewer (over HTTP, with a reviewer token)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import httpx

from .._private import errors as _errors
from .._private.errors import AuthError, SandboxError

_TIMEOUT_S = 120.0


class _Vault:
    """JSON over HTTP to the vault; errors come back as the vault's SandboxError subclass."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=_TIMEOUT_S)

    def close(self) -> None:
        self._http.close()

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            resp = self._http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise SandboxError(
                f"cannot reach the vault at {self.url}: {exc}; is `sandbox vault serve` running?"
            ) from None
        if resp.status_code < 400:
            return resp.json()
        try:
            data = resp.json()
            name, message = str(data["error"]), str(data["message"])
        except (ValueError, KeyError, TypeError):
            name, message = "", f"the vault answered HTTP {resp.status_code}"
        cls = getattr(_errors, name, None)
        if not (isinstance(cls, type) and issubclass(cls, SandboxError)):
            cls = AuthError if resp.status_code in (401, 403) else SandboxError
        raise cls(message)


def _vault_url(url: str | None, workspace: str) -> str:
    if url:
        return url
    try:
        return str(json.loads((Path(workspace) / "vault" / "vault.json").read_text())["url"])
    except (OSError, ValueError, KeyError) as exc:
        raise click.UsageError(
            f"no vault URL: pass --url, set SANDBOX_VAULT_URL, or start the vault of {workspace} ({exc})."
        ) from None


@click.group()
@click.option("--url", envvar="SANDBOX_VAULT_URL", default=None, help="Vault URL (default: the workspace's vault).")
@click.option("--token", envvar="SANDBOX_TOKEN", default=None, help="Reviewer token (or $SANDBOX_TOKEN).")
@click.option("--workspace", default="workspace", show_default=True, type=click.Path(file_okay=False))
@click.pass_context
def review(ctx: click.Context, url: str | None, token: str | None, workspace: str) -> None:
    """Review release requests: list, show, approve, reject, return, comment."""
    lazy = _LazyVault(url, token, workspace)
    ctx.obj = lazy
    ctx.call_on_close(lazy.close)


class _LazyVault:
    """Connects on the first call, so that ``sandbox review list --help`` needs no token or running vault."""

    def __init__(self, url: str | None, token: str | None, workspace: str) -> None:
        self._args = (url, token, workspace)
        self._vault: _Vault | None = None

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        if self._vault is None:
            url, token, workspace = self._args
            if not token:
                raise click.UsageError("a reviewer token is needed: pass --token or set SANDBOX_TOKEN.")
            self._vault = _Vault(_vault_url(url, workspace), token)
        return self._vault.call(method, path, body)

    def close(self) -> None:
        if self._vault is not None:
            self._vault.close()


def _line(r: dict[str, Any]) -> str:
    gate = r["gate"]
    return (
        f"{r['id']}  {r['status']:<14} {r['votes_in']}/{r['required_approvals']} reviews  gate={gate['verdict']:<6} "
        f"eps={gate['total_epsilon']:.3f}  {r['author']}: {r['title']}"
    )


@review.command("list")
@click.option("--all", "everything", is_flag=True, help="Include released, rejected and withdrawn requests.")
@click.pass_obj
def list_requests(vault: _LazyVault, everything: bool) -> None:
    """List the requests waiting for review (or all of them)."""
    rows = vault.call("GET", "/v1/releases" + ("?closed=true" if everything else ""))
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
        detail = (r.get("details") or {}).get(item["id"])
        if detail and item["kind"] == "audit":
            verdict = detail["values"].get("verdict") or {}
            out.append(f"      fairness audit: {verdict.get('status')}; " + "; ".join(verdict.get("reasons", [])))
        if detail:
            led = detail["ledger"]
            out.append(
                f"      provenance: {led['mechanism']}, run {led['run_id'] or '-'}, query {json.dumps(led['query'])}"
            )
    out += [f"vote: {v['reviewer']} {v['decision']} {v['comment']}".rstrip() for v in r["votes"]]
    out += [f"comment: {c['author']}: {c['text']}" for c in r["comments"]]
    return out


@review.command("show")
@click.argument("request_id")
@click.option("--json", "as_json", is_flag=True, help="Print the full JSON.")
@click.pass_obj
def show(vault: _LazyVault, request_id: str, as_json: bool) -> None:
    """Show a request: items, checks, fairness verdict, privacy spend, provenance, votes and comments."""
    r = vault.call("GET", f"/v1/releases/{request_id}")
    click.echo(json.dumps(r, indent=2) if as_json else "\n".join(_show(r)))


def _decide(action: str, needs_comment: bool) -> click.Command:
    @click.command(
        action, help=f"{action.capitalize()} a request" + (" (a comment is required)." if needs_comment else ".")
    )
    @click.argument("request_id")
    @click.option("-m", "--comment", default="", required=needs_comment, help="Why (shown to the author).")
    @click.pass_obj
    def command(vault: _LazyVault, request_id: str, comment: str) -> None:
        r = vault.call("POST", f"/v1/releases/{request_id}/actions", {"action": action, "comment": comment})
        click.echo(f"{action}: {_line(r)}")

    return command


for _action, _needs in (("approve", False), ("reject", True), ("return", True), ("comment", True)):
    review.add_command(_decide(_action, _needs))
