"""The client's own HTTP/1.1 (``kernel/http1.py``): kept-alive, verified connections, and when a request goes again.

A scripted raw server on loopback (or a Unix socket) answers each request as a test says: normally, in one byte at
a time, chunked, without a length, by closing the connection unanswered, or never. The identity check itself is
the real one (the server runs as our own account); a spy on it shows that every new connection is verified before
its first request. Squatters of another OS account are in ``test_vault_trust.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox._private.kernel import http1, trust
from sandbox._private.kernel.transport import Transport
from sandbox._private.shared.errors import SandboxError

_TOKEN = "sbx_" + "h" * 43
#: (connection number, request number on that connection, request line, headers, body) -> what to do
Handler = Callable[[int, int, bytes, dict[bytes, bytes], bytes], Any]
CLOSE = "close"  # close the connection without an answer
HANG = "hang"  # never answer


def reply(payload: bytes, status: int = 200, extra: str = "") -> bytes:
    head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(payload)}\r\nContent-Type: application/json\r\n{extra}\r\n"
    return head.encode() + payload


def echo(conn_no: int, n: int, line: bytes, headers: dict[bytes, bytes], body: bytes) -> bytes:
    """Answer with what was asked (and where), so each caller can check it got its own answer."""
    return reply(json.dumps({"line": line.decode(), "body": body.decode(), "conn": conn_no, "n": n}).encode())


class Server:
    """A threaded HTTP/1.1 server that records every request and answers through ``handler``."""

    def __init__(self, handler: Handler = echo, uds: Path | None = None) -> None:
        if uds is None:
            self.sock = socket.create_server(("127.0.0.1", 0))
            self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        else:
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.bind(str(uds))
            self.sock.listen(16)
            self.url = f"unix:{uds}"
        self.handler = handler
        self.requests: list[tuple[int, bytes, dict[bytes, bytes], bytes]] = []
        self.connections = 0
        self.closed_by_client = 0
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            self.conns.append(conn)
            threading.Thread(target=self._one, args=(conn, self.connections), daemon=True).start()

    def _one(self, conn: socket.socket, conn_no: int) -> None:
        data, n = b"", 0
        with conn:
            while True:
                while b"\r\n\r\n" not in data:
                    try:
                        more = conn.recv(65536)
                    except OSError:
                        return
                    if not more:
                        self.closed_by_client += 1
                        return
                    data += more
                head, data = data.split(b"\r\n\r\n", 1)
                line, *fields = head.split(b"\r\n")
                headers = {k.strip().lower(): v.strip() for k, v in (f.split(b":", 1) for f in fields)}
                size = int(headers.get(b"content-length", b"0"))
                while len(data) < size:
                    data += conn.recv(1 << 20)
                body, data = data[:size], data[size:]
                n += 1
                self.requests.append((conn_no, line, headers, body))
                action = self.handler(conn_no, n, line, headers, body)
                if action == CLOSE:
                    return
                if action == HANG:
                    time.sleep(30)
                    return
                if callable(action):
                    action(conn)
                else:
                    conn.sendall(action)

    def close(self) -> None:
        self.sock.close()
        for c in self.conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)


@pytest.fixture()
def serve() -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def start(handler: Handler = echo, uds: Path | None = None) -> Server:
        s = Server(handler, uds)
        started.append(s)
        return s

    yield start
    for s in started:
        s.close()


@pytest.fixture()
def verified(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Each identity check, as the number of requests the server had received when it ran."""
    seen: list[int] = []
    real = trust.check_peer

    def spy(sock: socket.socket, expectation: trust.Expectation) -> None:
        seen.append(len(_current[0].requests) if _current else -1)
        real(sock, expectation)

    monkeypatch.setattr(trust, "check_peer", spy)
    return seen


_current: list[Server] = []


def _body(i: int) -> dict[str, Any]:
    return {"dataset": "households", "kind": "count", "by": ["household_type"], "epsilon": 0.001 + i * 1e-9}


def test_keep_alive_reuses_one_connection(serve: Callable[..., Server]) -> None:
    s = serve()
    with Transport(s.url, _TOKEN) as t:
        answers = [t.post("/v1/query", _body(i)) for i in range(30)]
        assert [json.loads(a["body"]) for a in answers] == [_body(i) for i in range(30)]
        assert {a["conn"] for a in answers} == {1} and t.backend.connects == 1
        assert t._wire is not None and len(t._wire.idle) == 1
    time.sleep(0.1)
    assert s.connections == 1 and s.closed_by_client == 1  # close() closed it


def test_server_closing_an_idle_connection_gets_a_new_verified_one(
    serve: Callable[..., Server], verified: list[int]
) -> None:
    def close_after_answer(conn_no: int, n: int, *rest: Any) -> Any:
        def answer_then_close(conn: socket.socket) -> None:
            conn.sendall(echo(conn_no, n, *rest))
            conn.shutdown(socket.SHUT_RDWR)  # as uvicorn does after its keep-alive timeout

        return answer_then_close

    s = serve(close_after_answer)
    _current[:] = [s]
    try:
        with Transport(s.url, _TOKEN) as t:
            first = t.post("/v1/query", _body(1))
            time.sleep(0.1)  # the server's close has arrived: the idle socket is readable
            second = t.post("/v1/query", _body(2))
            assert (first["conn"], second["conn"]) == (1, 2)
            assert t.backend.connects == 2
    finally:
        _current.clear()
    assert verified == [0, 1]  # each connection was proven before its first request was sent
    assert len(s.requests) == 2  # the charge was not sent to the closed connection


def test_a_get_goes_again_once_when_a_reused_connection_closes_unanswered(serve: Callable[..., Server]) -> None:
    s = serve(lambda conn_no, n, *rest: CLOSE if (conn_no, n) == (1, 2) else echo(conn_no, n, *rest))
    with Transport(s.url, _TOKEN) as t:
        assert t.get("/v1/datasets")["conn"] == 1
        assert t.get("/v1/datasets")["conn"] == 2  # the first connection closed without answering: asked again
        assert t.backend.connects == 2
    assert [r[0] for r in s.requests] == [1, 1, 2]


def test_a_post_the_server_may_have_read_is_never_sent_again(serve: Callable[..., Server]) -> None:
    s = serve(lambda conn_no, n, *rest: CLOSE if (conn_no, n) == (1, 2) else echo(conn_no, n, *rest))
    with Transport(s.url, _TOKEN) as t:
        t.post("/v1/query", _body(1))
        with pytest.raises(SandboxError, match=r"Cannot reach the vault at http://127\.0\.0\.1:\d+: Server disconn"):
            t.post("/v1/query", _body(2))
        assert [json.loads(r[3]) for r in s.requests] == [_body(1), _body(2)]  # the charge went once
        assert t.post("/v1/query", _body(3))["conn"] == 2  # the next request opens a new connection
    with Transport(s.url, _TOKEN) as t:  # a new connection that fails is not retried either, even for a GET
        s.handler = lambda *a: CLOSE
        with pytest.raises(SandboxError, match="Cannot reach the vault"):
            t.get("/v1/datasets")
    assert len(s.requests) == 4


def test_timeouts(serve: Callable[..., Server]) -> None:
    s = serve(lambda *a: HANG)
    with Transport(s.url, _TOKEN, timeout=0.3) as t:
        start = time.monotonic()
        with pytest.raises(SandboxError, match="Cannot reach the vault"):
            t.post("/v1/query", _body(1))
        assert 0.25 < time.monotonic() - start < 5
        start = time.monotonic()
        with pytest.raises(SandboxError, match="Cannot reach the vault"):
            t.get("/v1/datasets", timeout=0.2)  # a call's own timeout
        assert 0.15 < time.monotonic() - start < 5
        assert t._wire is not None and t._wire.idle == []  # a timed-out connection is not reused
    assert len(s.requests) == 2  # nothing was sent again


def test_a_response_in_many_segments(serve: Callable[..., Server]) -> None:
    payload = json.dumps({"cells": [{"k": i, "v": i * 1.5} for i in range(40)]}).encode()

    def dribble(conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        data = reply(payload)
        for i in range(0, len(data), 7):
            conn.sendall(data[i : i + 7])
            if i % 70 == 0:
                time.sleep(0.001)

    s = serve(lambda *a: dribble)
    with Transport(s.url, _TOKEN) as t:
        for _ in range(3):
            assert t.post("/v1/query", _body(0)) == json.loads(payload)
        assert t.backend.connects == 1


def test_chunked_and_unbounded_bodies(serve: Callable[..., Server]) -> None:
    payload = json.dumps({"rows": list(range(500))}).encode()
    chunks = [payload[i : i + 100] for i in range(0, len(payload), 100)]
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
    chunked += b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"

    def to_eof(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + payload)
        conn.shutdown(socket.SHUT_RDWR)

    s = serve(lambda conn_no, n, *rest: chunked if conn_no == 1 else to_eof)
    with Transport(s.url, _TOKEN) as t:
        assert t.post("/v1/query", _body(0)) == json.loads(payload)
        assert t.post("/v1/query", _body(0)) == json.loads(payload)  # the same connection after a chunked answer
        assert t.backend.connects == 1
        s.conns[0].shutdown(socket.SHUT_RDWR)
        time.sleep(0.1)
        assert t.get("/v1/x") == json.loads(payload)  # a body up to the server's close
        assert t._wire is not None and t._wire.idle == []  # ... whose connection is not kept


def test_connection_close_is_honoured(serve: Callable[..., Server]) -> None:
    s = serve(lambda conn_no, n, *rest: reply(b'{"c":%d}' % conn_no, extra="Connection: close\r\n"))
    with Transport(s.url, _TOKEN) as t:
        assert [t.get("/v1/x")["c"] for _ in range(3)] == [1, 2, 3]


def test_large_bodies_both_ways(serve: Callable[..., Server]) -> None:
    big = {"values": ["x" * 1000] * 4000}  # 4 MB each way

    def big_echo(conn_no: int, n: int, line: bytes, headers: dict[bytes, bytes], body: bytes) -> bytes:
        return reply(body)

    s = serve(big_echo)
    with Transport(s.url, _TOKEN) as t:
        assert t.post("/v1/query", big) == big
        assert t.post("/v1/query", {"small": 1}) == {"small": 1}
        assert t.backend.connects == 1


def test_errors_keep_the_connection(serve: Callable[..., Server]) -> None:
    s = serve(lambda *a: reply(b'{"error":"NotFoundError","message":"no such job"}', status=404))
    with Transport(s.url, _TOKEN) as t:
        for _ in range(3):
            with pytest.raises(SandboxError, match="no such job"):
                t.get("/v1/jobs/x")
        assert t.backend.connects == 1


def test_unix_socket(serve: Callable[..., Server], tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir(mode=0o750)
    s = serve(uds=folder / "vault.sock")
    with Transport(s.url, _TOKEN) as t:
        for i in range(5):
            assert json.loads(t.post("/v1/query", _body(i))["body"]) == _body(i)
        assert t.backend.connects == 1
    line, headers = s.requests[0][1], s.requests[0][2]
    assert line == b"POST /v1/query HTTP/1.1" and headers[b"host"] == b"vault"
    assert headers[b"authorization"] == f"Bearer {_TOKEN}".encode()


def test_threads_share_a_transport(serve: Callable[..., Server]) -> None:
    s = serve()
    t = Transport(s.url, _TOKEN)
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for i in range(40):
                got = t.post("/v1/query", _body(k * 1000 + i))
                assert json.loads(got["body"]) == _body(k * 1000 + i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert len(s.requests) == 320 and t.backend.connects <= 8
    t.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_opens_its_own_connection(serve: Callable[..., Server]) -> None:
    s = serve()
    with Transport(s.url, _TOKEN) as t:
        assert t.get("/v1/x")["conn"] == 1
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: a request of its own, on a connection of its own
            code = 1
            try:
                code = 0 if t.get("/v1/x")["conn"] == 2 else 2
                os.write(write, b"%d" % t.backend.connects)
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0 and os.read(read, 10) == b"2"
        os.close(read)
        os.close(write)
        assert t.get("/v1/x")["conn"] == 1  # the parent's connection is still its own, and still open
        assert t.backend.connects == 1


def test_interim_responses_and_unsolicited_bytes(serve: Callable[..., Server]) -> None:
    def answer(conn_no: int, n: int, *rest: Any) -> Any:
        if conn_no == 1:  # an interim 100 first, then the answer and a byte nobody asked for
            return b"HTTP/1.1 100 Continue\r\n\r\n" + reply(b'{"c":1}') + b"H"
        return reply(b'{"c":%d}' % conn_no)

    s = serve(answer)
    with Transport(s.url, _TOKEN) as t:
        assert t.post("/v1/query", _body(0)) == {"c": 1}
        assert t.post("/v1/query", _body(1)) == {"c": 2}  # the first connection was not trusted again
    assert len(s.requests) == 2


def test_header_values_h11_would_refuse_go_through_httpcore(serve: Callable[..., Server]) -> None:
    s = serve()
    with Transport(s.url, "sbx_bad\r\nX-Injected: 1") as t:
        assert t._wire is None
        with pytest.raises(SandboxError, match="Cannot reach the vault"):  # h11 refuses the header, as before
            t.get("/v1/x")
    assert s.requests == []


def test_a_request_the_kernel_refused_to_send_goes_again(
    serve: Callable[..., Server], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server reset the idle connection just after the client found it quiet: not a byte of the POST was sent,
    so it goes on a new (verified) connection; the server sees it once."""

    def answer_then_reset(conn_no: int, n: int, *rest: Any) -> Any:
        def send(conn: socket.socket) -> None:
            conn.sendall(echo(conn_no, n, *rest))
            time.sleep(0.05)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            conn.close()  # with linger 0: a reset

        return send if conn_no == 1 else echo(conn_no, n, *rest)

    s = serve(answer_then_reset)
    with Transport(s.url, _TOKEN) as t:
        assert t.post("/v1/query", _body(1))["conn"] == 1
        time.sleep(0.3)
        monkeypatch.setattr(http1._Connection, "readable", lambda self: False)  # the race: it looked quiet
        assert t.post("/v1/query", _body(2))["conn"] == 2
        assert t.backend.connects == 2
    assert [(r[0], json.loads(r[3])) for r in s.requests] == [(1, _body(1)), (2, _body(2))]
