"""``sandbox verify``: recompute the audit log's hash chain and every outbox hash, name the first broken link.

The workspace layout used by the gate::

    <workspace>/vault/audit.jsonl   the hash-chained audit log (vault only)
    <workspace>/vault/ledger.sqlite the ledger database; table gate_anchor holds the head (seq, hash) of the log
    <workspace>/vault/audit.head    the same head as a small file (for a PostgreSQL ledger, or no ledger at all)
    <workspace>/outbox/<release>/   released files + manifest.json

The log is checked first (a broken log makes every later entry untrustworthy), then every release folder
against its manifest and against the log's ``release`` events, then the head anchored in the ledger (so a
log whose tail was cut off is caught).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from sandbox._private.shared.layout import WorkspaceLayout

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

    @property
    def ok(self) -> bool:
        """Whether the log, the anchor and the outbox all check out."""
        return self.log.ok and not self.outbox

    @property
    def first_problem(self) -> str | None:
        """Return the first broken link (the log's before the outbox's), or ``None``."""
        if self.log.problem is not None:
            return f"audit log {self.log.path}: {self.log.problem}"
        return str(self.outbox[0]) if self.outbox else None

    def lines(self) -> list[str]:
        """Return a human summary, one line per fact, problems last."""
        out = [
            f"audit log: {self.log.entries} valid entries"
            + (f", head seq {self.log.head.seq} {self.log.head.hash[:16]}" if self.log.head else ""),
            f"outbox: {self.releases} releases",
        ]
        out += [f"note: unfinished release folder {n} (removed when the vault starts)" for n in self.unfinished]
        if self.log.problem is not None:
            out.append(f"BROKEN audit log {self.log.path}: {self.log.problem}")
        out += [f"BROKEN {p}" for p in self.outbox]
        out.append("ok" if self.ok else f"FAILED: first broken link: {self.first_problem}")
        return out


def verify_workspace(workspace: str | Path, expected_head: Head | None = None) -> VerifyReport:
    """Verify the audit log and the outbox of a workspace.

    Parameters
    ----------
    workspace : str or Path
        The workspace folder.
    expected_head : Head, optional
        The head anchored in the ledger database. ``None`` uses the furthest of the SQLite ledger's
        ``gate_anchor`` and ``vault/audit.head``, when they exist.

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
    return VerifyReport(
        str(layout.workspace), log, tuple(problems), releases, tuple(p.name for p in unfinished(layout.outbox))
    )
