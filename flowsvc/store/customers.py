"""The per-customer lock: one row per (business number, customer), locked by every unit of work
that must see that customer's conversation and outbox lane alone."""

from __future__ import annotations

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from flowsvc.store.models import Customer
from flowsvc.store.upsert import insert


def lock(session: Session, phone_number_id: str, phone_number: str) -> None:
    """Create the customer's row if needed and hold its lock until the transaction ends.

    ON CONFLICT DO UPDATE locks the existing row on PostgreSQL, so the first statement of the
    transaction already serializes it against every other replica; SQLite's writer lock (taken at
    BEGIN IMMEDIATE) does the same there.
    """
    statement = insert(session, Customer).values(
        phone_number_id=phone_number_id, phone_number=phone_number
    )
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[Customer.phone_number_id, Customer.phone_number],
            set_={"phone_number": statement.excluded.phone_number},
        )
    )


def lock_free(session: Session, lanes: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Lock those of `lanes` that nobody else holds right now, skipping the others."""
    if not lanes:
        return []
    query = select(Customer.phone_number_id, Customer.phone_number).where(
        tuple_(Customer.phone_number_id, Customer.phone_number).in_(lanes)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return [(row[0], row[1]) for row in session.execute(query)]
