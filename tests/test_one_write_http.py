"""The stand-in's uvicorn protocol hands an answer's writes to the socket as one write."""

from __future__ import annotations

import asyncio

import pytest

from tests.one_write_http import CoalescingTransport


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Socket(asyncio.Transport):
    """What reaches the socket: each write, and whether it was closed."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


@pytest.mark.anyio
async def test_writes_in_one_turn_of_the_loop_go_out_as_one() -> None:
    socket = Socket()
    transport = CoalescingTransport(socket, asyncio.get_running_loop())
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.write(b"{}")
    assert socket.writes == []
    await asyncio.sleep(0)
    assert socket.writes == [b"HTTP/1.1 200 OK\r\n\r\n{}"]


@pytest.mark.anyio
async def test_closing_sends_what_was_written_first() -> None:
    socket = Socket()
    transport = CoalescingTransport(socket, asyncio.get_running_loop())
    transport.write(b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n")
    transport.close()
    assert socket.writes == [b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n"]
    assert socket.closed and transport.is_closing()


@pytest.mark.anyio
async def test_nothing_is_written_to_a_connection_closed_meanwhile() -> None:
    socket = Socket()
    transport = CoalescingTransport(socket, asyncio.get_running_loop())
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    socket.close()  # the client went away
    await asyncio.sleep(0)
    assert socket.writes == []
