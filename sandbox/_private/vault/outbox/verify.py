"""``sandbox verify``: the journal's chain and MACs, every outbox hash, and the ledger against the journal.

The workspace layout used by the gate::

    <workspace>/vault/audit.jsonl   the hash-chained, keyed journal (vault only)
    <workspace>/vault/journal.key   the journal's HMAC key (mode 0600, the vault's OS user only)
    <workspace>/vault/ledger.sqlite the ledger database; table gate_anchor holds the head (seq, hash) of the log
    <workspace>/vault/audit.head    the same head as a small file (for a PostgreSQL ledger, or no ledger at all)
    <workspace>/outbox/<release>/   released files + manifest.json

The log is checked first (a broken log makes every later entry untrustworthy): chain, MACs under the key, and
the head anchored in the ledger (so a log whose tail was cut off is caught). Then every release folder against
its manifest and the log's ``release`` events. Then the ledger against the log
(:mod:`sandbox._private.vault.ledger.crosscheck`): a ledger restored from an older copy, missing charges the
journal logged, fails and names them. The head printed (seq and full hash) is what an operator keeps with each
backup and compares on restore (``--head-seq``/``--head-hash``).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from sandbox._private.shared.layout import WorkspaceLayout
from sandbox._private.vault.ledger.crosscheck import LedgerCheck, check_ledger

from .files import RELEASE_EVENT, OutboxProblem, unfinished, verify_outbox
from .journal import Head, LogReport, read_entries, verify_log

__all__ = ["VerifyReport", "verify_workspace", "read_anchor", "read_db_anchor", "write_anchor"]


def write_anchor(path: str | Path, head: Head) -> None:
    """Record ``head`` atomically in a small JSON file (used when the caller has no ledger database)."""
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps({"seq": head.seq, "hash": head.hash}))
    tmp.replace(p)


def read_anchor(path: str | Path) -> Head | None:
    """Return the head recorded by :func:`write_anchor`, or ``None`` when there is none."""
    try:
        data = json.loads(Path(path).read_text())
        return Head(int(data["seq"]), str(data["hash"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def read_db_anchor(ledger: str | Path) -> Head | None:
    """Return the head anchored in a SQLite ledger's ``gate_anchor`` table (read-only), or ``None``."""
    p = Path(ledger)
    if not p.is_file():
        return None
    try:
        conn = sqlite3.connect(f"{p.resolve().as_uri()}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT seq, hash FROM gate_anchor WHERE id = 1").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    return None if row is None else Head(int(row[0]), str(row[1]))


def _best_anchor(*heads: Head | None) -> Head | None:
    """Return the anchor furthest along (rewriting one copy backwards cannot hide a cut tail)."""
    found = [h for h in heads if h is not None]
    return max(found, key=lambda h: h.seq) if found else None


@dataclass(frozen=True)
class VerifyReport:
    """Outcome of :func:`verify_workspace`."""

    workspace: str
    log: LogReport
    outbox: tuple[OutboxProblem, ...]
    releases: int
    unfinished: tuple[str, ...]
    ledger: LedgerCheck | None = None

    @property
    def ok(self) -> bool:
        """Whether the log, the anchor, the outbox and the ledger all check out."""
        return self.log.ok and not self.outbox and (self.ledger is None or self.ledger.ok)

    @property
    def first_problem(self) -> str | None:
        """Return the first broken link (the log's, then the outbox's, then the ledger's), or ``None``."""
        if self.log.problem is not None:
            return f"audit log {self.log.path}: {self.log.problem}"
        if self.outbox:
            return str(self.outbox[0])
        if self.ledger is not None and self.ledger.problems:
            return f"ledger {self.ledger.target}: {self.ledger.problems[0]}"
        return None

    def lines(self) -> list[str]:
        """Return a human summary, one line per fact, problems last."""
        head = self.log.head
        out = [
            f"audit log: {self.log.entries} valid entries"
            + (f", head seq {head.seq} {head.hash}" if head else "")
            + (" (keyed)" if self.log.keyed else ""),
            f"outbox: {self.releases} releases",
        ]
        if self.ledger is not None:
            out += self.ledger.lines()
        out += [f"note: unfinished release folder {n} (removed when the vault starts)" for n in self.unfinished]
        if self.log.problem is not None:
            out.append(f"BROKEN audit log {self.log.path}: {self.log.problem}")
        out += [f"BROKEN {p}" for p in self.outbox]
        if self.ledger is not None:
            out += [f"BROKEN ledger {self.ledger.target}: {p}" for p in self.ledger.problems]
        if head is not None and self.ok:
            out.append(f"keep with your backup: --head-seq {head.seq} --head-hash {head.hash}")
        out.append("ok" if self.ok else f"FAILED: first broken link: {self.first_problem}")
        return out


def ledger_location(layout: WorkspaceLayout, ledger_url: str | None = None) -> str:
    """Return the workspace's ledger: the URL given, else the one the vault remembers, else its SQLite file."""
    if ledger_url:
        return ledger_url
    try:
        remembered = json.loads(layout.config.read_text(encoding="utf-8")).get("ledger_url")
    except (OSError, ValueError, AttributeError):
        remembered = None
    return str(remembered) if remembered else str(layout.ledger)


def verify_workspace(
    workspace: str | Path, expected_head: Head | None = None, *, ledger_url: str | None = None, ledger: bool = True
) -> VerifyReport:
    """Verify the journal, the outbox and the ledger of a workspace.

    Parameters
    ----------
    workspace : str or Path
        The workspace folder.
    expected_head : Head, optional
        The head anchored in the ledger database. ``None`` uses the furthest of the SQLite ledger's
        ``gate_anchor`` and ``vault/audit.head``, when they exist.
    ledger_url : str, optional
        The ledger to check against the journal (default: the workspace's, see :func:`ledger_location`).
    ledger : bool
        Check the ledger against the journal (``False``: journal and outbox only).

    Returns
    -------
    VerifyReport
        ``ok`` is true only if every entry, link, manifest and file matches; ``first_problem`` names the first
        broken link.
    """
    layout = WorkspaceLayout(Path(workspace))
    head = expected_head or _best_anchor(read_db_anchor(layout.ledger), read_anchor(layout.journal_head))
    log = verify_log(layout.journal, head)
    entries = read_entries(layout.journal)[: log.entries] if not log.ok else read_entries(layout.journal)
    problems = verify_outbox(layout.outbox, entries)
    releases = sum(1 for e in entries if e.type == RELEASE_EVENT)
    checked = check_ledger(ledger_location(layout, ledger_url), entries) if ledger else None
    return VerifyReport(
        str(layout.workspace), log, tuple(problems), releases, tuple(p.name for p in unfinished(layout.outbox)),
        checked,
    )  # fmt: skip
