"""Completed flows' results (orders): read by reference, or listed newest first."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from flowsvc.errors import InvalidArgument, NotFound
from flowsvc.service.paging import decode_token, encode_token, page_size
from flowsvc.store import results
from flowsvc.store.models import FlowResult


class Results:
    """GetResult and ListResults."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def get(self, reference: str) -> FlowResult:
        wanted = "".join(reference.split()).upper()
        if not wanted:
            raise InvalidArgument("bad reference", [("reference", "required")])
        with self._sessions() as session:
            found = results.by_reference(session, wanted)
        if found is None:
            raise NotFound(f"no result has the reference {wanted!r}")
        return found

    def list(
        self,
        template_name: str,
        phone_number_id: str,
        phone_number: str,
        requested_size: int,
        token: str,
    ) -> tuple[list[FlowResult], str]:
        size = page_size(requested_size)
        before = decode_token(token)
        with self._sessions() as session:
            rows = results.page(
                session,
                template_name=template_name,
                phone_number_id=phone_number_id,
                phone_number=phone_number,
                before_id=None if before is None else int(before),
                limit=size + 1,
            )
        return rows[:size], encode_token(rows[size - 1].id) if len(rows) > size else ""
