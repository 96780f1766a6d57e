"""``sandbox verify``: check the audit log's hash chain and every outbox file."""

from __future__ import annotations

import click

from sandbox._private.shared.errors import IntegrityError
from sandbox._private.vault.outbox.journal import Head
from sandbox._private.vault.outbox.verify import verify_workspace

from ._options import CLI_FIX, existing_workspace, workspace_option

_FIX = "There is nothing to verify. " + CLI_FIX


@click.command("verify")
@workspace_option("The workspace whose vault/audit.jsonl and outbox/ are checked (or $SANDBOX_WORKSPACE).")
@click.option(
    "--head-seq", type=int, default=None, help="Expected head seq (the one kept with the backup you restored)."
)
@click.option("--head-hash", default=None, help="Expected head hash (with --head-seq).")
@click.option("--ledger-url", envvar="SANDBOX_LEDGER_URL", help="postgresql://... (default: the vault's).")
def verify(workspace: str, head_seq: int | None, head_hash: str | None, ledger_url: str | None) -> None:
    """Check the journal's chain and MACs, the outbox hashes and the ledger against the journal.

    Exits 2 and names the first broken link. Keep the head it prints with each backup; after a restore, run it
    with --head-seq/--head-hash of that backup.
    """
    if (head_seq is None) != (head_hash is None):
        raise click.UsageError("give both --head-seq and --head-hash, or neither.")
    head = Head(head_seq, head_hash) if head_seq is not None and head_hash is not None else None
    report = verify_workspace(existing_workspace(workspace, _FIX), head, ledger_url=ledger_url)
    for line in report.lines():
        click.echo(line, err=line.startswith(("BROKEN", "FAILED")))
    if not report.ok:
        raise IntegrityError(f"verify failed; first broken link: {report.first_problem}")
