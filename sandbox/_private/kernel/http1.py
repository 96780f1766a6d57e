"""HTTP/1.1 over the client's own kept-alive, identity-checked connections: the JSON requests of :class:`Transport`.

httpcore and h11 spend most of a small request's client CPU in pure Python (about 0.8 ms of the 0.9 ms a count
cost the analyst's process). :class:`Http1Pool` writes the request itself (a request line and headers built once
per :class:`~sandbox._private.kernel.transport.Transport`) and parses the response with ``httptools``' C parser
(llhttp: ``Content-Length`` and chunked bodies, keep-alive). What it keeps from the pool it replaces:

* **identity**: every connection is opened by the Transport's :class:`~.trust.VerifyingBackend` (the same
  ``connect_tcp`` / ``connect_unix_socket`` as httpcore calls), which proves the server before a byte is written;
  a connection is only ever reused by the process and pool that opened it.
* **keep-alive**: an idle connection is reused when the server's last response allowed it, it has been idle for
  less than ``keepalive_expiry`` and the socket is not readable (a readable idle socket means the server closed
  it, or sent bytes nobody asked for): otherwise it is closed and a new one opened (and verified).
* **resending**, at most once and on a fresh connection, only when the server cannot have acted on the request:
  (a) the kernel refused the request's first bytes on a reused connection (nothing of it was sent), or (b) a reused
  connection was closed or reset before any byte of the response arrived *and* the method is ``GET`` (the
  vault's GETs only read). A ``POST`` or ``DELETE`` that was written is never resent: the server may have read it
  and acted (a charge) before it closed; the caller gets the error, as with httpcore (which never resends). The
  vault would answer an identical query again from its stored answer, but the client does not rely on that. Since
  an idle connection is given up after ``keepalive_expiry`` (20 s, the vault's is 30 s) and checked before reuse,
  a written request meets a closed connection only when the vault stops or fails at that very moment.
* **timeouts**: ``connect`` for a new connection, ``write`` per ``send`` and ``read`` per ``recv`` (the semantics of
  httpcore's), raised as httpcore's exceptions, so callers handle exactly the errors they did.
* **threads and forks**: idle connections sit in a list under a lock and each request holds its connection alone;
  a forked child drops (closes its copies of) the parent's connections and opens its own.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
import time
from typing import Any

import httpcore
import httptools

from .trust import VaultAddress, VerifyingBackend

__all__ = ["Http1Pool", "Response"]

#: status, raw headers (name, value), body
Response = tuple[int, list[tuple[bytes, bytes]], bytes]
_RECV = 262144
_NO_BODY_STATUS = (204, 304)


class _Resend(Exception):
    """The request may be sent again on a fresh connection: the server cannot have acted on it."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class _Connection:
    """One verified socket, its response parser and the state of the response being read."""

    __slots__ = (
        "body",
        "done",
        "extra",
        "head_done",
        "headers",
        "idle_since",
        "keep",
        "parser",
        "poller",
        "sock",
        "started",
        "status",
        "stream",
        "timeout",
    )

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self.stream = stream
        self.sock: socket.socket = stream.get_extra_info("socket")
        self.parser = httptools.HttpResponseParser(self)
        self.poller = select.poll()
        self.poller.register(self.sock, select.POLLIN)
        self.timeout: Any = self.sock.gettimeout()
        self.idle_since = 0.0
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.done = False
        self.extra = False
        self.started = False
        self.keep = False
        self.status = 0
        self.head_done = False

    # httptools callbacks
    def on_message_begin(self) -> None:
        if self.done:  # a second response nobody asked for: this connection is not reused
            self.extra = True

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.done:
            self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.head_done = True

    def on_body(self, body: bytes) -> None:
        if not self.done:
            self.body.append(body)

    def on_message_complete(self) -> None:
        if self.done:
            return
        status = self.parser.get_status_code()
        if status < 200:  # an interim 1xx response: the real one follows
            self.headers, self.body, self.head_done = [], [], False
            return
        self.done, self.status = True, status
        self.keep = self.parser.should_keep_alive()  # llhttp forgets it once the message is over

    def readable(self) -> bool:
        """Whether the idle socket has something to read: the server closed it (or sent what nobody asked for)."""
        return bool(self.poller.poll(0))

    def _settimeout(self, timeout: float | None) -> None:
        if timeout != self.timeout:
            self.sock.settimeout(timeout)
            self.timeout = timeout

    def exchange(self, data: bytes, method: str, limits: dict[str, Any], reused: bool) -> Response:
        """Write one request and read its response.

        Raises
        ------
        _Resend
            When the request may go again on a fresh connection (see the module's docstring).
        httpcore.TimeoutException, httpcore.NetworkError, httpcore.RemoteProtocolError
            Otherwise, as httpcore raises them.
        """
        sock = self.sock
        self._settimeout(limits.get("write"))
        try:
            sent = sock.send(data)
        except TimeoutError:
            raise httpcore.WriteTimeout("timed out") from None
        except OSError as exc:  # not a byte of this request was sent
            error = httpcore.WriteError(str(exc))
            raise (_Resend(error) if reused else error) from None
        if sent < len(data):
            try:
                sock.sendall(memoryview(data)[sent:])
            except TimeoutError:
                raise httpcore.WriteTimeout("timed out") from None
            except OSError as exc:
                raise httpcore.WriteError(str(exc)) from None
        self._settimeout(limits.get("read"))
        self.headers, self.body, self.done, self.started, self.keep, self.head_done = [], [], False, False, False, False
        feed = self.parser.feed_data
        while not self.done:
            try:
                chunk = sock.recv(_RECV)
            except TimeoutError:
                raise httpcore.ReadTimeout("timed out") from None
            except OSError as exc:
                raise self._unanswered(httpcore.ReadError(str(exc)), method, reused) from None
            if not chunk:
                if not self.started:
                    closed = httpcore.RemoteProtocolError("Server disconnected without sending a response.")
                    raise self._unanswered(closed, method, reused)
                if self._ends_at_eof():
                    self.done, self.extra = True, True  # the body was everything up to the close
                    self.status = self.parser.get_status_code()
                    break
                raise httpcore.RemoteProtocolError("Server disconnected in the middle of a response.")
            self.started = True
            try:
                feed(chunk)
            except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
                if self.done:  # a complete response followed by bytes that are not one: not reused
                    self.extra = True
                    break
                raise httpcore.RemoteProtocolError(f"Invalid HTTP response from the vault: {exc}") from None
        headers, body = self.headers, b"".join(self.body)
        self.headers, self.body = [], []  # an idle connection holds no response
        return self.status, headers, body

    def _unanswered(self, error: Exception, method: str, reused: bool) -> Exception:
        """Return the error to raise when the connection failed before any byte of the response (a GET may go again)."""
        return _Resend(error) if reused and not self.started and method == "GET" else error

    def _ends_at_eof(self) -> bool:
        """Whether the response's body is delimited by the close (no ``Content-Length``, not chunked)."""
        if not self.head_done or self.parser.get_status_code() in _NO_BODY_STATUS:
            return False
        names = {k.lower() for k, _ in self.headers}
        return b"content-length" not in names and b"transfer-encoding" not in names

    def reusable(self) -> bool:
        return self.done and self.keep and not self.extra

    def close(self) -> None:
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(self.sock)
        self.stream.close()


class Http1Pool:
    """Kept-alive HTTP/1.1 connections to the vault, each verified by ``backend`` when it is opened.

    Parameters
    ----------
    address : VaultAddress
        Where the vault listens (loopback TCP or a Unix socket).
    backend : VerifyingBackend
        Opens (and proves the server of) every connection.
    max_idle : int
        Idle connections kept for reuse.
    keepalive_expiry : float
        Seconds an idle connection is kept (below the vault's keep-alive timeout, so the client closes it first).
    """

    def __init__(
        self, address: VaultAddress, backend: VerifyingBackend, *, max_idle: int = 8, keepalive_expiry: float = 20.0
    ) -> None:
        self.address = address
        self.backend = backend
        self.max_idle = max_idle
        self.keepalive_expiry = keepalive_expiry
        self._lock = threading.Lock()
        self._idle: list[_Connection] = []
        self._pid = os.getpid()
        self._generation = 0  # close() moves it on: connections of an older one are closed when they come back

    def _forked(self) -> None:
        """In a forked child: close the child's copies of the parent's sockets (the parent's stay open), start over."""
        for conn in self._idle:
            conn.sock.close()  # closes this process's descriptor only; no shutdown, so the parent's connection lives
        self._idle = []
        self._lock = threading.Lock()  # another thread of the parent may have held it at the fork
        self._pid = os.getpid()

    def _take(self) -> tuple[_Connection | None, int]:
        if self._pid != os.getpid():
            self._forked()
        stale = []
        with self._lock:
            generation = self._generation
            conn = None
            now = time.monotonic()
            while self._idle:
                candidate = self._idle.pop()
                if now - candidate.idle_since < self.keepalive_expiry and not candidate.readable():
                    conn = candidate
                    break
                stale.append(candidate)
        for old in stale:
            old.close()
        return conn, generation

    def _give_back(self, conn: _Connection, generation: int) -> None:
        if not conn.reusable() or os.getpid() != self._pid:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        with self._lock:
            if generation == self._generation and len(self._idle) < self.max_idle:
                self._idle.append(conn)
                return
        conn.close()

    def _open(self, timeout: float | None) -> _Connection:
        if self.address.uds is not None:
            stream = self.backend.connect_unix_socket(self.address.uds, timeout=timeout)
        else:
            assert self.address.host is not None and self.address.port is not None
            stream = self.backend.connect_tcp(self.address.host, self.address.port, timeout=timeout)
        try:
            return _Connection(stream)
        except BaseException:
            stream.close()
            raise

    def request(self, method: str, data: bytes, limits: dict[str, Any]) -> Response:
        """Send the bytes of one request (``method`` is its method) and return the response.

        Parameters
        ----------
        method : str
            The request's method (only a ``GET`` is resent after the server closed a reused connection unanswered).
        data : bytes
            The whole request: request line, headers and body.
        limits : dict
            ``connect``, ``read`` and ``write`` timeouts in seconds (``None``: no limit), as ``httpx.Timeout``.
        """
        conn, generation = self._take()
        if conn is None:
            conn = self._open(limits.get("connect"))
            reused = False
        else:
            reused = True
        try:
            response = conn.exchange(data, method, limits, reused)
        except _Resend:
            conn.close()
            conn = self._open(limits.get("connect"))  # a fresh connection, verified as every new one
            try:
                response = conn.exchange(data, method, limits, False)
            except BaseException:
                conn.close()
                raise
        except BaseException:
            conn.close()
            raise
        self._give_back(conn, generation)
        return response

    def close(self) -> None:
        """Close the idle connections; those in use are closed when their request ends."""
        if self._pid != os.getpid():
            self._forked()
        with self._lock:
            idle, self._idle = self._idle, []
            self._generation += 1
        for conn in idle:
            conn.close()

    @property
    def idle(self) -> list[_Connection]:
        """The idle connections (for tests)."""
        return list(self._idle)
