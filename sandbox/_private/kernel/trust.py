"""Who the vault is: what the client checks on every new connection before a token goes over it.

A bearer token is the analyst's (or reviewer's) identity, so it may only be sent to the vault itself, never to
whoever holds the vault's address at the moment: another local user can bind a loopback port while the vault is
down, or put a socket where the vault's used to be. The client therefore proves the server's identity on each new
connection, before the first byte of a request is written, with facts the operating system vouches for:

* **Unix domain socket** (``unix:/run/sandbox/vault.sock``, the deployment): the socket's directory must not be
  writable by anyone but its owner (so only that account can have put the socket there), and the process at the
  other end must run as that account (``SO_PEERCRED``), or as ``SANDBOX_VAULT_USER`` when that names it.
* **Loopback TCP** (``http://127.0.0.1:PORT``, the laptop mode and small deployments): Linux records which OS account
  owns each socket (``/proc/net/tcp``); the server's end of this very connection must belong to the expected
  account: the workspace owner for a local vault (``sb.connect()``), ``SANDBOX_VAULT_USER`` when set, otherwise the
  client's own account.
* anything else (plain HTTP to another host) is refused: a token sent there could be read by anyone on the path.

A server that fails the check gets nothing: the connection is closed and :class:`VaultIdentityError` names the URL,
the account expected and the one found.
"""

from __future__ import annotations

import os
import pwd
import socket
import stat
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpcore

from sandbox._private.shared.errors import VaultIdentityError

__all__ = ["VaultAddress", "Expectation", "expect", "VerifyingBackend", "parse_address", "VAULT_USER_ENV"]

#: Names the OS account a deployed vault runs as (default: the owner of its socket's directory, or yourself).
VAULT_USER_ENV = "SANDBOX_VAULT_USER"
_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}
_PEER_LOOKUP_TRIES = 40  # x 5 ms: the server's end of a fresh loopback connection shows up within microseconds


@dataclass(frozen=True)
class VaultAddress:
    """Where the vault listens: a loopback TCP host and port, or a Unix socket path."""

    url: str
    base_url: str
    uds: str | None = None
    host: str | None = None
    port: int | None = None


def parse_address(url: str) -> VaultAddress:
    """Parse ``http://127.0.0.1:PORT`` or ``unix:/path/vault.sock`` (also ``unix:///path``).

    Raises
    ------
    VaultIdentityError
        For a URL the client will not send a token to (another host over plain HTTP, a relative socket path).
    """
    text = url.strip().rstrip("/")
    if text.startswith("unix:"):
        path = unquote(text[len("unix:") :])
        if path.startswith("//"):
            path = path[2:]
        if not path.startswith("/"):
            raise VaultIdentityError(
                f"Vault URL {url!r} names a relative socket path; give an absolute one, "
                "e.g. unix:/run/sandbox/vault.sock."
            )
        return VaultAddress(url=text, base_url="http://vault", uds=path)
    parts = urlsplit(text)
    host = (parts.hostname or "").lower()
    if parts.scheme == "http" and (host in _LOOPBACK_NAMES or host.startswith("127.")):
        port = parts.port or 80
        return VaultAddress(url=text, base_url=text, host=host, port=port)
    raise VaultIdentityError(
        f"Vault URL {url!r} is neither a loopback address (http://127.0.0.1:PORT) nor a Unix socket "
        "(unix:/path/vault.sock); a token sent there could be read on the way. Ask the operator for the vault's "
        "socket path, or connect through an SSH tunnel to the vault host."
    )


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _uid_of(user: str) -> int:
    if user.isdigit():
        return int(user)
    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        raise VaultIdentityError(
            f"{VAULT_USER_ENV}={user!r} names no OS account on this machine; set it to the account the vault runs as."
        ) from None


@dataclass(frozen=True)
class Expectation:
    """The OS account the server at ``address`` must run as, and why the client expects that one."""

    address: VaultAddress
    uid: int
    why: str

    @property
    def user(self) -> str:
        return _user(self.uid)

    def refuse(self, found: str) -> VaultIdentityError:
        return VaultIdentityError(
            f"Refusing to send a token to {self.address.url}: the vault there must run as OS account {self.user!r} "
            f"({self.why}), but {found}. Another program may hold the vault's address; check that the vault is "
            f"running (`sandbox vault serve`), or set {VAULT_USER_ENV} to the account it runs as."
        )


def expect(url: str, *, vault_uid: int | None = None, vault_user: str | None = None) -> Expectation:
    """Work out whom the server at ``url`` must be.

    Parameters
    ----------
    url : str
        The vault's URL (see :func:`parse_address`).
    vault_uid : int, optional
        The account a local vault runs as (the launcher passes the workspace owner's).
    vault_user : str, optional
        The account a deployed vault runs as (default ``$SANDBOX_VAULT_USER``).
    """
    address = parse_address(url)
    vault_user = vault_user or os.environ.get(VAULT_USER_ENV) or None
    wanted = _uid_of(vault_user) if vault_user else vault_uid
    if address.uds is not None:
        folder = Path(address.uds).parent
        try:
            st = os.stat(folder)
        except OSError as exc:
            raise VaultIdentityError(
                f"Cannot reach the vault socket {address.uds}: its folder {folder} is not accessible "
                f"({exc.strerror}). Ask the operator to add you to the analysts' group."
            ) from None
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise VaultIdentityError(
                f"Refusing to use the vault socket {address.uds}: its folder {folder} "
                f"(mode {stat.S_IMODE(st.st_mode):o}) is writable by others, so anyone could have put a socket there. "
                "The operator must make it owned by the vault's account and not group- or world-writable (mode 2750)."
            )
        if wanted is not None and st.st_uid != wanted:
            raise VaultIdentityError(
                f"Refusing to use the vault socket {address.uds}: its folder {folder} belongs to {_user(st.st_uid)!r}, "
                f"not to the vault's account {_user(wanted)!r}."
            )
        why = f"{VAULT_USER_ENV}" if vault_user else f"the owner of {folder}"
        return Expectation(address, st.st_uid, why)
    if vault_user:
        return Expectation(address, _uid_of(vault_user), f"{VAULT_USER_ENV}={vault_user}")
    if vault_uid is not None:
        return Expectation(address, vault_uid, "the owner of the workspace whose vault this is")
    return Expectation(address, os.geteuid(), f"your own account, as {VAULT_USER_ENV} is not set")


def _hex_address(text: str) -> tuple[str, int]:
    """Decode one ``ADDR:PORT`` field of ``/proc/net/tcp`` or ``tcp6``."""
    addr_hex, port_hex = text.split(":")
    raw = bytes.fromhex(addr_hex)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))  # each 32-bit word is host-endian
    family = socket.AF_INET if len(words) == 4 else socket.AF_INET6
    return socket.inet_ntop(family, words), int(port_hex, 16)


def _normal(host: str) -> str:
    return host[7:] if host.startswith("::ffff:") else host


def _socket_owner(local: tuple[str, int], remote: tuple[str, int]) -> int | None:
    """Return the uid owning the TCP socket with local end ``local`` and remote end ``remote`` (``/proc/net``)."""
    want = ((_normal(local[0]), local[1]), (_normal(remote[0]), remote[1]))
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text(encoding="ascii").splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 8:
                continue
            lh, lp = _hex_address(fields[1])
            rh, rp = _hex_address(fields[2])
            if ((_normal(lh), lp), (_normal(rh), rp)) == want:
                return int(fields[7])
    return None


def peer_uid(sock: socket.socket) -> int | None:
    """Return the OS account of the process at the other end of ``sock`` (Unix socket or loopback TCP), if known."""
    if sock.family == socket.AF_UNIX:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        return int(struct.unpack("3i", creds)[1])
    mine, theirs = sock.getsockname()[:2], sock.getpeername()[:2]
    for _ in range(_PEER_LOOKUP_TRIES):
        owner = _socket_owner(theirs, mine)
        if owner is not None:
            return owner
        time.sleep(0.005)
    return None


def check_peer(sock: socket.socket, expectation: Expectation) -> None:
    """Raise :class:`VaultIdentityError` unless the process behind ``sock`` runs as the expected account."""
    uid = peer_uid(sock)
    if uid is None:
        raise expectation.refuse("the operating system does not say who owns the server's socket (no /proc/net/tcp)")
    if uid != expectation.uid:
        raise expectation.refuse(f"the server there runs as {_user(uid)!r}")


class VerifyingBackend(httpcore.SyncBackend):
    """httpcore's socket backend, checking the server's identity on every new connection before it is used.

    It also sets ``TCP_NODELAY``, so a small request is not held back waiting for the ACK of the previous one.
    ``connects`` counts the connections opened (a kept-alive client opens one).
    """

    def __init__(self, expectation: Expectation) -> None:
        self.expectation = expectation
        self.connects = 0

    def _verified(self, stream: httpcore.NetworkStream) -> httpcore.NetworkStream:
        sock: socket.socket = stream.get_extra_info("socket")
        try:
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            check_peer(sock, self.expectation)
        except BaseException:
            stream.close()
            raise
        self.connects += 1
        return stream

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        return self._verified(super().connect_tcp(host, port, timeout, local_address, socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        return self._verified(super().connect_unix_socket(path, timeout, socket_options))
