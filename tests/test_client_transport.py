"""The client's requests on the wire: the direct path to the connection pool sends what httpx sends.

:class:`Transport` hands JSON requests to httpx's connection pool itself (the same kept-alive, identity-checked
connections) and uses the full httpx client only for query strings and paths that need quoting. The reference is
httpx: a raw HTTP server on loopback records each request, and the request line, the headers the vault reads and
the body of the direct path must equal those of the same call made through ``httpx.Client``; errors and
``Retry-After`` must be handled as before.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sandbox._private.kernel.transport import Transport
from sandbox._private.shared.errors import BudgetExceededError, SandboxError

_TOKEN = "sbx_" + "a" * 43


class _Recorder:
    """A one-thread HTTP/1.1 server on 127.0.0.1 that records every request and answers from a script."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.requests: list[tuple[bytes, dict[bytes, bytes], bytes]] = []
        self.replies: list[tuple[int, dict[str, str], bytes]] = []
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn: socket.socket) -> None:
        data = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in data:
                    more = conn.recv(65536)
                    if not more:
                        return
                    data += more
                head, data = data.split(b"\r\n\r\n", 1)
                line, *fields = head.split(b"\r\n")
                headers = {k.strip().lower(): v.strip() for k, v in (f.split(b":", 1) for f in fields)}
                size = int(headers.get(b"content-length", b"0"))
                while len(data) < size:
                    data += conn.recv(65536)
                body, data = data[:size], data[size:]
                self.requests.append((line, headers, body))
                status, extra, payload = self.replies.pop(0) if self.replies else (200, {}, b'{"ok":true}')
                out = [f"HTTP/1.1 {status} X", f"Content-Length: {len(payload)}", "Content-Type: application/json"]
                out += [f"{k}: {v}" for k, v in extra.items()]
                conn.sendall(("\r\n".join(out) + "\r\n\r\n").encode() + payload)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture()
def server() -> Iterator[_Recorder]:
    s = _Recorder()
    yield s
    s.close()


_READ = (b"authorization", b"x-sandbox-run", b"content-type", b"content-length", b"host", b"accept")


def _seen(server: _Recorder) -> tuple[bytes, dict[bytes, bytes], bytes]:
    line, headers, body = server.requests[-1]
    return line, {k: v for k, v in headers.items() if k in _READ}, body


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/query", {"dataset": "households", "kind": "count", "by": ["a", "b"], "epsilon": 0.5}),
        ("POST", "/v1/query", {"label": "één regel — ü", "n": 10**20, "x": [1.5, None, True]}),
        ("GET", "/v1/datasets", None),
        ("DELETE", "/v1/jobs/job_0123456789abcdef01234567", None),
    ],
)
def test_direct_path_sends_what_httpx_sends(server: _Recorder, method: str, path: str, body: Any) -> None:
    t = Transport(server.url, _TOKEN, run_id="run-7")
    got = {"POST": lambda: t.post(path, body), "GET": lambda: t.get(path), "DELETE": lambda: t.delete(path)}[method]()
    assert got == {"ok": True}
    direct = _seen(server)
    headers = {"Accept": "application/json", "Authorization": f"Bearer {_TOKEN}", "X-Sandbox-Run": "run-7"}
    with httpx.Client(base_url=server.url, headers=headers) as reference:
        reference.request(method, path, json=body)
    assert direct == _seen(server)
    t.close()


def test_query_strings_and_quoted_paths_go_through_httpx(server: _Recorder) -> None:
    t = Transport(server.url, _TOKEN)
    t.get("/v1/jobs/x", params={"wait": 5})
    assert server.requests[-1][0] == b"GET /v1/jobs/x?wait=5 HTTP/1.1"
    t.get("/v1/datasets/na me")
    assert server.requests[-1][0] == b"GET /v1/datasets/na%20me HTTP/1.1"
    assert server.connections == 1  # one kept-alive connection for both paths
    t.close()


def test_errors_and_retry_after(server: _Recorder) -> None:
    t = Transport(server.url, _TOKEN, busy_wait=5.0)
    server.replies = [
        (503, {"Retry-After": "0"}, b'{"error":"VaultBusyError","message":"busy"}'),
        (200, {}, b'{"ok":1}'),
        (409, {}, b'{"error":"BudgetExceededError","message":"Privacy budget exceeded: short by 0.1"}'),
        (500, {}, b"not json"),
    ]
    assert t.post("/v1/query", {"epsilon": 1}) == {"ok": 1}  # asked again after the Retry-After
    assert len(server.requests) == 2
    with pytest.raises(BudgetExceededError, match=r"short by 0\.1"):
        t.post("/v1/query", {"epsilon": 1})
    with pytest.raises(SandboxError):
        t.get("/v1/health")
    t.close()
    assert json.loads(server.requests[0][2]) == {"epsilon": 1}
    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{unused.getsockname()[1]}"
    with Transport(url, _TOKEN) as nowhere, pytest.raises(SandboxError, match=r"Cannot reach the vault at http://"):
        nowhere.get("/v1/health")
