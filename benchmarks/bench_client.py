"""The analyst's client: CPU per JSON request to the vault, beside today's client (``--baseline``) and a raw socket.

One real ``sandbox vault serve`` of this tree is started on a 20,000-household population
(``synthetic.write_population``). Each client then runs in its own process (the baseline's tree is exported with
``git archive``) and, on one kept-alive loopback connection, measures ``time.process_time()`` per request over
``--requests`` calls (after a warm-up):

* **distinct**: ``Transport.post("/v1/query", ...)`` of a count by household type with a new epsilon each time, so
  every one is computed and charged (what issue 11's 16 clients do, ``benchmarks.bench_vault --only 2``);
* **cached**: the same body each time (the vault's stored answer, nothing charged).

The floor is a plain ``socket`` sending the same request bytes (built before the clock starts) and reading the
response up to its ``Content-Length``: the system calls, nothing of HTTP or JSON in Python. Printed: microseconds
of client CPU per request for today, now and the floor, and now's ratio to the floor. Only the client's CPU is
measured (not wall-clock throughput), so the figures hold on a busy machine.

Run: ``.venv/bin/python -m benchmarks.bench_client [--requests 2000] [--baseline REF]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.bench_ledger import _baseline_src
from benchmarks.bench_vault import _POLICY, _WARM, ROOT, Vault

BASELINE = "796b1f4"  # main before the client's own HTTP/1.1 fast path
_CLIENT = r"""
import json, socket, sys, time
src, url, token, n, phase = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
sys.path.insert(0, src)
from sandbox._private.kernel.transport import Transport

def body(i):
    eps = 1e-3 + (phase * 10**7 + i) * 1e-12  # a new question for each i (and each client)
    return {"dataset": "households", "kind": "count", "by": ["household_type"], "epsilon": eps}

def cpu_per(call, count):
    for i in range(50):
        call(-1 - i)
    c0 = time.process_time()
    for i in range(count):
        call(i)
    return (time.process_time() - c0) / count * 1e6

out = {}
t = Transport(url, token)
t.get("/v1/datasets")
out["distinct"] = cpu_per(lambda i: t.post("/v1/query", body(i)), n)
same = body(-10**6)
out["cached"] = cpu_per(lambda i: t.post("/v1/query", same), n)
t.close()
if phase == 0:  # the floor: the same bytes over a plain socket, the response read up to its Content-Length
    host, port = url.split("//")[1].split(":")
    head = ("POST /v1/query HTTP/1.1\r\nHost: %s:%s\r\nAccept: application/json\r\nAuthorization: Bearer %s\r\n"
            "Content-Type: application/json\r\nContent-Length: %%d\r\n\r\n" % (host, port, token))
    def raw(b):
        data = json.dumps(b, separators=(",", ":")).encode()
        return (head % len(data)).encode() + data
    s = socket.create_connection((host, int(port)))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    def exchange(req):
        s.sendall(req)
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += s.recv(65536)
        head_end = buf.index(b"\r\n\r\n") + 4
        at = buf.lower().index(b"content-length:", 0, head_end) + 15
        size = int(buf[at:buf.index(b"\r\n", at)])
        while len(buf) < head_end + size:
            buf += s.recv(65536)
        assert buf.startswith(b"HTTP/1.1 200"), buf[:200]
    distinct = {i: raw(body(10**5 + i)) for i in range(-50, n)}
    out["floor_distinct"] = cpu_per(lambda i: exchange(distinct[i]), n)
    cached = raw(same)
    out["floor_cached"] = cpu_per(lambda i: exchange(cached), n)
    s.close()
print(json.dumps(out))
"""


def _client(src: Path, url: str, token: str, n: int, phase: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", _CLIENT, str(src), url, token, str(n), str(phase)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(src)},
        timeout=1800,
        cwd=src,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--baseline", default=BASELINE, help="git ref of today's client")
    ap.add_argument("--requests", type=int, default=2000, help="requests measured per figure")
    args = ap.parse_args(argv)
    import synthetic

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the vault on SIGTERM too
    work = Path(tempfile.mkdtemp(prefix="bench-client-", dir=os.environ.get("BENCH_DIR")))
    try:
        policy = work / "policy.yaml"
        policy.write_text(_POLICY, encoding="utf-8")
        small = work / "small"
        synthetic.write_population(small, 20_000, seed=1)
        baseline = _baseline_src(args.baseline, work)
        v = Vault("now", ROOT, work / "ws")
        v.register(policy, small, "households")
        try:
            v.start(policy)
            v.run(_WARM, v.tokens["a23"])
            now = _client(ROOT, v.url, v.tokens["a0"], args.requests, 0)
            today = _client(baseline, v.url, v.tokens["a1"], args.requests, 1)
        finally:
            v.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{os.cpu_count()} cores; {args.requests} requests per figure; client CPU per request (us)")
    print(f"{'request':<40} {'today (' + args.baseline + ')':>16} {'now':>10} {'floor':>10} {'now/floor':>10}")
    for name in ("distinct", "cached"):
        label = {"distinct": "POST /v1/query, new epsilon (charged)", "cached": "POST /v1/query, same body (stored)"}
        floor = now[f"floor_{name}"]
        print(
            f"{label[name]:<40} {today[name]:>16.0f} {now[name]:>10.0f} {floor:>10.0f} {now[name] / floor:>9.1f}x",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
