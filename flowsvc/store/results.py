"""flow_results rows: what completed flows produced (orders), by reference or customer."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from flowsvc.store.models import FlowResult


def by_reference(session: Session, reference: str) -> FlowResult | None:
    return session.scalar(select(FlowResult).where(FlowResult.reference == reference))


def for_customer(
    session: Session,
    phone_number_id: str,
    phone_number: str,
    *,
    reference: str | None,
    templates: Sequence[str],
    limit: int,
) -> list[FlowResult]:
    """The customer's newest `limit` results (of `templates`, if given), plus the one quoted by
    `reference` if it is theirs: one query."""
    newest = select(FlowResult.id).where(
        FlowResult.phone_number_id == phone_number_id, FlowResult.phone_number == phone_number
    )
    if templates:
        newest = newest.where(FlowResult.template_name.in_(templates))
    newest = newest.order_by(FlowResult.id.desc()).limit(limit)
    wanted: ColumnElement[bool] = FlowResult.id.in_(newest.scalar_subquery())
    if reference:
        wanted = or_(wanted, FlowResult.reference == reference)
    return list(
        session.scalars(
            select(FlowResult)
            .where(
                FlowResult.phone_number_id == phone_number_id,
                FlowResult.phone_number == phone_number,
                wanted,
            )
            .order_by(FlowResult.id.desc())
        )
    )


def page(
    session: Session,
    *,
    template_name: str,
    phone_number_id: str,
    phone_number: str,
    before_id: int | None,
    limit: int,
) -> list[FlowResult]:
    query = select(FlowResult).order_by(FlowResult.id.desc()).limit(limit)
    if template_name:
        query = query.where(FlowResult.template_name == template_name)
    if phone_number_id:
        query = query.where(FlowResult.phone_number_id == phone_number_id)
    if phone_number:
        query = query.where(FlowResult.phone_number == phone_number)
    if before_id is not None:
        query = query.where(FlowResult.id < before_id)
    return list(session.scalars(query))
