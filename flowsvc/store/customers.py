"""The per-customer lock: one row per customer of a business number, locked by every turn and
outbox claim, so that one customer's messages are handled, and their replies sent, one at a time
across all replicas.

A turn waits for the lock (store.turns); the outbox claim skips customers whose lock another
transaction holds. SQLite has a single writer, which serializes everything already.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, exists, select, tuple_, update
from sqlalchemy.orm import Session

from flowsvc.store import prepared
from flowsvc.store.db import affected_rows
from flowsvc.store.models import ConversationState, Customer as CustomerRow

Customer = tuple[str, str]
"""(phone_number_id, phone_number): a customer of one business number."""

# The upsert takes the row lock even when the row exists (ON CONFLICT ... DO UPDATE locks it); the
# update it has to make anyway counts the turn and, for a message turn (:inbound_at not NULL),
# moves the customer's last message time forward, never back (redeliveries come out of order).
_UPDATE = """
ON CONFLICT (phone_number_id, phone_number) DO UPDATE SET turns = customers.turns + 1,
    last_inbound_at = CASE
        WHEN customers.last_inbound_at IS NULL
          OR customers.last_inbound_at < excluded.last_inbound_at
        THEN excluded.last_inbound_at ELSE customers.last_inbound_at END
"""
LOCK = (
    """
INSERT INTO customers (phone_number_id, phone_number, last_inbound_at, turns)
VALUES (:phone_number_id, :phone_number, :inbound_at, 1)"""
    + _UPDATE
)
# PostgreSQL, several customers in one statement, locked in the order given.
LOCK_MANY = (
    """
INSERT INTO customers (phone_number_id, phone_number, last_inbound_at, turns)
SELECT t.phone_number_id, t.phone_number, t.inbound_at, 1
FROM unnest(:phone_number_ids::text[], :phone_numbers::text[], :inbound_times::timestamptz[])
     AS t(phone_number_id, phone_number, inbound_at)"""
    + _UPDATE
)


def lock(connection: Connection, customer: Customer) -> None:
    """Take `customer`'s lock, waiting for any transaction that holds it."""
    parameters = {"phone_number_id": customer[0], "phone_number": customer[1], "inbound_at": None}
    if connection.dialect.name == "postgresql":
        prepared.run(connection, (LOCK,), parameters)
    else:
        connection.exec_driver_sql(LOCK, parameters)


def lock_free(session: Session, customers: list[Customer]) -> list[Customer]:
    """Lock those of `customers` that nobody else holds right now, skipping the others."""
    if not customers:
        return []
    query = select(CustomerRow.phone_number_id, CustomerRow.phone_number).where(
        tuple_(CustomerRow.phone_number_id, CustomerRow.phone_number).in_(customers)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return [(row[0], row[1]) for row in session.execute(query)]


def remember_expired(session: Session, now: datetime) -> int:
    """Note on each customer whose conversation has expired by `now` when it expired, before the
    sweep deletes it."""
    expired = select(ConversationState.expires_at).where(
        ConversationState.phone_number_id == CustomerRow.phone_number_id,
        ConversationState.phone_number == CustomerRow.phone_number,
        ConversationState.expires_at <= now,
    )
    return affected_rows(
        session,
        update(CustomerRow).where(exists(expired)).values(expired_at=expired.scalar_subquery()),
    )


def forget_expiry(connection: Connection, customers: Sequence[Customer]) -> None:
    """The customers heard of their expired conversation (or wrote again after a long while)."""
    if customers:
        connection.execute(
            update(CustomerRow)
            .where(tuple_(CustomerRow.phone_number_id, CustomerRow.phone_number).in_(customers))
            .values(expired_at=None)
        )


def forget_expiries_before(session: Session, cutoff: datetime) -> int:
    """Expiries older than `cutoff` are not worth a notice any more."""
    return affected_rows(
        session, update(CustomerRow).where(CustomerRow.expired_at < cutoff).values(expired_at=None)
    )


def set_language(session: Session, customer: Customer, language: str | None) -> None:
    """Store the language `customer` chose (None: forget it); their lock is held."""
    session.execute(
        update(CustomerRow)
        .where(CustomerRow.phone_number_id == customer[0], CustomerRow.phone_number == customer[1])
        .values(language=language)
    )
