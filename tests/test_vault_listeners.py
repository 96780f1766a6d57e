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

    writes: list[bytes] = []  # what reached the connection's transport

    async def run() -> bytes:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        config = uvicorn.Config(app, http=protocol_class(None), lifespan="off", log_level="warning")
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            await asyncio.sleep(0.01)
        reader, writer = await asyncio.open_connection(*sock.getsockname())
        original = OneWrite.write

        def spy(self: OneWrite, data: bytes) -> None:
            transport_write = self._transport.write
            self._transport.write = lambda d: (writes.append(d), transport_write(d))  # type: ignore[method-assign]
            try:
                original(self, data)
            finally:
                self._transport.write = transport_write  # type: ignore[method-assign]

        OneWrite.write = spy  # type: ignore[method-assign]
        try:
            for _ in range(2):  # two requests on one kept-alive connection
                writer.write(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
                await writer.drain()
                head = await reader.readuntil(b"\r\n\r\n")
                body = await reader.readexactly(2)
        finally:
            OneWrite.write = original  # type: ignore[method-assign]
            writer.close()
            server.should_exit = True
            await serving
        return head + body

    got = asyncio.run(run())
    assert got.startswith(b"HTTP/1.1 200 OK\r\n") and got.endswith(b"\r\n\r\nok")
    assert len(writes) == 2 and all(w.startswith(b"HTTP/1.1 200 OK\r\n") and w.endswith(b"ok") for w in writes)
