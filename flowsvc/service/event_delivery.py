"""ClaimEventDelivery, AckEventDelivery and ListDeadLetters: the event log delivered to webhook
endpoints by gateways, at least once, in id order (so in order per customer).

Each endpoint has a durable cursor: every event up to it was delivered (the endpoint answered
2xx) or given up on (a dead letter). One gateway at a time holds an endpoint's lease; it reads
the events after the cursor, posts them, and acks, which moves the cursor. A gateway that dies
mid-delivery leaves the cursor where it was: the next owner posts the batch again (at least
once, never a gap). Events the endpoint's filter does not want move the cursor as they are
passed over.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from flowsvc.clock import Clock, utcnow
from flowsvc.errors import Aborted, InvalidArgument
from flowsvc.service.event_feed import TYPES
from flowsvc.service.event_hub import Committed, EventHub, committed
from flowsvc.service.paging import decode_token, encode_token, page_size
from flowsvc.store import event_deliveries, events
from flowsvc.store.event_deliveries import Letter
from flowsvc.store.events import Filter
from flowsvc.store.models import EventDeadLetter

DEFAULT_LEASE_SECONDS = 30
DEFAULT_MAX_EVENTS = 100
MAX_EVENTS = 500
MAX_WAIT_MS = 5000


@dataclass(frozen=True)
class ClaimRequest:
    """What a deliverer asks for; see ClaimEventDeliveryRequest."""

    endpoint: str
    owner: str
    lease_seconds: int = 0
    max_events: int = 0
    wait_ms: int = 0
    wanted: Filter = Filter()
    from_oldest: bool = False
    renew_only: bool = False


@dataclass(frozen=True)
class Claim:
    """The answer: whether the caller holds the lease, and the events it should deliver."""

    leased: bool
    holder: str
    lease_expires_at: datetime
    cursor: int
    items: list[Committed]
    through_id: int


class EventDeliveries:
    """Endpoints' cursors, leases and dead letters."""

    def __init__(
        self, sessions: sessionmaker[Session], hub: EventHub, *, clock: Clock = utcnow
    ) -> None:
        self._sessions = sessions
        self._hub = hub
        self._clock = clock

    def claim(self, request: ClaimRequest) -> Claim:
        _check_claim(request)
        now = self._clock()
        until = now + timedelta(seconds=request.lease_seconds or DEFAULT_LEASE_SECONDS)
        with self._sessions.begin() as session:
            last, purged = events.bounds(session)
            if not event_deliveries.exists(session, request.endpoint):
                start = purged if request.from_oldest else last
                event_deliveries.ensure(session, request.endpoint, start, now)
            leased = event_deliveries.take_lease(
                session, request.endpoint, request.owner, until, now
            )
            row = event_deliveries.get(session, request.endpoint)
            assert row is not None  # ensured above, and never deleted
            holder, expires, cursor = row.owner, row.lease_expires_at, row.cursor
            if leased and cursor < purged:
                # Retention deleted events the endpoint never got: say so durably, go on.
                event_deliveries.add_dead_letters(
                    session,
                    request.endpoint,
                    [Letter(purged, f"events {cursor + 1} to {purged} deleted by retention")],
                    now,
                )
                event_deliveries.advance(
                    session, request.endpoint, request.owner, cursor, purged, now
                )
                cursor = purged
        if not leased or request.renew_only:
            return Claim(leased, holder, expires, cursor, [], cursor)
        limit = min(request.max_events or DEFAULT_MAX_EVENTS, MAX_EVENTS)
        items, through = self._read(cursor, request.wanted, limit)
        if through == cursor and request.wait_ms:
            self._hub.wait(cursor, request.wait_ms / 1000)
            items, through = self._read(cursor, request.wanted, limit)
        if not items and through > cursor:
            # Nothing the endpoint wants: pass over these now rather than ack an empty batch.
            with self._sessions.begin() as session:
                now = self._clock()
                if event_deliveries.advance(
                    session, request.endpoint, request.owner, cursor, through, now
                ):
                    cursor = through
        return Claim(True, request.owner, until, cursor, items, max(through, cursor))

    def ack(
        self,
        endpoint: str,
        owner: str,
        from_id: int,
        through_id: int,
        letters: Sequence[Letter],
        *,
        release: bool = False,
    ) -> int:
        """Move `endpoint`'s cursor from `from_id` to `through_id`, recording `letters`; the
        cursor now. Aborted (nothing changed) if `owner` lost the lease or the cursor moved."""
        problems = _named(endpoint, owner)
        if from_id < 0 or through_id < from_id:
            problems.append(("through_id", "must not be before from_id, nor from_id negative"))
        outside = [letter.event_id for letter in letters if not from_id < letter.event_id]
        outside += [letter.event_id for letter in letters if letter.event_id > through_id]
        if outside:
            problems.append(("dead_letters", f"events {outside} are not in the batch acked"))
        if problems:
            raise InvalidArgument("bad event delivery ack", problems)
        now = self._clock()
        with self._sessions.begin() as session:
            moved = event_deliveries.advance(
                session, endpoint, owner, from_id, through_id, now, release=release
            )
            if not moved:
                row = event_deliveries.get(session, endpoint)
                held = f"held by {row.owner!r} at cursor {row.cursor}" if row else "unknown"
                raise Aborted(f"event delivery of {endpoint!r} is not {owner!r}'s now ({held})")
            event_deliveries.add_dead_letters(session, endpoint, letters, now)
        return through_id

    def dead_letters(
        self, endpoint: str, requested_size: int, token: str
    ) -> tuple[list[EventDeadLetter], str]:
        size = page_size(requested_size)
        before = decode_token(token, int)
        with self._sessions() as session:
            rows = event_deliveries.dead_letters(session, endpoint, before, size + 1)
        more = len(rows) > size
        return rows[:size], encode_token(rows[size - 1].id) if more else ""

    def _read(self, cursor: int, wanted: Filter, limit: int) -> tuple[list[Committed], int]:
        """The next events after `cursor` that `wanted` matches, and the id they run through."""
        with self._sessions() as session:
            last, _ = events.bounds(session)
            rows = events.read(session, cursor, last, wanted, limit)
        items = [committed(row) for row in rows]
        return items, items[-1].id if len(rows) == limit else last


def _named(endpoint: str, owner: str) -> list[tuple[str, str]]:
    problems = []
    if not endpoint or len(endpoint) > 128:
        problems.append(("endpoint", "required, at most 128 characters"))
    if not owner or len(owner) > 128:
        problems.append(("owner", "required, at most 128 characters"))
    return problems


def _check_claim(request: ClaimRequest) -> None:
    problems = _named(request.endpoint, request.owner)
    if request.lease_seconds < 0:
        problems.append(("lease_seconds", f"must not be negative (0: {DEFAULT_LEASE_SECONDS})"))
    if request.max_events < 0:
        problems.append(("max_events", f"must not be negative (0: {DEFAULT_MAX_EVENTS})"))
    if not 0 <= request.wait_ms <= MAX_WAIT_MS:
        problems.append(("wait_ms", f"from 0 to {MAX_WAIT_MS}"))
    unknown = request.wanted.types - TYPES
    if unknown:
        problems.append(("filter.types", f"unknown event types {sorted(unknown)}"))
    if problems:
        raise InvalidArgument("bad event delivery claim", problems)
