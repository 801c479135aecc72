"""A TCP proxy in front of the Graph API stand-in that can drop connections before Meta sees them.

"Dropped connection" here means: the stand-in never receives the request. While dropping, the
proxy resets a connection at the start of each new request (HTTP/1.1 without pipelining: a client
sends its next request only after the whole previous answer came back) and forwards nothing of it.
A request already forwarded is answered normally, so a drop never hides an answer the stand-in
gave: that would make the gateway resend a message Meta accepted (an ambiguous send, which the
gateway's at-least-once policy may legitimately duplicate).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading


class DropProxy:
    """Forwards 127.0.0.1:`port` to 127.0.0.1:`upstream`; `dropping` switches the fault on."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.dropping = False
        self.dropped = 0  # requests reset before reaching the stand-in
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True, name="drop-proxy")
        self._ready = threading.Event()
        self._server: asyncio.Server | None = None

    def start(self) -> DropProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._connection, sock=self._socket, backlog=512)
        )
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            self._server.close()
            tasks = asyncio.all_tasks(self._loop)
            for task in tasks:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            self._loop.close()

    async def _connection(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter):
        upstream_w: asyncio.StreamWriter | None = None
        awaiting_answer = False  # a request was forwarded and its answer has not begun
        pipe: asyncio.Task[None] | None = None

        async def answers(reader: asyncio.StreamReader) -> None:
            nonlocal awaiting_answer
            while data := await reader.read(65536):
                awaiting_answer = False
                client_w.write(data)
                await client_w.drain()
            client_w.close()

        try:
            while data := await client_r.read(65536):
                if not awaiting_answer:
                    if self.dropping:
                        self.dropped += 1
                        _reset(client_w)
                        return
                    awaiting_answer = True
                if upstream_w is None:
                    upstream_r, upstream_w = await asyncio.open_connection(
                        "127.0.0.1", self.upstream
                    )
                    pipe = asyncio.create_task(answers(upstream_r))
                upstream_w.write(data)
                await upstream_w.drain()
            if upstream_w is not None:
                upstream_w.write_eof()
            if pipe is not None:
                await pipe
        except (ConnectionError, OSError):
            _reset(client_w)
        finally:
            if pipe is not None and not pipe.done():
                pipe.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pipe
            if upstream_w is not None:
                upstream_w.close()
            client_w.close()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0): the client sees "connection reset", not a clean end."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
