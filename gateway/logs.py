"""Structured logs: one `event key=value ...` line per event, phone numbers masked."""

from __future__ import annotations

import json
import logging
import re
import sys
from typing import Any

_PLAIN = re.compile(r"[A-Za-z0-9_.:/@+*=#-]*")


def mask_phone(number: str) -> str:
    """Keep the last 4 characters: enough to tell customers apart, not enough to reach one."""
    return "*" * max(0, min(len(number) - 4, 8)) + number[-4:] if len(number) > 4 else "****"


def _value(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    if _PLAIN.fullmatch(text) and text:
        return text
    # Quoted and escaped: a newline or a forged "key=value" in a value can't fake a log line.
    return json.dumps(text)


def log(logger: logging.Logger, level: int, event: str, **fields: Any) -> None:
    """Log `event` with fields; nothing is formatted when the level is off."""
    if logger.isEnabledFor(level):
        parts = [event, *(f"{key}={_value(value)}" for key, value in fields.items())]
        logger.log(level, " ".join(parts))


def configure(level: str) -> None:
    """Root logging for `python -m gateway`: one line per event on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s", "%Y-%m-%dT%H:%M:%S")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
