"""Completed flows' results (orders): read by reference, or listed newest first."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from flowsvc.errors import InvalidArgument, NotFound
from flowsvc.service.paging import decode_token, encode_token, page_size
from flowsvc.store import results
from flowsvc.store.models import FlowResult


@dataclass(frozen=True)
class Result:
    """What a completed flow produced, under the reference the customer can quote."""

    reference: str
    template_name: str
    template_version: int
    phone_number_id: str
    phone_number: str
    context: Mapping[str, Any]
    created_at: datetime


def _result(row: FlowResult) -> Result:
    return Result(
        reference=row.reference,
        template_name=row.template_name,
        template_version=row.template_version,
        phone_number_id=row.phone_number_id,
        phone_number=row.phone_number,
        context=row.context,
        created_at=row.created_at,
    )


class Results:
    """GetResult and ListResults."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def get(self, reference: str) -> Result:
        wanted = "".join(reference.split()).upper()
        if not wanted:
            raise InvalidArgument("bad reference", [("reference", "required")])
        with self._sessions() as session:
            found = results.by_reference(session, wanted)
        if found is None:
            raise NotFound(f"no result has the reference {wanted!r}")
        return _result(found)

    def list_newest(
        self,
        template_name: str,
        phone_number_id: str,
        phone_number: str,
        requested_size: int,
        token: str,
    ) -> tuple[list[Result], str]:
        """Results newest first, optionally of one template or customer; a page and the token
        of the next one ("" at the end)."""
        size = page_size(requested_size)
        before = decode_token(token, int)
        with self._sessions() as session:
            rows = results.page(
                session,
                template_name=template_name,
                phone_number_id=phone_number_id,
                phone_number=phone_number,
                before_id=before,
                limit=size + 1,
            )
        items = [_result(row) for row in rows[:size]]
        return items, encode_token(rows[size - 1].id) if len(rows) > size else ""
