"""Engine catalogs from the database, cached: template versions are immutable, so each is read
and parsed once; which version is the latest is re-read at most every `ttl` seconds (and at once
after a write through this process), so other replicas' changes show within `ttl`."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from sqlalchemy.orm import Session

from flowsvc.engine import Catalog, Template, load_template
from flowsvc.store import templates
from flowsvc.store.templates import VersionKey


class TemplateCatalog:
    """Thread-safe source of engine Catalogs for the service's units of work."""

    def __init__(self, ttl: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._lock = threading.Lock()
        self._versions: dict[VersionKey, Template] = {}
        self._head_ids: dict[str, int] = {}
        self._catalog = Catalog.build(())
        self._fresh_until = float("-inf")

    def invalidate(self) -> None:
        with self._lock:
            self._fresh_until = float("-inf")

    def get(self, session: Session, pinned: VersionKey | None = None) -> Catalog:
        """The latest version of every template, plus `pinned` (a conversation's version) if it
        still exists."""
        with self._lock:
            if self._clock() >= self._fresh_until:
                self._refresh(session)
            catalog = self._catalog
            if pinned is None or pinned in catalog.templates:
                return catalog
            template = self._load(session, [pinned]).get(pinned)
        if template is None:
            return catalog
        return Catalog(templates={**catalog.templates, pinned: template}, latest=catalog.latest)

    def _refresh(self, session: Session) -> None:
        heads: dict[str, int] = {}
        for name, version, head_id in templates.latest(session):
            heads[name] = version
            if self._head_ids.get(name, head_id) != head_id:  # deleted, then created anew
                self._versions = {k: t for k, t in self._versions.items() if k[0] != name}
            self._head_ids[name] = head_id
        if heads != dict(self._catalog.latest):
            versions = self._load(session, list(heads.items()))
            self._catalog = Catalog(
                templates={key: versions[key] for key in heads.items() if key in versions},
                latest=heads,
            )
        self._fresh_until = self._clock() + self._ttl

    def _load(self, session: Session, keys: list[VersionKey]) -> dict[VersionKey, Template]:
        missing = [key for key in keys if key not in self._versions]
        if missing:
            for row in templates.versions(session, missing):
                self._versions[(row.template_name, row.version)] = load_template(
                    row.template_name,
                    row.version,
                    row.menu_structure,
                    trigger_keywords=row.trigger_keywords,
                    is_active=row.is_active,
                )
        return {key: self._versions[key] for key in keys if key in self._versions}
