"""A response's head and body leave the vault in one write (``listeners.OneWrite``), and nothing is held back.

Reference: the bytes the connection's transport receives, in order, against what uvicorn wrote.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sandbox._private.vault.listeners import OneWrite


class _Transport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> Any:
        return f"info {name}"

    def get_write_buffer_size(self) -> int:
        return sum(map(len, self.writes))  # what it was given stays unsent: the socket is slow


HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


def test_head_and_body_of_a_response_go_in_one_write() -> None:
    async def run() -> list[bytes]:
        t = _Transport()
        w = OneWrite(t)
        w.write(HEAD)
        assert t.writes == []  # held for its body
        w.write(b"{}")
        await asyncio.sleep(0)  # the end-of-iteration flush finds nothing held
        w.write(HEAD)
        w.write(b"[]")  # the next response on the connection: its own single write, after the first
        await asyncio.sleep(0)
        assert w.get_extra_info("socket") == "info socket"  # everything else is the transport's
        return t.writes

    assert asyncio.run(run()) == [HEAD + b"{}", HEAD + b"[]"]


def test_a_head_without_its_body_in_the_same_step_is_written_at_the_end_of_the_iteration() -> None:
    async def run() -> list[list[bytes]]:
        t = _Transport()
        w = OneWrite(t)
        w.write(HEAD)
        seen = [list(t.writes)]
        await asyncio.sleep(0)
        seen.append(list(t.writes))
        await asyncio.sleep(0.01)  # a streamed body comes later: written as it is
        w.write(b"{}")
        seen.append(list(t.writes))
        return seen

    assert asyncio.run(run()) == [[], [HEAD], [HEAD, b"{}"]]


def test_continue_passes_at_once_and_close_writes_what_is_held() -> None:
    async def run() -> tuple[list[bytes], bool]:
        t = _Transport()
        w = OneWrite(t)
        w.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        assert t.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]  # the client waits for it before sending its body
        w.write(HEAD)
        w.close()
        return t.writes, t.closed

    writes, closed = asyncio.run(run())
    assert writes == [b"HTTP/1.1 100 Continue\r\n\r\n", HEAD] and closed


def test_a_head_held_for_a_closing_connection_is_dropped() -> None:
    async def run() -> list[bytes]:
        t = _Transport()
        w = OneWrite(t)
        w.write(HEAD)
        t.closed = True  # the protocol closed the connection meanwhile (a timeout, the client went away)
        await asyncio.sleep(0)
        return t.writes

    assert asyncio.run(run()) == []


def test_the_served_protocol_writes_each_response_once() -> None:
    """uvicorn's own protocol, as the vault serves it, on a real loopback connection: one write per response."""
    import socket

    import uvicorn

    from sandbox._private.vault.listeners import protocol_class

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await receive()
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
            await send({"type": "http.response.body", "body": b"ok"})

    writes: list[bytes] = []  # what left for the connection

    async def run() -> bytes:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        config = uvicorn.Config(app, http=protocol_class(None), lifespan="off", log_level="warning")
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            await asyncio.sleep(0.01)
        reader, writer = await asyncio.open_connection(*sock.getsockname())
        original = OneWrite._write

        def spy(self: OneWrite, data: bytes) -> None:
            assert self._fd is not None  # a plain loopback connection: written to its socket directly
            writes.append(data)
            original(self, data)

        OneWrite._write = spy  # type: ignore[method-assign]
        try:
            for _ in range(2):  # two requests on one kept-alive connection
                writer.write(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
                await writer.drain()
                head = await reader.readuntil(b"\r\n\r\n")
                body = await reader.readexactly(2)
        finally:
            OneWrite._write = original  # type: ignore[method-assign]
            writer.close()
            server.should_exit = True
            await serving
        return head + body

    got = asyncio.run(run())
    assert got.startswith(b"HTTP/1.1 200 OK\r\n") and got.endswith(b"\r\n\r\nok")
    assert len(writes) == 2 and all(w.startswith(b"HTTP/1.1 200 OK\r\n") and w.endswith(b"ok") for w in writes)


def test_bytes_go_to_the_socket_in_order_and_what_it_does_not_take_to_the_transport() -> None:
    """A plain connection's bytes are written to its socket (``os.write``, which releases the GIL): all of them when
    it takes them; the rest to the transport when it takes part; everything to the transport while the transport
    holds unsent bytes (which must go first) or when there is no plain socket (TLS). Reference: the bytes the peer
    reads, and those the transport got, in order."""
    import socket

    ours, peer = socket.socketpair()
    ours.setblocking(False)
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    try:

        async def run() -> tuple[bytes, list[bytes], list[bytes]]:
            direct, no_socket, tls = _Transport(), _Transport(), _Transport()
            w = OneWrite(direct, ours.fileno())
            w.write(HEAD)
            w.write(b"{}")  # head and body together, straight to the socket
            big = bytes(range(256)) * 4096  # more than the socket takes at once
            w.write(big)
            first = peer.recv(len(HEAD) + 2, socket.MSG_WAITALL)
            taken = len(big) - sum(map(len, direct.writes))
            assert 0 < taken < len(big) and b"".join(direct.writes) == big[taken:]  # the rest, after what it took
            w.write(b"after")  # the transport holds unsent bytes: these go behind them
            assert direct.writes[-1] == b"after"
            OneWrite(no_socket, None).write(b"x")
            t = OneWrite(tls, None)
            t.write(HEAD)
            t.write(b"ok")
            return first + peer.recv(taken, socket.MSG_WAITALL), direct.writes, no_socket.writes + tls.writes

        got, rest, others = asyncio.run(run())
    finally:
        ours.close()
        peer.close()
    sent = got[len(HEAD) + 2 :]
    assert got[: len(HEAD) + 2] == HEAD + b"{}" and sent == (bytes(range(256)) * 4096)[: len(sent)]
    assert rest[-1] == b"after" and others == [b"x", HEAD + b"ok"]
