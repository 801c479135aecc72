"""workflow_templates (each template's head: name, latest version, live version) and
workflow_template_versions (every version, immutable but for leaving the draft state)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, select, tuple_
from sqlalchemy.orm import Session

from flowsvc.store.models import WorkflowTemplate, WorkflowTemplateVersion

VersionKey = tuple[str, int]
"""(template name, version): one immutable version of a template."""


def names(session: Session) -> set[str]:
    return set(session.scalars(select(WorkflowTemplate.template_name)))


def head(session: Session, name: str, *, for_update: bool = False) -> WorkflowTemplate | None:
    """The template's head; `for_update` locks it until the transaction ends (writers queue)."""
    query = select(WorkflowTemplate).where(WorkflowTemplate.template_name == name)
    if for_update:
        query = query.with_for_update()
    return session.scalar(query)


def version(
    session: Session, head: WorkflowTemplate, number: int
) -> WorkflowTemplateVersion | None:
    return session.scalar(
        select(WorkflowTemplateVersion).where(
            WorkflowTemplateVersion.template_id == head.id,
            WorkflowTemplateVersion.version == number,
        )
    )


def heads_page(
    session: Session, *, active: bool | None, after_name: str | None, limit: int
) -> list[WorkflowTemplate]:
    """Heads by name, after `after_name`; only active or inactive ones when `active` says so."""
    query = select(WorkflowTemplate).order_by(WorkflowTemplate.template_name).limit(limit)
    if active is not None:
        query = query.where(WorkflowTemplate.is_active == active)
    if after_name is not None:
        query = query.where(WorkflowTemplate.template_name > after_name)
    return list(session.scalars(query))


def versions_page(
    session: Session, head: WorkflowTemplate, *, before: int | None, limit: int
) -> list[WorkflowTemplateVersion]:
    """A template's versions, newest first, older than `before`."""
    query = (
        select(WorkflowTemplateVersion)
        .where(WorkflowTemplateVersion.template_id == head.id)
        .order_by(WorkflowTemplateVersion.version.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(WorkflowTemplateVersion.version < before)
    return list(session.scalars(query))


def active_keywords(session: Session) -> dict[str, list[Any]]:
    """Every active template's trigger keywords (of its latest version), by name."""
    rows = session.execute(
        select(WorkflowTemplate.template_name, WorkflowTemplate.trigger_keywords).where(
            WorkflowTemplate.is_active.is_(True)
        )
    )
    return {name: list(keywords) for name, keywords in rows}


def others(session: Session, head: WorkflowTemplate) -> list[WorkflowTemplate]:
    """Every other template's head."""
    return list(session.scalars(select(WorkflowTemplate).where(WorkflowTemplate.id != head.id)))


def write(
    session: Session,
    head: WorkflowTemplate | None,
    *,
    name: str,
    kind: str,
    trigger_keywords: Sequence[str],
    menu_structure: Any,
    is_active: bool,
    draft: bool = False,
) -> tuple[WorkflowTemplate, WorkflowTemplateVersion]:
    """Store the next version (version 1 for a new template, `head` None) and move the head; it
    goes live at once unless it is a `draft`."""
    keywords = list(trigger_keywords)
    if head is None:
        head = WorkflowTemplate(template_name=name, version=0, live_version=None)
        session.add(head)
    head.template_type = kind
    head.trigger_keywords = keywords
    head.menu_structure = menu_structure
    head.is_active = is_active
    head.version += 1
    if not draft:
        head.live_version = head.version
    head.updated_at = func.now()
    session.flush()
    row = WorkflowTemplateVersion(
        template_id=head.id,
        template_name=head.template_name,
        version=head.version,
        template_type=kind,
        trigger_keywords=keywords,
        menu_structure=menu_structure,
        is_active=is_active,
        is_draft=draft,
    )
    session.add(row)
    session.flush()
    session.refresh(head)
    session.refresh(row)
    return head, row


def remove(session: Session, head: WorkflowTemplate) -> int:
    """Delete a template with all its versions; how many versions there were."""
    versions = session.scalar(
        select(func.count()).where(WorkflowTemplateVersion.template_id == head.id)
    )
    session.execute(
        delete(WorkflowTemplateVersion).where(WorkflowTemplateVersion.template_id == head.id)
    )
    session.delete(head)
    return int(versions or 0)


def publish(session: Session, head: WorkflowTemplate, row: WorkflowTemplateVersion) -> None:
    """Make `row` (a version of `head`) the live version."""
    head.live_version = row.version
    head.updated_at = func.now()
    row.is_draft = False
    session.flush()
    session.refresh(head)


def latest(session: Session) -> list[tuple[str, int, int]]:
    """(name, live version, head id) of every template that has a live version."""
    rows = session.execute(
        select(
            WorkflowTemplate.template_name, WorkflowTemplate.live_version, WorkflowTemplate.id
        ).where(WorkflowTemplate.live_version.is_not(None))
    )
    return [(name, number or 0, head_id) for name, number, head_id in rows]


def versions(session: Session, keys: Sequence[VersionKey]) -> list[WorkflowTemplateVersion]:
    """The versions named by `keys` that exist."""
    if not keys:
        return []
    return list(
        session.scalars(
            select(WorkflowTemplateVersion).where(
                tuple_(WorkflowTemplateVersion.template_name, WorkflowTemplateVersion.version).in_(
                    keys
                )
            )
        )
    )
