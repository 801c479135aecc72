"""A webhook endpoint for event delivery tests: a real HTTP server on loopback that checks each
POST's signature the way the README tells receivers to, records the events, and answers what
the test tells it to (200, an error status, or nothing until released)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

from tests.graph_standin import ServerThread

SECRET = "receiver-secret-1"


def signature_ok(secret: str, header: str, body: bytes, tolerance: float = 300) -> bool:
    """The README's verification snippet."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    timestamp = fields.get("t", "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > tolerance:
        return False
    signed = timestamp.encode() + b"." + body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields.get("v1", ""))


@dataclass
class Post:
    """One POST the receiver got: its events (as JSON), whether it was signed right, and what
    it was answered (0: nothing, the sender gave up or died first)."""

    endpoint: str
    events: list[dict[str, Any]]
    signed: bool
    answered: int = 0

    @property
    def ids(self) -> list[int]:
        return [int(e["id"]) for e in self.events]


@dataclass
class Receiver:
    """The ASGI app; `answer` is the status to give (0: hold the request until `release`)."""

    secret: str = SECRET
    answer: int = 200
    posts: list[Post] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _released: threading.Event = field(default_factory=threading.Event)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        body = await request.body()
        document = json.loads(body)
        post = Post(
            endpoint=document["endpoint"],
            events=document["events"],
            signed=signature_ok(self.secret, request.headers.get("x-menuflow-signature", ""), body),
        )
        with self._lock:
            self.posts.append(post)
            status = self.answer
        if status == 0:  # held: its sender has given up or died by the time it is released
            while not self._released.is_set():
                await asyncio.sleep(0.02)
            status = 503
        else:
            post.answered = status
        response: Response = PlainTextResponse("ok" if status < 300 else "no", status_code=status)
        await response(scope, receive, send)

    def release(self) -> None:
        self._released.set()

    def delivered(self, endpoint: str = "") -> list[int]:
        """The ids of the events answered 2xx, in the order they came (repeats kept)."""
        with self._lock:
            posts = list(self.posts)
        return [
            i
            for p in posts
            if 200 <= p.answered < 300 and (not endpoint or p.endpoint == endpoint)
            for i in p.ids
        ]

    def all_posts(self) -> list[Post]:
        with self._lock:
            return list(self.posts)


class ReceiverServer(ServerThread):
    """A Receiver on a loopback port."""

    def __init__(self, receiver: Receiver | None = None) -> None:
        self.receiver = receiver or Receiver()
        super().__init__(self.receiver)
