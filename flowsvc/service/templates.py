"""Template lifecycle: every write is validated and creates a new immutable version, live at once
or a draft that only the sandbox reaches until it is published."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from flowsvc.engine import Template, load_template
from flowsvc.engine.config import EngineConfig
from flowsvc.engine.diff import Change, diff_versions
from flowsvc.engine.preview import DEFAULT_CONFIG, PreviewStep, preview
from flowsvc.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from flowsvc.service.paging import decode_token, encode_token, page_size
from flowsvc.store import conversations, templates
from flowsvc.store.models import WorkflowTemplate, WorkflowTemplateVersion
from flowsvc.validation import (
    keyword_conflicts,
    review_template,
    template_targets,
    template_type,
)

UPDATABLE_FIELDS = frozenset({"trigger_keywords", "menu_structure", "is_active"})


@dataclass(frozen=True)
class TemplateDefinition:
    """What a client writes. `is_active=None` means "true" on create and "unchanged" on update."""

    name: str
    menu_structure: Any
    trigger_keywords: tuple[str, ...] = ()
    is_active: bool | None = None
    draft: bool = False


@dataclass(frozen=True)
class TemplateVersion:
    """One stored version of a template, as clients see it."""

    name: str
    version: int
    type: str
    trigger_keywords: tuple[str, ...]
    menu_structure: dict[str, Any]
    is_active: bool
    created_at: datetime
    version_created_at: datetime
    live: bool
    draft: bool
    live_version: int | None


class ImportAction(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


TemplateWarning = tuple[str, str]  # (field path, what is probably wrong): legal, never blocking


@dataclass(frozen=True)
class Imported:
    name: str
    version: int
    action: ImportAction
    warnings: tuple[TemplateWarning, ...] = ()


@dataclass
class Page:
    items: list[TemplateVersion] = field(default_factory=list)
    next_page_token: str = ""


def _version(head: WorkflowTemplate, row: WorkflowTemplateVersion) -> TemplateVersion:
    return TemplateVersion(
        name=row.template_name,
        version=row.version,
        type=row.template_type,
        trigger_keywords=tuple(row.trigger_keywords),
        menu_structure=row.menu_structure,
        is_active=row.is_active,
        created_at=head.created_at,
        version_created_at=row.created_at,
        live=row.version == head.live_version,
        draft=row.is_draft,
        live_version=head.live_version,
    )


def _check(
    definition: TemplateDefinition,
    known: Iterable[str],
    active: Mapping[str, Sequence[str]] | None = None,
) -> list[TemplateWarning]:
    """Raise InvalidArgument with every problem; return the warnings of a valid template.

    `active`: the other active templates' keywords, when this template is to be active.
    """
    found = review_template(
        definition.name,
        definition.trigger_keywords,
        definition.menu_structure,
        known_templates=set(known) | {definition.name},
    )
    if active is not None:
        found += keyword_conflicts(definition.name, definition.trigger_keywords, active)
    violations = [(v.field, v.description) for v in found if not v.warning]
    if violations:
        raise InvalidArgument(f"template {definition.name!r} is invalid", violations)
    return [(v.field, v.description) for v in found if v.warning]


def check_set(definitions: Sequence[TemplateDefinition], known: Iterable[str]) -> None:
    """Validate templates as a set (they may target each other and the `known` names);
    INVALID_ARGUMENT naming every problem as `templates[i].<field>`."""
    names = set(known) | {d.name for d in definitions}
    violations: list[tuple[str, str]] = []
    for index, definition in enumerate(definitions):
        try:
            _check(definition, names)
        except InvalidArgument as invalid:
            violations += [(f"templates[{index}].{f}", r) for f, r in invalid.violations]
    if violations:
        raise InvalidArgument("templates are invalid", violations)


class Templates:
    """Create, read, update, delete, validate and import templates; one transaction per call."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        on_change: Callable[[], None] = lambda: None,
        config: EngineConfig = DEFAULT_CONFIG,
    ) -> None:
        self._sessions = sessions
        self._on_change = on_change  # e.g. drop cached catalogs, so the change shows at once
        self._config = config  # menuflow's own words per language, as a preview shows them

    def validate(self, definition: TemplateDefinition) -> tuple[str, list[TemplateWarning]]:
        """The type the template would be stored with, and its warnings."""
        with self._sessions() as session:
            active = (
                templates.active_keywords(session) if definition.is_active is not False else None
            )
            warnings = _check(definition, templates.names(session), active)
        return template_type(definition.menu_structure), warnings

    def create(
        self, definition: TemplateDefinition
    ) -> tuple[TemplateVersion, list[TemplateWarning]]:
        with self._sessions.begin() as session:
            names = templates.names(session)
            if definition.name in names:
                raise AlreadyExists(f"template {definition.name!r} already exists")
            active = (
                templates.active_keywords(session) if definition.is_active is not False else None
            )
            warnings = _check(definition, names, active)
            created = _write(session, None, definition, is_active=definition.is_active is not False)
        self._on_change()
        return created, warnings

    def get(self, name: str, version: int = 0) -> TemplateVersion:
        with self._sessions() as session:
            head = _head(session, name)
            return _version(head, _version_row(session, head, version or head.version))

    def list_heads(self, active: bool | None, requested_size: int, token: str) -> Page:
        """The latest version of each template, by name."""
        size = page_size(requested_size)
        after = decode_token(token, str)
        with self._sessions() as session:
            heads = templates.heads_page(session, active=active, after_name=after, limit=size + 1)
            page = Page(
                [_version(head, _version_row(session, head, head.version)) for head in heads[:size]]
            )
        if len(heads) > size:
            page.next_page_token = encode_token(heads[size - 1].template_name)
        return page

    def versions(self, name: str, requested_size: int, token: str) -> Page:
        size = page_size(requested_size)
        before = decode_token(token, int)
        with self._sessions() as session:
            head = _head(session, name)
            rows = templates.versions_page(session, head, before=before, limit=size + 1)
        page = Page([_version(head, row) for row in rows[:size]])
        if len(rows) > size:
            page.next_page_token = encode_token(rows[size - 1].version)
        return page

    def update(
        self,
        definition: TemplateDefinition,
        fields: Sequence[str] = (),
        expected_version: int = 0,
    ) -> tuple[TemplateVersion, bool, list[TemplateWarning]]:
        """Write a new version with `fields` (all when empty) taken from `definition`; whether
        anything changed, and the warnings of the template as it now is."""
        unknown = sorted(set(fields) - UPDATABLE_FIELDS)
        if unknown:
            raise InvalidArgument(
                "bad update mask",
                [("update_mask", f"unknown field {name!r}") for name in unknown],
            )
        with self._sessions.begin() as session:
            head = _head(session, definition.name, for_update=True)
            if expected_version and expected_version != head.version:
                raise FailedPrecondition(
                    f"template {definition.name!r} is at version {head.version}, "
                    f"not {expected_version}: read it again and retry"
                )
            changing = set(fields) or UPDATABLE_FIELDS
            merged = TemplateDefinition(
                name=head.template_name,
                trigger_keywords=tuple(definition.trigger_keywords)
                if "trigger_keywords" in changing
                else tuple(head.trigger_keywords),
                menu_structure=definition.menu_structure
                if "menu_structure" in changing
                else head.menu_structure,
                draft=definition.draft,
            )
            is_active = head.is_active
            if "is_active" in changing and definition.is_active is not None:
                is_active = definition.is_active
            active = templates.active_keywords(session) if is_active else None
            warnings = _check(merged, templates.names(session), active)
            if _same(head, merged, is_active) and (
                merged.draft or head.live_version == head.version
            ):
                return _version(head, _version_row(session, head, head.version)), False, warnings
            updated = _write(session, head, merged, is_active=is_active)
        self._on_change()
        return updated, True, warnings

    def publish(self, name: str, version: int = 0) -> tuple[TemplateVersion, int | None]:
        """Make a version (default: the latest) live, checked again against today's templates;
        publishing an earlier version is a rollback. Returns it and the version live before."""
        with self._sessions.begin() as session:
            head = _head(session, name, for_update=True)
            row = _version_row(session, head, version or head.version)
            others = {n: k for n, k in templates.active_keywords(session).items() if n != name}
            _check(
                TemplateDefinition(
                    name=row.template_name,
                    trigger_keywords=tuple(row.trigger_keywords),
                    menu_structure=row.menu_structure,
                ),
                templates.names(session),
                others if row.is_active else None,
            )
            previous = head.live_version
            templates.publish(session, head, row)
            published = _version(head, row)
        self._on_change()
        return published, previous

    def diff(self, name: str, old: int, new: int) -> tuple[int, int, list[Change]]:
        """What changed from version `old` (default: the live one) to `new` (default: the
        latest): (old, new, changes)."""
        with self._sessions() as session:
            head = _head(session, name)
            if not old and head.live_version is None:
                raise FailedPrecondition(
                    f"template {name!r} has no live version: name the version to compare with"
                )
            before = _version_row(session, head, old or head.live_version or 0)
            after = _version_row(session, head, new or head.version)
            changes = diff_versions(_engine_template(before), _engine_template(after))
        return before.version, after.version, changes

    def preview(
        self, name: str, version: int, context: dict[str, Any]
    ) -> tuple[TemplateVersion, list[PreviewStep]]:
        """A version (default: the live one, else the latest) step by step as WhatsApp shows it,
        its placeholders filled from the sample `context`."""
        with self._sessions() as session:
            head = _head(session, name)
            row = _version_row(session, head, version or head.live_version or head.version)
            shown = preview(_engine_template(row), context, self._config)
            return _version(head, row), shown

    def delete(self, name: str) -> tuple[int, int]:
        """Delete a template, its versions and its conversations: (versions, conversations)."""
        with self._sessions.begin() as session:
            head = _head(session, name, for_update=True)
            referrers = sorted(
                other.template_name
                for other in templates.others(session, head)
                if name in template_targets(other.menu_structure)
            )
            if referrers:
                raise FailedPrecondition(
                    f"template {name!r} is the target of {', '.join(referrers)}: "
                    "change or delete those first"
                )
            ended = conversations.remove_of_template(session, name)
            versions = templates.remove(session, head)
        self._on_change()
        return versions, ended

    def import_(self, definitions: Sequence[TemplateDefinition]) -> list[Imported]:
        """Create or update several templates at once, validated as a set."""
        names = [d.name for d in definitions]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise InvalidArgument(
                "duplicate names in import",
                [("templates", f"{name!r} appears more than once") for name in duplicates],
            )
        with self._sessions.begin() as session:
            known = templates.names(session) | set(names)
            # Active after the import: the stored ones it leaves alone, and its own active ones.
            active: dict[str, Sequence[str]] = {
                n: k for n, k in templates.active_keywords(session).items() if n not in names
            }
            active |= {d.name: d.trigger_keywords for d in definitions if d.is_active is not False}
            violations: list[tuple[str, str]] = []
            warned: list[tuple[TemplateWarning, ...]] = []
            for index, definition in enumerate(definitions):
                others = active if definition.is_active is not False else None
                try:
                    warned.append(tuple(_check(definition, known, others)))
                except InvalidArgument as invalid:
                    violations += [(f"templates[{index}].{f}", r) for f, r in invalid.violations]
            if violations:
                raise InvalidArgument("templates are invalid", violations)
            imported = []
            for definition, warnings in zip(definitions, warned, strict=True):
                head = templates.head(session, definition.name)
                is_active = definition.is_active is not False
                if head is None:
                    stored = _write(session, None, definition, is_active=is_active)
                    action, version = ImportAction.CREATED, stored.version
                elif _same(head, definition, is_active) and (
                    definition.draft or head.live_version == head.version
                ):
                    action, version = ImportAction.UNCHANGED, head.version
                else:
                    stored = _write(session, head, definition, is_active=is_active)
                    action, version = ImportAction.UPDATED, stored.version
                imported.append(Imported(definition.name, version, action, warnings))
        self._on_change()
        return imported


def _head(session: Session, name: str, *, for_update: bool = False) -> WorkflowTemplate:
    head = templates.head(session, name, for_update=for_update)
    if head is None:
        raise NotFound(f"template {name!r} does not exist")
    return head


def _version_row(session: Session, head: WorkflowTemplate, version: int) -> WorkflowTemplateVersion:
    row = templates.version(session, head, version)
    if row is None:
        raise NotFound(f"template {head.template_name!r} has no version {version}")
    return row


def _same(head: WorkflowTemplate, definition: TemplateDefinition, is_active: bool) -> bool:
    return (
        list(head.trigger_keywords) == list(definition.trigger_keywords)
        and head.menu_structure == definition.menu_structure
        and head.is_active == is_active
    )


def _write(
    session: Session,
    head: WorkflowTemplate | None,
    definition: TemplateDefinition,
    *,
    is_active: bool,
) -> TemplateVersion:
    """Store `definition` as the next version (version 1 for a new template)."""
    stored_head, row = templates.write(
        session,
        head,
        name=definition.name,
        kind=template_type(definition.menu_structure),
        trigger_keywords=definition.trigger_keywords,
        menu_structure=definition.menu_structure,
        is_active=is_active,
        draft=definition.draft,
    )
    return _version(stored_head, row)


def _engine_template(row: WorkflowTemplateVersion) -> Template:
    return load_template(
        row.template_name,
        row.version,
        row.menu_structure,
        trigger_keywords=row.trigger_keywords,
        is_active=row.is_active,
    )
