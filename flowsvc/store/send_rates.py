"""Send slots from a business number's shared token bucket: one row per number, one statement
per grant, so every gateway and flowsvc replica draws from the same budget.

The bucket is kept as GCRA keeps it: the theoretical arrival time of the next send (`next_slot_at`,
epoch seconds). Granting n slots moves it n intervals on from max(itself, now); the slots start
where it stood, less the burst tolerance.
"""

from __future__ import annotations

from sqlalchemy import Connection

_GRANT = """
INSERT INTO send_rates (phone_number_id, next_slot_at) VALUES (:number, :now + :span)
ON CONFLICT (phone_number_id) DO UPDATE
SET next_slot_at = {greatest}(send_rates.next_slot_at, :now) + :span
RETURNING next_slot_at
"""
_PG_GRANT = _GRANT.format(greatest="GREATEST").replace(":number", "%(number)s")
_PG_GRANT = _PG_GRANT.replace(":now", "%(now)s").replace(":span", "%(span)s")
_SQLITE_GRANT = _GRANT.format(greatest="max")


def grant(connection: Connection, phone_number_id: str, now: float, span: float) -> float:
    """Reserve `span` seconds of the number's sends; returns when the reservation starts (the
    bucket's next slot before it, or `now` if that is past)."""
    parameters = {"number": phone_number_id, "now": now, "span": span}
    if connection.dialect.name == "postgresql":
        row = connection.exec_driver_sql(_PG_GRANT, parameters).one()
    else:
        row = connection.exec_driver_sql(_SQLITE_GRANT, parameters).one()
    return float(row[0]) - span
