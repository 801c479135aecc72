"""Conversations as clients see them, and the admin calls on them: get, list, end, sweep."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from flowsvc.clock import Clock, utcnow
from flowsvc.engine import State
from flowsvc.engine.messages import LANGUAGE_KEY
from flowsvc.engine.wording import LANGUAGE
from flowsvc.errors import InvalidArgument, NotFound
from flowsvc.service.inbound import check_customer
from flowsvc.service.paging import decode_token, encode_token, page_size
from flowsvc.store import conversations, customers, events, processed
from flowsvc.store.customers import Customer
from flowsvc.store.models import ConversationState


@dataclass(frozen=True)
class Conversation:
    """A conversation as clients see it."""

    phone_number_id: str
    phone_number: str
    flow: str
    template_version: int
    current_step: str
    context: Mapping[str, Any]
    last_interaction: datetime
    expires_at: datetime
    created_at: datetime | None
    revision: int = 0  # changes with every write (UpdateConversation's expected_revision)
    handoff: Mapping[str, Any] | None = None  # set while handed off to people (service.handoff)


def from_row(row: ConversationState) -> Conversation:
    return Conversation(
        phone_number_id=row.phone_number_id,
        phone_number=row.phone_number,
        flow=row.conversation_flow,
        template_version=row.template_version,
        current_step=row.current_step,
        context=row.context,
        last_interaction=row.last_interaction,
        expires_at=row.expires_at,
        created_at=row.created_at,
        revision=row.revision,
        handoff=row.handoff,
    )


def from_state(
    customer: Customer, state: State, created_at: datetime, revision: int = 0
) -> Conversation:
    return Conversation(
        phone_number_id=customer[0],
        phone_number=customer[1],
        flow=state.flow,
        template_version=state.version,
        current_step=state.step,
        context=state.context,
        last_interaction=state.last_interaction,
        expires_at=state.expires_at,
        created_at=created_at,
        revision=revision,
    )


class Conversations:
    """GetConversation, ListConversations, EndConversation and the sweep of expired ones."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        dedupe_retention: timedelta = timedelta(days=8),
        expiry_notice: timedelta = timedelta(days=7),
        clock: Clock = utcnow,
    ) -> None:
        self._sessions = sessions
        self._dedupe_retention = dedupe_retention
        self._expiry_notice = expiry_notice
        self._clock = clock

    def get(self, phone_number_id: str, phone_number: str) -> Conversation:
        _check(phone_number_id, phone_number)
        with self._sessions() as session:
            row = conversations.get(session, phone_number_id, phone_number)
        if row is None or row.expires_at <= self._clock():
            raise NotFound("the customer has no active conversation")
        return from_row(row)

    def list_active(
        self,
        flow: str,
        step: str,
        phone_number_id: str,
        requested_size: int,
        token: str,
        *,
        handed_off: bool = False,
        queue: str = "",
    ) -> tuple[list[Conversation], str]:
        """Unexpired conversations, optionally of one flow, step or business number; a page and
        the token of the next one ("" at the end)."""
        size = page_size(requested_size)
        after = decode_token(token, int)
        with self._sessions() as session:
            rows = conversations.page(
                session,
                now=self._clock(),
                flow=flow,
                step=step,
                phone_number_id=phone_number_id,
                after_id=after,
                limit=size + 1,
                handed_off=handed_off,
                queue=queue,
            )
        items = [from_row(row) for row in rows[:size]]
        return items, encode_token(rows[size - 1].id) if len(rows) > size else ""

    def end(self, phone_number_id: str, phone_number: str) -> Conversation:
        """End a customer's conversation at once, under their lock (no turn of theirs runs)."""
        _check(phone_number_id, phone_number)
        with self._sessions.begin() as session:
            customers.lock(session.connection(), (phone_number_id, phone_number))
            row = conversations.get(session, phone_number_id, phone_number)
            if row is None:
                raise NotFound("the customer has no active conversation")
            ended = from_row(row)
            conversations.remove(session, phone_number_id, phone_number)
            events.record(
                session,
                [
                    events.Draft(
                        "conversation_ended",
                        (phone_number_id, phone_number),
                        ended.flow,
                        ended.template_version,
                        {"step": ended.current_step, "reason": "EndConversation"},
                    )
                ],
            )
        return ended

    def set_language(self, phone_number_id: str, phone_number: str, language: str) -> bool:
        """Store the language a customer is spoken to in ("": forget it), under their lock; a
        running conversation speaks it from their next message. Whether one was running."""
        problems = check_customer(phone_number_id, phone_number)
        if language and not LANGUAGE.match(language):
            problems.append(("language", "a language code such as 'es' or 'pt_BR', or empty"))
        if problems:
            raise InvalidArgument("bad language", problems)
        customer = (phone_number_id, phone_number)
        with self._sessions.begin() as session:
            customers.lock(session.connection(), customer)
            customers.set_language(session, customer, language or None)
            row = conversations.get(session, phone_number_id, phone_number)
            if row is None:
                return False
            context = {k: v for k, v in row.context.items() if k != LANGUAGE_KEY}
            row.context = {**context, LANGUAGE_KEY: language} if language else context
        return True

    def sweep(self) -> tuple[int, int]:
        """Delete expired conversations (remembering on the customer when each expired, so their
        next message hears of it) and dedupe records past retention: (conversations, ids)."""
        now = self._clock()
        with self._sessions.begin() as session:
            customers.remember_expired(session, now)
            expired = conversations.remove_expired(session, now)
            events.record(
                session,
                [
                    events.Draft(
                        "conversation_expired",
                        (phone_number_id, phone_number),
                        flow,
                        version,
                        {"step": step, "reason": "swept"},
                    )
                    for phone_number_id, phone_number, flow, version, step in expired
                ],
            )
            customers.forget_expiries_before(session, now - self._expiry_notice)
            old = processed.remove_older_than(session, now - self._dedupe_retention)
        return len(expired), old


def _check(phone_number_id: str, phone_number: str) -> None:
    problems = check_customer(phone_number_id, phone_number)
    if problems:
        raise InvalidArgument("bad customer", problems)
