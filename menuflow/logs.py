"""Structured logs for both services: one JSON object per line, phone numbers masked.

Log calls pass their fields as `extra` (`logger.info("swept", extra={"expired": 3})`) or through
`log(logger, level, "event", key=value)`. Every value is JSON-escaped, so a customer's text with
newlines or control characters can never split or forge a log line.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}
# Phone numbers in free text (a database error's detail, a library's message): 7+ digits.
_NUMBERS = re.compile(r"\d{7,}")
# Meta's message ids ("wamid." and base64) carry the customer's number, base64-encoded.
_MESSAGE_IDS = re.compile(r"wamid\.[A-Za-z0-9+/=_-]+")
_LINE_BREAKS = {ord(ch): f"\\u{ord(ch):04x}" for ch in "\x85\u2028\u2029"}


def mask_phone(number: str) -> str:
    """Keep the last 4 digits, enough to tell customers apart in a log, too few to reach one."""
    digits = "".join(ch for ch in number if ch.isdigit())
    return "***" + digits[-4:] if len(digits) > 4 else "***"


def mask_message_id(message_id: str) -> str:
    """A short hash of a message id: the same id gives the same hash in every line and process,
    so lines can be matched up, but the id (a wamid holds the customer's number) cannot be read
    back."""
    digest = hashlib.blake2b(message_id.encode("utf-8", "replace"), digest_size=6).hexdigest()
    return f"id#{digest}"


def mask_numbers(text: str) -> str:
    """`text` with every Meta message id hashed and every run of 7 or more digits masked as
    mask_phone masks a number."""
    text = _MESSAGE_IDS.sub(lambda match: mask_message_id(match.group()), text)
    return _NUMBERS.sub(lambda match: mask_phone(match.group()), text)


def log(logger: logging.Logger, level: int, event: str, **fields: Any) -> None:
    """Log `event` with `fields`; nothing is built when the level is off."""
    if logger.isEnabledFor(level):
        clashing = _STANDARD.intersection(fields)
        for key in clashing:  # LogRecord refuses extra keys that shadow its own attributes
            fields[f"{key}_"] = fields.pop(key)
        logger.log(level, event, extra=fields)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self._service,
            "logger": record.name,
            "event": mask_numbers(record.getMessage()),
        }
        event.update((key, value) for key, value in vars(record).items() if key not in _STANDARD)
        if record.exc_info:
            event["exception"] = mask_numbers(self.formatException(record.exc_info))
        line = json.dumps(event, default=str, ensure_ascii=False)
        # JSON leaves these raw, but many log readers break lines at them.
        return line.translate(_LINE_BREAKS)


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send every log record to stderr as JSON lines; called once, by a service's __main__."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Libraries that log every request or every schema check at INFO: our own events say more.
    for chatty in ("httpx", "httpcore", "alembic.runtime.migration"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))
