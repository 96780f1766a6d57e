"""The vault's listening sockets: loopback TCP with ``TCP_NODELAY``, and a Unix socket that checks who connects.

* **Loopback TCP** (``127.0.0.1``, the laptop mode, and the review page of a deployment). The socket is made with
  ``IPPROTO_TCP``, so asyncio sets ``TCP_NODELAY`` on every accepted connection (a socket made with protocol 0 is
  skipped by asyncio, and each small response then waits for the client's delayed ACK: about 40 ms per request on
  a kept-alive connection). The protocol below sets it once more, whatever made the socket.
* **Unix socket** (the deployment: ``--socket /run/sandbox/vault.sock``). Its folder must belong to the vault's own
  account and be writable by no one else, so only the vault can have put the socket there (clients check that too,
  :mod:`sandbox._private.kernel.trust`); the socket is mode 0660, so the folder's group (the analysts) may connect.
  Each connection's peer is read with ``SO_PEERCRED``: the vault's own account, root and members of the folder's
  group are served, anyone else is disconnected before a byte is read.
"""

from __future__ import annotations

import asyncio
import grp
import logging
import os
import pwd
import socket
import stat
import struct
from functools import lru_cache
from pathlib import Path
from typing import Any

from sandbox._private.shared.errors import OutputPathError

__all__ = ["bind_tcp", "bind_unix", "protocol_class", "peer_credentials"]

log = logging.getLogger("sandbox.vault")


def bind_tcp(port: int) -> socket.socket:
    """Listen on ``127.0.0.1:port`` (0: a free port), with ``TCP_NODELAY``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        sock.close()
        raise OutputPathError(
            f"Cannot listen on 127.0.0.1:{port}: {exc.strerror}. Use --port 0 for a free port, or find the program "
            "that holds the port (`ss -ltnp`)."
        ) from None
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def _check_folder(folder: Path) -> os.stat_result:
    try:
        st = os.stat(folder)
    except OSError as exc:
        raise OutputPathError(
            f"The socket folder {folder} cannot be used ({exc.strerror}); create it as root with "
            f"`install -d -o <vault user> -g <analysts group> -m 2750 {folder}`."
        ) from None
    if st.st_uid != os.geteuid():
        raise OutputPathError(
            f"The socket folder {folder} belongs to {_name(st.st_uid)!r}, not to the vault's account "
            f"{_name(os.geteuid())!r}; clients would not trust a socket there. Give it to the vault's account."
        )
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise OutputPathError(
            f"The socket folder {folder} (mode {stat.S_IMODE(st.st_mode):o}) is writable by others; make it "
            "2750 (owner the vault, group the analysts), so no one else can put a socket there."
        )
    return st


def bind_unix(path: str | Path) -> socket.socket:
    """Listen on the Unix socket ``path`` (mode 0660 in a folder only the vault's account may write)."""
    path = Path(path).absolute()
    _check_folder(path.parent)
    if path.exists() or path.is_symlink():
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise OutputPathError(f"{path} exists and is not a socket; remove it or choose another --socket path.")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()  # a socket left by a vault that stopped
        else:
            raise OutputPathError(f"Another vault already listens on {path}; stop it first.")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o117)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old)
    os.chmod(path, 0o660)
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def peer_credentials(sock: Any) -> tuple[int, int, int]:
    """``(pid, uid, gid)`` of the process at the other end of a Unix socket."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return int(pid), int(uid), int(gid)


def _name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


@lru_cache(maxsize=1024)
def _in_group(uid: int, gid: int, group: int) -> bool:
    if gid == group:
        return True
    try:
        user = pwd.getpwuid(uid)
        return group in os.getgrouplist(user.pw_name, user.pw_gid)
    except KeyError:
        return False


def _allowed(uid: int, gid: int, group: int) -> bool:
    return uid in (0, os.geteuid()) or _in_group(uid, gid, group)


def protocol_class(socket_group: int | None) -> type:
    """Return uvicorn's httptools protocol, with ``TCP_NODELAY`` on TCP and the peer check on Unix connections.

    httptools parses in C; uvicorn's h11 protocol (pure Python) cost about 0.5 ms of the vault's CPU per request.
    Each response is written with its head and body together (:class:`OneWrite`), on a connection without TLS
    straight to its socket.
    """
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class VaultProtocol(HttpToolsProtocol):
        def on_headers_complete(self) -> None:
            super().on_headers_complete()
            if self.cycle is not None and not isinstance(self.cycle.transport, OneWrite):
                self.cycle.transport = OneWrite(self.cycle.transport, self.plain_fd)  # type: ignore[assignment]

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            sock = transport.get_extra_info("socket")
            self.plain_fd: int | None = None
            if sock is None:
                return
            if transport.get_extra_info("sslcontext") is None and transport.get_extra_info("ssl_object") is None:
                self.plain_fd = sock.fileno()  # no TLS on this connection: its bytes may go to the socket directly
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            elif sock.family == socket.AF_UNIX and socket_group is not None:
                pid, uid, gid = peer_credentials(sock)
                if not _allowed(uid, gid, socket_group):
                    try:
                        group = grp.getgrgid(socket_group).gr_name
                    except KeyError:
                        group = str(socket_group)
                    log.warning("refused a connection from %s (pid %d): not in group %s", _name(uid), pid, group)
                    transport.close()

    return VaultProtocol


class OneWrite:
    """The transport a response is written to: its head goes out with its body, in one ``write``.

    uvicorn writes a response's status line and headers, then its body: with ``TCP_NODELAY`` that is two system
    calls and two segments for the client to read. The head is held until the next write of the response (the
    body, written in the same step of the event loop by every response of the vault) and at most until the end
    of the loop's current iteration, when it is written on its own (a response whose body comes later, or never).
    Everything else is the connection's own transport.
    """

    __slots__ = ("_fd", "_held", "_transport")

    def __init__(self, transport: Any, plain_fd: int | None = None) -> None:
        self._transport = transport
        self._fd = plain_fd
        self._held: bytes | None = None

    def _write(self, data: bytes) -> None:
        """Write ``data``; on a connection without TLS whose transport holds nothing unsent, with ``os.write``.

        uvloop's ``write`` makes its system call holding the GIL, and on loopback that call also runs the receiving
        end's TCP stack: 11% of the vault's GIL time at 450 responses/s (``py-spy record --gil``). ``os.write``
        releases the GIL during the call, so the ledger's threads run meanwhile. What the socket does not take (or
        an error) is left to the transport, which then writes or reports it as it would have.
        """
        transport = self._transport
        if self._fd is not None and not transport.get_write_buffer_size() and not transport.is_closing():
            try:
                sent = os.write(self._fd, data)
            except OSError:
                sent = 0
            if sent == len(data):
                return
            data = data[sent:]
        transport.write(data)

    def write(self, data: bytes) -> None:
        if self._held is not None:
            data, self._held = self._held + data, None
        elif data.startswith(b"HTTP/") and not data.startswith(b"HTTP/1.1 100 "):  # a head, not "100 Continue"
            self._held = data
            asyncio.get_running_loop().call_soon(self.flush)
            return
        self._write(data)

    def flush(self) -> None:
        """Write a held head now (on its own); nothing if there is none or the connection is closing."""
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
