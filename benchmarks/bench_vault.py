"""The vault as a service, end to end over HTTP, beside today's code (``--baseline``, default main's f9eeb98).

Both vaults are real ``sandbox vault serve`` processes started here, each from its own source tree (the baseline is
exported with ``git archive``), each with its own workspace and ledger, and each driven by its own tree's client
(:class:`Transport`), so "today" includes today's client. Three figures, each printed beside today's:

1. **A cached answer's round trip**: the same count asked again (the stored answer, nothing charged) 300 times on a
   kept-alive connection; median and p90. The floor printed beside it is ``GET /v1/health`` without a token on
   the same connection (HTTP and the web framework, nothing of the vault's own work).
2. **16 client processes with distinct small queries** (a count by household type on 20,000 households, a new
   epsilon each time, so every one is computed and charged) for ``--seconds``: charges/s on SQLite and on
   PostgreSQL (a throw-away server started here with ``fsync=on`` and ``synchronous_commit=on``); the rate of
   ``fdatasync`` on the same disk is printed as the durability floor.
3. **The national table** (``--households``, default 8,000,000, generated with ``synthetic.write_population`` into a
   temporary folder; only its households table is registered): 4 DP logistic regressions are fitted at once by
   4 analysts, and meanwhile a fifth analyst asks small counts (a new epsilon each, one at a time) until the fits
   end or ``--cap`` seconds pass; p50 and p99 of the count's latency. A count that fails counts with the time it
   took to fail; on today's code the fits hold the ledger's lock, so counts wait up to SQLite's 60 s timeout.

Run: ``.venv/bin/python -m benchmarks.bench_vault [--households 8000000] [--seconds 10] [--only 1,2,3]``. Targets:
median <= 5 ms; >= 500 charges/s on both ledgers; p99 <= 1 s. Put ``BENCH_DIR`` on a disk with ~6 GB free.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.bench_ledger import _baseline_src, _fdatasync_rate, _Postgres

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "f9eeb98"  # main when issue 11 was started: the code the issue measured
_POLICY = """version: 1
name: bench
budget:
  epsilon_per_dataset: 1000000.0
  epsilon_per_query_max: 2.0
"""
_REGISTER = r"""
import json, sys
from pathlib import Path
src, ws, policy, pop, only = sys.argv[1:6]
sys.path.insert(0, src)
from sandbox._private.vault.server import open_service
from sandbox._private.vault.tokens import TokenStore
svc = open_service(ws, policy=policy, ledger_url=sys.argv[6] if len(sys.argv) > 6 else None)
if only == "households":
    svc.registry.add("households", Path(pop) / "households.parquet", Path(pop) / "schema" / "households.json")
else:
    svc.registry.add_population(pop)
store = TokenStore(svc.layout.tokens)
tokens = {"a%d" % i: store.create("a%d" % i, "analyst") for i in range(24)}
tokens["admin"] = store.create("ops", "admin")
print(json.dumps(tokens))
"""
_CACHED = r"""
import json, sys, time, statistics
src, url, token = sys.argv[1:4]
sys.path.insert(0, src)
from sandbox._private.kernel.transport import Transport
t = Transport(url, token)
body = {"dataset": "households", "kind": "count", "by": ["household_type"], "epsilon": 0.5}
t.post("/v1/query", body)
def times(call, n=300):
    for _ in range(20):
        call()
    out = []
    for _ in range(n):
        s = time.perf_counter(); call(); out.append((time.perf_counter() - s) * 1000)
    return out
cached = times(lambda: t.post("/v1/query", body))
floor = times(lambda: t._http.get("/v1/health", headers={"Authorization": ""}))
print(json.dumps({"cached": cached, "floor": floor}))
"""
_WARM = r"""
import json, sys
src, url, token = sys.argv[1:4]
sys.path.insert(0, src)
from sandbox._private.kernel.transport import Transport
Transport(url, token, timeout=3600).post("/v1/query", {"dataset": "households", "kind": "count", "epsilon": 0.5})
print("{}")
"""
_CLIENTS = r"""
import json, multiprocessing as mp, sys, time
src, url, tokens, seconds = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), float(sys.argv[4])
sys.path.insert(0, src)
from sandbox._private.kernel.transport import Transport

def client(i, token, start, out):
    t = Transport(url, token)
    t.get("/v1/datasets")  # connect (and, for the new client, prove the server) before the clock starts
    time.sleep(max(0.0, start - time.time()))
    n, fails, lat = 0, 0, []
    cpu0 = time.process_time()
    while time.time() < start + seconds:
        eps = 1e-3 + (i * 10**6 + n) * 1e-12  # a new question each time: computed and charged
        body = {"dataset": "households", "kind": "count", "by": ["household_type"], "epsilon": eps}
        s = time.perf_counter()
        try:
            t.post("/v1/query", body)
            n += 1
        except Exception:
            fails += 1
        lat.append(time.perf_counter() - s)
    out.put((n, fails, lat, time.process_time() - cpu0))

ctx = mp.get_context("fork")
out = ctx.Queue()
start = time.time() + 3.0
procs = [ctx.Process(target=client, args=(i, tok, start, out)) for i, tok in enumerate(tokens)]
for p in procs: p.start()
res = [out.get(timeout=seconds + 600) for _ in procs]
for p in procs: p.join()
lat = sorted(x for r in res for x in r[2])
print(json.dumps({"charges": sum(r[0] for r in res), "fails": sum(r[1] for r in res), "seconds": seconds,
                  "client_cpu": sum(r[3] for r in res),
                  "p50": lat[len(lat) // 2], "p99": lat[int(len(lat) * 0.99)]}))
"""
_NATIONAL = r"""
import json, sys, threading, time
src, url, tokens, cap = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), float(sys.argv[4])
sys.path.insert(0, src)
from sandbox._private.kernel.transport import Transport
spec = {"estimator": "logistic_regression", "target": "registered_problematic_debt",
        "features": ["housing", "arrears_energy"], "params": {"max_iter": 100}}
fits = []
def fit(i):
    t = Transport(url, tokens[i], timeout=cap + 600)
    s = time.perf_counter()
    try:
        t.post("/v1/fit", {"dataset": "households", "spec": spec, "epsilon": 0.5 + i * 0.01})
        fits.append(("ok", time.perf_counter() - s))
    except Exception as exc:
        fits.append((type(exc).__name__, time.perf_counter() - s))
threads = [threading.Thread(target=fit, args=(i,)) for i in range(4)]
for th in threads: th.start()
time.sleep(2.0)  # the fits are under way
t = Transport(url, tokens[4], timeout=cap + 120)
lat, fails, n, start = [], 0, 0, time.perf_counter()
while any(th.is_alive() for th in threads) and time.perf_counter() - start < cap:
    s = time.perf_counter()
    try:
        eps = 0.01 + n * 1e-9
        t.post("/v1/query", {"dataset": "households", "kind": "count", "by": ["urbanisation"], "epsilon": eps})
    except Exception:
        fails += 1
    lat.append(time.perf_counter() - s)
    n += 1
    time.sleep(0.2)
for th in threads: th.join(timeout=cap + 600)
lat.sort()
p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
print(json.dumps({"counts": len(lat), "fails": fails, "p50": lat[len(lat) // 2], "p99": p99, "fits": fits,
                  "window": time.perf_counter() - start}))
"""


@dataclass
class Vault:
    """One ``sandbox vault serve`` of one source tree on its own workspace."""

    label: str
    src: Path
    workspace: Path
    ledger_url: str | None = None
    tokens: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    url: str = ""

    def env(self) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(self.src)}

    def register(self, policy: Path, population: Path, only: str = "all") -> None:
        population = _for_tree(population, self.src)
        args = [sys.executable, "-c", _REGISTER, str(self.src), str(self.workspace), str(policy), str(population)]
        args += [only, *([self.ledger_url] if self.ledger_url else [])]
        out = subprocess.run(
            args, check=True, capture_output=True, text=True, env=self.env(), timeout=3600, cwd=self.src
        )
        self.tokens = json.loads(out.stdout.strip().splitlines()[-1])

    def start(self, policy: Path, timeout: float = 300.0) -> Vault:
        cmd = [sys.executable, "-c", "from sandbox.cli import run; run()", "vault", "serve"]
        cmd += ["--workspace", str(self.workspace), "--port", "0", "--policy", str(policy)]
        log = (self.workspace / "bench-vault.log").open("ab")
        # the working folder is the tree: `python -c` puts it first on sys.path, so the tree's own sandbox is served
        self.proc = subprocess.Popen(
            cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=self.env(), cwd=self.src
        )
        discovery = self.workspace / "vault" / "vault.json"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                info = json.loads(discovery.read_text(encoding="utf-8"))
                if info.get("pid") == self.proc.pid:
                    self.url = str(info["url"])
                    return self
            except (OSError, ValueError):
                pass
            if self.proc.poll() is not None:
                tail = (self.workspace / "bench-vault.log").read_text(errors="replace")[-3000:]
                raise SystemExit(f"{self.label} vault exited:\n{tail}")
            time.sleep(0.1)
        raise SystemExit(f"{self.label} vault did not start within {timeout:.0f} s")

    def run(self, script: str, *args: str, timeout: float = 3600) -> dict[str, Any]:
        out = subprocess.run(
            [sys.executable, "-c", script, str(self.src), self.url, *args],
            check=True,
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=timeout,
            cwd=self.src,
        )
        return dict(json.loads(out.stdout.strip().splitlines()[-1]))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _server_cpu(pg: _Postgres | None) -> float:
    """CPU seconds of the PostgreSQL cluster so far: its postmaster and every process it started (0 without one)."""
    if pg is None:
        return 0.0
    try:
        postmaster = int((pg.base / "data" / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0
    total = _cpu_seconds(postmaster)
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                parent = int((proc / "stat").read_text().rsplit(") ", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if parent == postmaster:
                total += _cpu_seconds(int(proc.name))
    return total


def _worker_pids(v: Vault) -> list[int]:
    """The vault's worker processes, from its health report to an admin (none on a baseline without workers)."""
    import httpx

    got = httpx.get(v.url + "/v1/health", headers={"Authorization": f"Bearer {v.tokens['admin']}"})
    lanes = got.json().get("worker_pids", {}) if got.status_code == 200 else {}
    return [pid for lane in lanes.values() for pid in lane]


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(len(s) * q))]


def _row(name: str, today: str, now: str, target: str, ratio: str) -> None:
    print(f"{name:<52} {today:>20} {now:>20} {target:>10} {ratio:>10}", flush=True)


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


#: Schema fields added since the baseline (a baseline's schema refuses fields it does not know).
_NEW_COLUMN_FIELDS = ("category_labels_nl", "category_labels_en")


def _for_tree(population: Path, src: Path) -> Path:
    """The population as ``src``'s registry reads it: this tree's as it is; for the baseline, the same data files
    (linked) with the schema fields it predates left out (display labels only: the rows are the same)."""
    if src == ROOT:
        return population
    out = population.with_name(f"{population.name}-for-{src.name}")
    if not out.exists():
        (out / "schema").mkdir(parents=True)
        for f in population.iterdir():
            if f.is_file():
                (out / f.name).symlink_to(f)
        for f in (population / "schema").glob("*.json"):
            schema = json.loads(f.read_text(encoding="utf-8"))
            for column in schema.get("columns", []):
                for key in _NEW_COLUMN_FIELDS:
                    column.pop(key, None)
            (out / "schema" / f.name).write_text(json.dumps(schema), encoding="utf-8")
    return out


def _sides(work: Path, baseline: Path, tag: str, pg: _Postgres | None = None) -> list[Vault]:
    out = []
    for label, src in (("today", baseline), ("now", ROOT)):
        ws = work / f"{tag}-{label}"
        out.append(Vault(label, src, ws, pg.fresh() if pg is not None else None))
    return out


def figure_cached(work: Path, baseline: Path, policy: Path, small: Path) -> bool:
    res = {}
    for v in _sides(work, baseline, "cached"):
        v.register(policy, small)
        try:
            v.start(policy)
            v.run(_WARM, v.tokens["a23"])  # the workers are up and the table is loaded before the clock starts
            res[v.label] = v.run(_CACHED, v.tokens["a0"])
        finally:
            v.stop()
    med = {k: statistics.median(r["cached"]) for k, r in res.items()}
    p90 = {k: _pct(r["cached"], 0.9) for k, r in res.items()}
    floor = {k: statistics.median(r["floor"]) for k, r in res.items()}
    _row(
        "1. cached answer round trip, median (ms)",
        f"{med['today']:.2f}",
        f"{med['now']:.2f}",
        "<= 5",
        f"{med['today'] / med['now']:.1f}x",
    )
    _row("   p90 (ms)", f"{p90['today']:.2f}", f"{p90['now']:.2f}", "", "")
    _row("   floor: GET /v1/health, no token, median (ms)", f"{floor['today']:.2f}", f"{floor['now']:.2f}", "", "")
    return med["now"] <= 5.0


def figure_clients(work: Path, baseline: Path, policy: Path, small: Path, seconds: float, pg: _Postgres) -> bool:
    ok = True
    for backend in ("sqlite", "postgresql"):
        res = {}
        for v in _sides(work, baseline, f"clients-{backend}", pg if backend == "postgresql" else None):
            v.register(policy, small)
            try:
                v.start(policy)
                v.run(_WARM, v.tokens["a23"])
                tokens = [v.tokens[f"a{i}"] for i in range(16)]
                assert v.proc is not None
                pids = _worker_pids(v)
                server = pg if backend == "postgresql" else None
                vault0, workers0 = _cpu_seconds(v.proc.pid), sum(_cpu_seconds(p) for p in pids)
                server0 = _server_cpu(server)
                res[v.label] = r = v.run(_CLIENTS, json.dumps(tokens), str(seconds))
                r["vault_cpu"] = _cpu_seconds(v.proc.pid) - vault0
                r["worker_cpu"] = sum(_cpu_seconds(p) for p in pids) - workers0
                r["server_cpu"] = _server_cpu(server) - server0
            finally:
                v.stop()
        rate = {k: r["charges"] / r["seconds"] for k, r in res.items()}
        name = "2. 16 clients, distinct small queries, charges/s, " + (
            "SQLite" if backend == "sqlite" else "PostgreSQL fsync on"
        )
        _row(
            name,
            f"{rate['today']:.0f}",
            f"{rate['now']:.0f}",
            ">= 500",
            f"{rate['now'] / max(rate['today'], 1e-9):.1f}x",
        )
        _row(
            "   p50 / p99 latency (ms)",
            f"{res['today']['p50'] * 1e3:.0f} / {res['today']['p99'] * 1e3:.0f}",
            f"{res['now']['p50'] * 1e3:.0f} / {res['now']['p99'] * 1e3:.0f}",
            "",
            "",
        )
        _row("   failed requests", str(res["today"]["fails"]), str(res["now"]["fails"]), "", "")
        parts = ("vault", "worker", "client") + (("server",) if backend == "postgresql" else ())
        per = {k: {w: 1e3 * r[f"{w}_cpu"] / max(r["charges"], 1) for w in parts} for k, r in res.items()}
        _row(
            "   CPU ms per charge: vault+workers+clients" + ("+PostgreSQL" if backend == "postgresql" else ""),
            *("+".join(f"{c[w]:.2f}" for w in parts) for c in (per["today"], per["now"])),
            "",
            "",
        )
        cores = os.cpu_count() or 1
        bound = {k: 1e3 * cores / max(sum(c.values()), 1e-9) for k, c in per.items()}
        _row(
            f"   bound from that CPU on {cores} idle cores (charges/s)",
            f"{bound['today']:.0f}",
            f"{bound['now']:.0f}",
            "",
            "",
        )
        ok = ok and rate["now"] >= 500
    return ok


def figure_national(work: Path, baseline: Path, policy: Path, households: int, cap: float) -> bool:
    import synthetic

    pop = work / "national"
    t0 = time.perf_counter()
    synthetic.write_population(pop, households, seed=20261201)
    print(
        f"   national population of {households:,} households written in {time.perf_counter() - t0:.0f} s", flush=True
    )
    res = {}
    for v in _sides(work, baseline, "national"):
        t0 = time.perf_counter()
        v.register(policy, pop, only="households")
        try:
            v.start(policy)
            v.run(_WARM, v.tokens["a9"])  # the first query loads (today) or converts (now) the table
            print(f"   {v.label}: registered and warmed in {time.perf_counter() - t0:.0f} s", flush=True)
            res[v.label] = v.run(_NATIONAL, json.dumps([v.tokens[f"a{i}"] for i in range(5)]), str(cap))
        finally:
            v.stop()
            shutil.rmtree(v.workspace, ignore_errors=True)
    shutil.rmtree(pop, ignore_errors=True)
    p99 = {k: r["p99"] for k, r in res.items()}
    _row(
        "3. national table, small count p99 while 4 fits run (s)",
        f"{p99['today']:.2f}",
        f"{p99['now']:.2f}",
        "<= 1",
        f"{p99['today'] / p99['now']:.0f}x",
    )
    _row("   p50 (s)", f"{res['today']['p50']:.2f}", f"{res['now']['p50']:.2f}", "", "")
    _row(
        "   counts asked / failed",
        f"{res['today']['counts']} / {res['today']['fails']}",
        f"{res['now']['counts']} / {res['now']['fails']}",
        "",
        "",
    )
    for k, r in res.items():
        fits = ", ".join(f"{outcome} {secs:.0f} s" for outcome, secs in r["fits"])
        print(f"   {k}: the 4 fits: {fits}; counts measured over {r['window']:.0f} s", flush=True)
    return p99["now"] <= 1.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline", default=BASELINE, help="git ref of today's code")
    ap.add_argument("--households", type=int, default=8_000_000, help="size of the national table (figure 3)")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of the 16-client run (figure 2)")
    ap.add_argument("--cap", type=float, default=300.0, help="longest count window of figure 3 (s)")
    ap.add_argument("--only", default="1,2,3", help="which figures")
    args = ap.parse_args(argv)
    import synthetic

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the vaults and the database on SIGTERM too
    work = Path(tempfile.mkdtemp(prefix="bench-vault-", dir=os.environ.get("BENCH_DIR")))
    policy = work / "policy.yaml"
    policy.write_text(_POLICY, encoding="utf-8")
    pg = None
    print(f"load at start: {_load()} (1/5/15 min); {os.cpu_count()} cores; fdatasync {_fdatasync_rate(work):.0f}/s")
    _row("figure", f"today ({args.baseline})", "now", "target", "ratio")
    ok = True
    try:
        baseline = _baseline_src(args.baseline, work)
        small = work / "small"
        synthetic.write_population(small, 20_000, seed=20261201)
        figures = set(args.only.split(","))
        if "1" in figures:
            ok &= figure_cached(work, baseline, policy, small)
        if "2" in figures:
            pg = _Postgres()
            ok &= figure_clients(work, baseline, policy, small, args.seconds, pg)
        if "3" in figures:
            ok &= figure_national(work, baseline, policy, args.households, args.cap)
    finally:
        if pg is not None:
            pg.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(f"load at end: {_load()}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
