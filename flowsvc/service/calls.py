"""ClaimCalls: the calls call steps queued, leased to a caller (the gateway) that runs them
outside any transaction. Their results come back through MessageHandling.finish_call."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from flowsvc.clock import Clock, utcnow
from flowsvc.errors import InvalidArgument
from flowsvc.store import calls

MAX_CLAIM = 100
MAX_LEASE_SECONDS = 600


@dataclass(frozen=True)
class ClaimedCall:
    """A leased call, as the caller runs it."""

    id: int
    phone_number_id: str
    phone_number: str
    endpoint: str
    method: str
    path: str
    body_json: str
    timeout_seconds: float
    attempts: int  # claims so far, this one included


class CallQueue:
    """Hands out queued calls with a lease; each claim counts an attempt, so a caller can tell a
    call that may have reached its endpoint before (and not repeat it to one that is not
    idempotent)."""

    def __init__(self, sessions: sessionmaker[Session], clock: Clock = utcnow) -> None:
        self._sessions = sessions
        self._clock = clock

    def claim(self, owner: str, max_calls: int, lease_seconds: int) -> list[ClaimedCall]:
        problems = []
        if not owner:
            problems.append(("owner", "required"))
        if not 0 <= max_calls <= MAX_CLAIM:
            problems.append(("max_calls", f"from 1 to {MAX_CLAIM} (0: 20)"))
        if not 0 <= lease_seconds <= MAX_LEASE_SECONDS:
            problems.append(("lease_seconds", f"from 1 to {MAX_LEASE_SECONDS} (0: 60)"))
        if problems:
            raise InvalidArgument("bad claim", problems)
        now = self._clock()
        lease = timedelta(seconds=lease_seconds or 60)
        with self._sessions.begin() as session:
            rows = calls.claim(session, owner, max_calls or 20, lease, now)
            return [
                ClaimedCall(
                    id=row.id,
                    phone_number_id=row.phone_number_id,
                    phone_number=row.phone_number,
                    endpoint=row.endpoint,
                    method=row.method,
                    path=row.path,
                    body_json=row.body_json,
                    timeout_seconds=row.timeout_seconds,
                    attempts=row.attempts,
                )
                for row in rows
            ]
