"""The outbox's other half: leasing messages to senders, their send results, delivery statuses.

A customer's messages form a lane, sent strictly in id order by one sender at a time: a claim
takes all of a lane's pending messages (or none), and skips a lane while any of its messages is
leased to someone or its oldest message waits for a retry.

A message whose lease ended without an ack is "maybe sent": its sender may have died between
Meta's 200 and its ack. Its lane is claimed again only `maybe_sent_grace` after the lease ended,
time for the message's status webhook (which names the outbox id: see RecordStatus) to arrive and
record it as sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from itertools import groupby
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from flowsvc.clock import Clock, utcnow
from flowsvc.errors import InvalidArgument
from flowsvc.service.outbox_entries import OutboxEntry, from_row
from flowsvc.store import customers, events, outbox
from flowsvc.store.customers import Customer
from flowsvc.store.models import OutboxMessage


class AckKind(StrEnum):
    SENT = "sent"
    FAILED = "failed"
    RETRY = "retry"
    RELEASED = "released"


@dataclass(frozen=True)
class Ack:
    """What a sender reports for one leased message."""

    id: int
    kind: AckKind
    wa_message_id: str = ""
    delay_seconds: int = 0
    error_code: int | None = None
    error_title: str = ""
    error_details: str = ""


# A status only ever moves forward; "failed" can follow "sent" but not a delivery or a read.
STATUS_RANK = {"sent": 1, "failed": 2, "delivered": 3, "read": 4, "played": 5}


class Deliveries:
    """ClaimOutbox, AckOutbox and RecordStatus."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        clock: Clock = utcnow,
        maybe_sent_grace: timedelta = timedelta(seconds=5),
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._grace = maybe_sent_grace

    def claim(
        self, owner: str, max_messages: int, lease_seconds: int
    ) -> tuple[list[OutboxEntry], int]:
        """Lease whole lanes of due messages to `owner`: (messages, still pending)."""
        problems = []
        if not owner or len(owner) > 200:
            problems.append(("owner", "required, at most 200 characters"))
        if max_messages < 0:
            problems.append(("max_messages", "must not be negative (0: the default, 100)"))
        if lease_seconds < 0:
            problems.append(("lease_seconds", "must not be negative (0: the default, 60)"))
        if problems:
            raise InvalidArgument("bad claim", problems)
        limit = min(max_messages or 100, 1000)
        now = self._clock()
        lease = outbox.Lease(owner, now + timedelta(seconds=lease_seconds or 60))
        # A lease that ended less than the grace ago still holds its lane: the message may be sent.
        ended_by = now - self._grace
        with self._sessions.begin() as session:
            due = outbox.due_customers(session, now, limit, lease_ended_by=ended_by)
            claimed = _lease_lanes(session, due, lease, now, ended_by, limit)
            pending = outbox.count_pending(session)
        return _entries(claimed, lease), pending - len(claimed)

    def ack(self, owner: str, acks: Sequence[Ack], *, lease_next_seconds: int = 0) -> Acked:
        """Record send results: the ids whose lease `owner` no longer held and, with
        `lease_next_seconds`, the acked customers' next messages, leased to `owner`.

        Leasing the next messages hands a customer's lane from one sender to the next in the
        ack's own transaction: a reply committed while another gateway held the customer's
        earlier one goes out right after it, instead of waiting for a claim (and, under load,
        every later reply of the customer with it).
        """
        if not owner:
            raise InvalidArgument("bad ack", [("owner", "required")])
        if lease_next_seconds < 0:
            raise InvalidArgument("bad ack", [("lease_next_seconds", "must not be negative")])
        now = self._clock()
        by_id = {ack.id: ack for ack in acks}
        with self._sessions.begin() as session:
            # Two round trips on PostgreSQL: lock the messages and read who holds the Meta ids;
            # then write the acks and their events together (the events' statement last, as
            # store.events needs).
            locked = outbox.lock_for_ack(
                session,
                by_id,
                (a.wa_message_id for a in by_id.values() if a.kind is AckKind.SENT),
            )
            checked = _recordable(by_id.values(), locked.holders)
            settlements = [_settlement(ack, now) for ack in checked]
            settled, rows = outbox.settling(owner, now, settlements, locked.rows)
            drafts = [_finished(who, s) for who, s in settled.finished]
            # Before the settling statement: on PostgreSQL it must be the transaction's last.
            following = (
                self._lease_next(session, owner, now, lease_next_seconds, settled, locked.rows)
                if lease_next_seconds
                else []
            )
            if rows and session.connection().dialect.name == "postgresql":
                events.write_after(session, *outbox.pg_settle_statement(now, rows), drafts)
            else:
                outbox.write_settled(session.connection(), now, rows)
                events.record(session, drafts)
        return Acked(sorted(settled.lost), following)

    def _lease_next(
        self,
        session: Session,
        owner: str,
        now: datetime,
        lease_seconds: int,
        settled: outbox.Settled,
        locked: Sequence[tuple[Any, ...]],
    ) -> list[OutboxEntry]:
        """The pending messages of the customers whose message this ack sent or failed for good
        (or found so already: a repeated ack),
        leased to `owner` lane by lane as a claim leases them (a lane another sender holds, or
        whose oldest message waits for a retry, stays where it is).

        Messages `owner` holds already come back too (the sender drops those it has): a lane taken
        on by an ack whose answer was lost is still handed over by that ack's retry. A customer
        with a message this ack does not finish (a retry, a release) is left alone: that message
        is still pending under `owner`'s lease here, and nothing may overtake it.
        """
        done = {s.id for _, s in settled.finished}
        over = {row[0] for row in locked if row[0] in done or row[1] != outbox.PENDING}
        unfinished = {(row[4], row[5]) for row in locked if row[0] not in over}
        customers_over = {(row[4], row[5]) for row in locked if row[0] in over} - unfinished
        if not customers_over:
            return []
        lease = outbox.Lease(owner, now + timedelta(seconds=lease_seconds))
        leased = _lease_lanes(
            session,
            sorted(customers_over),
            lease,
            now,
            now - self._grace,
            NEXT_MAX,
            settling=done,
            holder=owner,
        )
        return _entries(leased, lease)

    def record_status(
        self,
        wa_message_id: str,
        status: str,
        errors: Sequence[tuple[int, str, str]] = (),
        *,
        outbox_id: int = 0,
        recipient: str = "",
    ) -> tuple[bool, str]:
        """Apply a delivery status unless it would move backwards: (matched, status now).

        The message is found by Meta's id, or else by `outbox_id` (the tracker it was sent with)
        when `recipient` is its customer: a status means Meta accepted the message, so a pending
        one is recorded as sent with Meta's id, whether or not its sender's ack ever comes.
        """
        if not wa_message_id:
            raise InvalidArgument("bad status", [("wa_message_id", "required")])
        if status not in STATUS_RANK:
            raise InvalidArgument("bad status", [("status", f"unknown status {status!r}")])
        with self._sessions.begin() as session:
            message = outbox.by_wa_message_id(session, wa_message_id)
            if message is None and outbox_id > 0:
                message = outbox.by_id_for_update(session, outbox_id)
                if message is None or (recipient and message.phone_number != recipient.lstrip("+")):
                    return False, ""
                if message.wa_message_id is None:
                    message.wa_message_id = wa_message_id
                if message.state == outbox.PENDING:
                    message.state = outbox.SENT
                    message.attempts += 1
                    message.lease_owner = message.lease_expires_at = None
                    # What the sender's ack would have said (a late ack then changes nothing).
                    customer = (message.phone_number_id, message.phone_number)
                    payload = {"outbox_id": message.id, "wa_message_id": message.wa_message_id}
                    events.record(
                        session, [events.Draft("message_sent", customer, payload=payload)]
                    )
                message.updated_at = self._clock()
            if message is None:
                return False, ""
            current = message.delivery_status
            if STATUS_RANK[status] > STATUS_RANK.get(current or "", 0):
                message.delivery_status = status
                message.updated_at = self._clock()
                if status == "failed" and errors:
                    code, title, details = errors[0]
                    message.error_code, message.error_title = code, title
                    message.error_details = details
                events.record(session, _status_events(message, status))
            return True, message.delivery_status or ""


NEXT_MAX = 100  # messages one ack leases on at most


@dataclass(frozen=True)
class Acked:
    """What AckOutbox did: leases `owner` no longer held, and the messages it leased on."""

    lost: list[int]
    leased: list[OutboxEntry]


def _lease_lanes(
    session: Session,
    candidates: Sequence[Customer],
    lease: outbox.Lease,
    now: datetime,
    ended_by: datetime,
    limit: int,
    *,
    settling: frozenset[int] | set[int] = frozenset(),
    holder: str = "",
) -> list[OutboxMessage]:
    """Lease whole lanes (a customer's pending messages) of `candidates` nobody else holds: each
    customer is locked first (skipped if another transaction has them), and a lane is skipped
    while any of its messages is leased (to anyone but `holder`) or its oldest waits for a
    retry. Messages in `settling` (acked in this transaction, not yet written) are no longer the
    lane's."""
    free = customers.lock_free(session, list(candidates))
    claimed: list[OutboxMessage] = []
    for _, rows in groupby(
        outbox.pending_of(session, free), key=lambda m: (m.phone_number_id, m.phone_number)
    ):
        lane = [m for m in rows if m.id not in settling]
        if not lane:
            continue
        if len(claimed) + len(lane) > limit and claimed:
            break
        if lane[0].next_attempt_at > now or any(
            _leased(m, ended_by) and (not holder or m.lease_owner != holder) for m in lane
        ):
            continue
        claimed += lane
    outbox.set_lease(session, [m.id for m in claimed], lease, now)
    return claimed


def _entries(messages: Sequence[OutboxMessage], lease: outbox.Lease) -> list[OutboxEntry]:
    return [
        replace(from_row(m), lease_owner=lease.owner, lease_expires_at=lease.expires_at)
        for m in messages
    ]


def _leased(message: OutboxMessage, now: datetime) -> bool:
    return message.lease_expires_at is not None and message.lease_expires_at > now


MAX_WA_MESSAGE_ID = 255  # characters the column holds


def _recordable(acks: Iterable[Ack], holders: dict[str, int]) -> list[Ack]:
    """`acks`, each sent one with a Meta message id the outbox cannot hold (too long, or another
    message's already) recorded as sent without it, the reason in its error title: Meta took the
    message, so it must not be sent again, and one odd id must not fail the others' acks."""
    checked, taken = [], dict(holders)
    for ack in acks:
        wa_id = ack.wa_message_id
        if ack.kind is AckKind.SENT and wa_id:
            problem = ""
            if len(wa_id) > MAX_WA_MESSAGE_ID:
                problem = f"Meta's message id is longer than {MAX_WA_MESSAGE_ID} characters"
            elif taken.setdefault(wa_id, ack.id) != ack.id:
                problem = f"Meta's message id is already recorded for message {taken[wa_id]}"
            if problem:
                ack = replace(ack, wa_message_id="", error_title=f"{problem}: not recorded")
        checked.append(ack)
    return checked


def _settlement(ack: Ack, now: datetime) -> outbox.Settlement:
    """What `ack` writes to its message if it counts (see outbox.settling): a send result counts one
    attempt and may carry an error; a release only gives the lease back."""
    released = ack.kind is AckKind.RELEASED
    return outbox.Settlement(
        id=ack.id,
        kind=str(ack.kind),
        wa_message_id=(ack.wa_message_id or None) if ack.kind is AckKind.SENT else None,
        next_attempt_at=now + timedelta(seconds=max(ack.delay_seconds, 0))
        if ack.kind is AckKind.RETRY
        else None,
        set_error=not released and (ack.error_code is not None or bool(ack.error_title)),
        error_code=ack.error_code,
        error_title=ack.error_title,
        error_details=ack.error_details,
    )


def _finished(customer: customers.Customer, settlement: outbox.Settlement) -> events.Draft:
    """The event of a message Meta took (an ack `sent`) or that failed for good."""
    if settlement.kind == outbox.SENT:
        payload = {"outbox_id": settlement.id, "wa_message_id": settlement.wa_message_id or ""}
        return events.Draft("message_sent", customer, payload=payload)
    return events.Draft(
        "message_failed",
        customer,
        payload={
            "outbox_id": settlement.id,
            "error_code": settlement.error_code or 0,
            "error_title": settlement.error_title,
            "error_details": settlement.error_details,
        },
    )


def _status_events(message: OutboxMessage, status: str) -> list[events.Draft]:
    """The event of a delivery status that moved forward: delivered, read or failed (Meta's
    "sent" status repeats what the sender's ack already said)."""
    customer = (message.phone_number_id, message.phone_number)
    ids = {"outbox_id": message.id, "wa_message_id": message.wa_message_id or ""}
    if status in ("delivered", "read"):
        return [events.Draft(f"message_{status}", customer, payload=ids)]
    if status == "failed":
        error = {
            "error_code": message.error_code or 0,
            "error_title": message.error_title or "",
            "error_details": message.error_details or "",
        }
        return [events.Draft("message_failed", customer, payload=ids | error)]
    return []
