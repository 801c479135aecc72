"""The per-customer lock rows, as the outbox claim takes them: skipping customers whose row another
transaction holds (a turn takes and waits for the lock in store/turns.py)."""

from __future__ import annotations

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from flowsvc.store.models import Customer


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
