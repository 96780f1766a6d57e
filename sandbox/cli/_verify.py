"""``sandbox verify``: check the audit log's hash chain and every outbox file."""

from __future__ import annotations

from pathlib import Path

import click

from sandbox._private.shared.errors import IntegrityError, NotFoundError
from sandbox._private.vault.outbox.journal import Head
from sandbox._private.vault.outbox.verify import verify_workspace


def _existing_workspace(workspace: str) -> Path:
    """Return the workspace folder; refuse one without a vault (nothing there could be verified)."""
    path = Path(workspace).resolve()
    if not (path / "vault").is_dir():
        where = "does not exist" if not path.exists() else "has no vault/ folder"
        raise NotFoundError(
            f"No sandbox workspace at {path} (it {where}), so there is nothing to verify. Pass --workspace PATH "
            "(or set SANDBOX_WORKSPACE) to the folder that holds vault/audit.jsonl and outbox/."
        )
    return path


@click.command("verify")
@click.option(
    "--workspace",
    default="workspace",
    show_default=True,
    envvar="SANDBOX_WORKSPACE",
    type=click.Path(file_okay=False),
    help="The workspace whose vault/audit.jsonl and outbox/ are checked (or $SANDBOX_WORKSPACE).",
)
@click.option("--head-seq", type=int, default=None, help="Expected head seq (as anchored in the ledger).")
@click.option("--head-hash", default=None, help="Expected head hash (with --head-seq).")
def verify(workspace: str, head_seq: int | None, head_hash: str | None) -> None:
    """Recompute the audit log's chain and the outbox hashes; exit 2 and name the first broken link."""
    if (head_seq is None) != (head_hash is None):
        raise click.UsageError("give both --head-seq and --head-hash, or neither.")
    head = Head(head_seq, head_hash) if head_seq is not None and head_hash is not None else None
    report = verify_workspace(_existing_workspace(workspace), head)
    for line in report.lines():
        click.echo(line, err=line.startswith(("BROKEN", "FAILED")))
    if not report.ok:
        raise IntegrityError(f"verify failed; first broken link: {report.first_problem}")
