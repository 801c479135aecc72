"""Template validation: every problem in a template, named before Meta or a customer meets it.

Authoring-time checks, kept apart from the engine that runs templates: this package reads the
engine (its limits, placeholder pattern and expression parser, so the two cannot disagree), and
the engine never reads it.

Modules: template (validate_template: the whole template), steps (one step), targets (where
steps lead), messages (a message a template sends), options (its buttons and list rows),
input_rules (a step's `validation`), context (context keys, placeholders, compute), violation
(Violation, how problems are phrased, unknown keys).
"""

from flowsvc.validation.targets import template_targets
from flowsvc.validation.template import (
    NAME_PATTERN,
    keyword_conflicts,
    review_template,
    template_type,
    validate_template,
)
from flowsvc.validation.violation import Violation

__all__ = [
    "NAME_PATTERN",
    "Violation",
    "keyword_conflicts",
    "review_template",
    "template_targets",
    "template_type",
    "validate_template",
]
