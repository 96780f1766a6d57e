"""Charges per second of the ledger alone: 16 client processes charging distinct small queries at once.

Every client opens its own :class:`~sandbox._private.vault.ledger.ledger.Ledger` on one database and calls
``Ledger.charge(..., compute=)`` in a loop for ``--seconds``, each time with a new query key and a compute that
returns a tiny answer at once (so the figure is the ledger's, not the DP engine's). The same clients run against
the ledger of a baseline source tree (``--baseline-src``; by default ``main`` exported with ``git archive``) in the
same run, and the ratio is printed. Backends: SQLite (WAL, ``synchronous=FULL``) and a throw-away PostgreSQL
server started here with ``fsync=on`` and ``synchronous_commit=on`` (its defaults).

Variants of the new ledger: ``plain`` is the ledger alone in 16 processes; ``threads`` runs the 16 clients as
threads of one process (as the vault's request threads are); ``journal`` and ``journal-threads`` also append each
charge to the keyed journal before it returns (what the vault does).

The physical floor printed beside: the rate of ``fdatasync`` on an appended file in the same folder (what one
durable commit costs), and how many of those one charge needs.

Run: ``.venv/bin/python -m benchmarks.bench_ledger [--seconds 5] [--processes 16] [--backends sqlite,postgresql]``.
The issue's target for the whole vault (HTTP included) is 500 charges/s; the ledger alone must stay well above it.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET = 500.0
ROOT = Path(__file__).resolve().parents[1]

_WORKER = r"""
import json, os, sys, threading, time
src, target, seconds, tag, threads, journal = sys.argv[1:7]
sys.path.insert(0, src)
from sandbox._private.vault.ledger.ledger import ComputedAnswer, Ledger
ledger = Ledger(target)
if journal != "-":
    from sandbox._private.vault.outbox.journal import AuditLog, GroupAppender
    ledger.attach_journal(GroupAppender(AuditLog(journal)))
ds = ledger.dataset("households")
answer = ComputedAnswer({"values": [1.0]}, {"true_count": [1]}, "geometric")
counts = []
print("ready", flush=True)
start = float(sys.stdin.readline())  # the parent sends the start instant once every client is ready

def run(t):
    n = 0
    time.sleep(max(0.0, start - time.time()))
    end = start + float(seconds)
    while time.time() < end:
        ledger.charge(ds, kind="aggregate", query_key=f"{tag}-{t}-{n}", query={"n": n}, epsilon=1e-6, delta=0.0,
                      analyst="a", run_id=None, compute=lambda: answer)
        n += 1
    counts.append(n)

cpu = time.process_time()
ts = [threading.Thread(target=run, args=(i,)) for i in range(int(threads))]
for t in ts: t.start()
for t in ts: t.join()
print(json.dumps([sum(counts), time.process_time() - cpu]))
"""

_SETUP = r"""
import sys
src, target = sys.argv[1:3]
sys.path.insert(0, src)
from sandbox._private.vault.ledger.ledger import DatasetRecord, Ledger
ledger = Ledger(target)
ledger.add_dataset(DatasetRecord("households", 1, "f" * 64, "s" * 64, "{}", "/nowhere", 1e9, 1e-6, "now"))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Postgres:
    """A throw-away PostgreSQL cluster with durable commits (fsync on, synchronous_commit on)."""

    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found:
            raise SystemExit("PostgreSQL is not installed: run `make sysdeps`.")
        self.bin = Path(found[-1]).parent
        self.base = Path(tempfile.mkdtemp(prefix="bench-pg-", dir=os.environ.get("BENCH_DIR")))
        os.chmod(self.base, 0o755)
        if os.geteuid() == 0:
            shutil.chown(self.base, "postgres", "postgres")
        self.port = _free_port()
        self._run("initdb", "-D", str(self.base / "data"), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        opts = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on"
        self._run("pg_ctl", "-D", str(self.base / "data"), "-o", opts, "-l", str(self.base / "pg.log"), "-w", "start")
        self._n = 0

    def _run(self, *args: str) -> None:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    def fresh(self) -> str:
        import psycopg

        self._n += 1
        name = f"bench{self._n}"
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.base / "data"), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.base, ignore_errors=True)


def _baseline_src(ref: str, work: Path) -> Path:
    out = work / f"src-{ref.replace('/', '_')}"
    out.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "sandbox"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive.stdout, check=True)
    return out


def _target(backend: str, work: Path, pg: _Postgres | None, label: str) -> str:
    if backend == "postgresql":
        assert pg is not None
        return pg.fresh()
    d = work / label
    d.mkdir()
    return str(d / "ledger.sqlite")


def _run(src: Path, target: str, processes: int, threads: int, seconds: float, journal: str) -> tuple[float, float]:
    """Charges per second, and the clients' CPU milliseconds per charge while charging (not the server's)."""
    subprocess.run([sys.executable, "-c", _SETUP, str(src), target], check=True)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(src), target, str(seconds), f"p{i}", str(threads), journal],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(processes)
    ]
    for p in procs:  # every client has imported the sandbox and opened the ledger
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    start = time.time() + 0.5
    for p in procs:
        assert p.stdin is not None
        p.stdin.write(f"{start}\n")
        p.stdin.flush()
    total, cpu = 0, 0.0
    for p in procs:
        out, _ = p.communicate(timeout=600)
        if p.returncode != 0:
            raise SystemExit(f"a benchmark client failed (exit {p.returncode})")
        n, used = json.loads(out)
        total, cpu = total + int(n), cpu + float(used)
    return total / seconds, cpu / max(total, 1) * 1e3


def _fdatasync_rate(folder: Path, seconds: float = 1.0) -> float:
    path = folder / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    n, end = 0, time.perf_counter() + seconds
    try:
        while time.perf_counter() < end:
            os.write(fd, b"x" * 256)
            os.fdatasync(fd)
            n += 1
    finally:
        os.close(fd)
        path.unlink()
    return n / seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--processes", type=int, default=16)
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--baseline", default="main", help="git ref of the baseline ledger ('none' to skip)")
    ap.add_argument("--variants", default="plain,threads,journal,journal-threads")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-ledger-", dir=os.environ.get("BENCH_DIR")))
    pg = _Postgres() if "postgresql" in args.backends else None
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} (1/5/15 min)")
    print(f"fdatasync of an appended file in {work}: {_fdatasync_rate(work):.0f}/s")
    worst = 0
    try:
        base = None if args.baseline == "none" else _baseline_src(args.baseline, work)
        for backend in args.backends.split(","):
            before = None
            if base is not None:
                before, cpu = _run(base, _target(backend, work, pg, "base"), args.processes, 1, args.seconds, "-")
                print(
                    f"{backend:10s} {args.baseline:>15s}   {args.processes} processes x 1 thread: "
                    f"{before:6.0f} charges/s  (client CPU {cpu:.2f} ms/charge)"
                )
            for variant in args.variants.split(","):
                procs, threads = (1, args.processes) if variant.endswith("threads") else (args.processes, 1)
                journal = "-"
                if variant.startswith("journal"):
                    (work / f"j-{backend}-{variant}").mkdir()
                    journal = str(work / f"j-{backend}-{variant}" / "audit.jsonl")
                label = f"{backend}-{variant}"
                rate, cpu = _run(ROOT, _target(backend, work, pg, label), procs, threads, args.seconds, journal)
                ratio = f"  {rate / before:5.1f}x {args.baseline}" if before else ""
                shape = f"{procs} process{'es' if procs > 1 else ''} x {threads} thread{'s' if threads > 1 else ''}"
                verdict = "ok" if rate >= TARGET else f"BELOW {TARGET:.0f}"
                print(
                    f"{backend:10s} {variant:>15s}   {shape}: {rate:6.0f} charges/s{ratio}  [{verdict}]"
                    f"  (client CPU {cpu:.2f} ms/charge)"
                )
                worst = max(worst, 0 if rate >= TARGET else 1)
    finally:
        if pg is not None:
            pg.stop()
        shutil.rmtree(work, ignore_errors=True)
    return worst


if __name__ == "__main__":
    sys.exit(main())
