"""Every log line the process writes during a test, formatted as flowsvc writes them to stderr."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from menuflow.logs import JsonFormatter


@dataclass
class Captured:
    stream: io.StringIO

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    @property
    def events(self) -> list[dict[str, Any]]:
        """Each line parsed: fails if any record did not make exactly one line of JSON."""
        return [json.loads(line) for line in self.text.splitlines()]

    def named(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == event]


@contextmanager
def captured_logs(level: int = logging.INFO, *, debug: Iterable[str] = ()) -> Iterator[Captured]:
    """A JSON-lines handler on the root logger (as `configure_logging` installs) for the block;
    the loggers named in `debug` (flowsvc.messages: a line per handled message) at DEBUG too."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("flowsvc"))
    verbose = [logging.getLogger(name) for name in debug]
    handler.setLevel(logging.DEBUG if verbose else level)
    root = logging.getLogger()
    previous = root.level
    before = [logger.level for logger in verbose]
    root.addHandler(handler)
    root.setLevel(min(level, previous) if previous else level)
    for logger in verbose:
        logger.setLevel(logging.DEBUG)
    try:
        yield Captured(stream)
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)
        for logger, was in zip(verbose, before, strict=True):
            logger.setLevel(was)
