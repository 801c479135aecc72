"""The templates a call may use, as an immutable snapshot the service caches and shares."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from flowsvc.engine.keywords import KeywordIndex
from flowsvc.engine.template import FLOW_PREFIX, GUIDE_FLOW_SUFFIX, Template


@dataclass(frozen=True)
class Catalog:
    """Template versions by (name, version) plus every template's latest version number.

    `templates` must hold at least every version a call may touch: the running conversation's
    version and the latest version of every template (inactive ones too, so a flow switch to
    them can say "not available"). `latest` names every template, active or not.
    The keyword index is built once, here, over active templates' latest versions.
    """

    templates: Mapping[tuple[str, int], Template]
    latest: Mapping[str, int]
    _keywords: KeywordIndex = field(init=False, repr=False, compare=False)
    # Templates whose latest version declares "orders": true (see order_templates).
    _orders: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pairs: list[tuple[str, str]] = []  # (template name, keyword)
        orders: list[str] = []
        for name in self.latest:
            template = self.current(name)
            if template is not None and template.is_active:
                pairs.extend((name, keyword) for keyword in template.trigger_keywords)
            if template is not None and template.orders:
                orders.append(name)
        object.__setattr__(self, "_keywords", KeywordIndex(pairs))
        object.__setattr__(self, "_orders", tuple(sorted(orders)))

    @property
    def order_templates(self) -> tuple[str, ...]:
        """The templates whose results order lookups list: those declaring "orders": true
        (active or not, so that switching one off keeps its orders visible); empty (every
        result counts) when none does."""
        return self._orders

    @classmethod
    def build(cls, templates: Iterable[Template]) -> Catalog:
        """A catalog of these versions, the highest version of each name being the latest."""
        by_key = {(t.name, t.version): t for t in templates}
        latest: dict[str, int] = {}
        for name, version in by_key:
            latest[name] = max(version, latest.get(name, version))
        return cls(templates=by_key, latest=latest)

    def get(self, name: str, version: int) -> Template | None:
        """That version of that template, if the catalog holds it."""
        return self.templates.get((name, version))

    def current(self, name: str) -> Template | None:
        """The latest version of a template, active or not."""
        version = self.latest.get(name)
        return None if version is None else self.templates.get((name, version))

    def match_keyword(self, text: str) -> Template | None:
        """The active template whose trigger keyword best matches `text` (keywords.py rules)."""
        name = self._keywords.match(text)
        return None if name is None else self.current(name)

    def switch_target(self, template: Template, target: str) -> str | None:
        """The template a target of `template` switches to (`flow:<name>`, or the guide's
        `<name>_flow` naming a known template), or None for a step or an unknown name."""
        if target.startswith(FLOW_PREFIX):
            return target[len(FLOW_PREFIX) :]
        if template.has_step(target) or not target.endswith(GUIDE_FLOW_SUFFIX):
            return None
        name = target[: -len(GUIDE_FLOW_SUFFIX)]
        return name if name in self.latest else None
