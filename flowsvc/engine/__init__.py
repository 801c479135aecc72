"""The pure flow engine: templates in, decisions out, no I/O (the service does all of that).

    catalog = Catalog.build(load_template(name, version, menu_structure, ...) for ...)
    decision = advance(catalog, state, Inbound(text="hi"), to="15551234567", now=now,
                       config=EngineConfig(), reference="K7M4Q2")
    if isinstance(decision, Needs):   # a step needs the customer's orders: one query, once
        decision = advance(..., facts=Facts(orders=(...)))

Modules: flow (advance, start, enter: the state machine), answers (what a reply means in a step),
template (the typed model), catalog (the templates of a call), keywords (trigger keywords and
command words), inputs (typed input against a step's InputRule), expressions (compute),
render (placeholders, money), messages (Graph bodies, Replies), built (menus built from data:
pages, cut titles, taps on generated ids), orders (lookups, references, the
Needs/Facts round), state (State, Inbound, Outcome, Decision), config (EngineConfig),
limits (Meta's limits).

Checking a template when it is written is flowsvc.validation's job: it reads the engine, so the
two cannot disagree, and the engine never reads it.
"""

from flowsvc.engine.catalog import Catalog
from flowsvc.engine.config import EngineConfig
from flowsvc.engine.flow import advance, enter, start
from flowsvc.engine.orders import (
    REFERENCE_ALPHABET,
    Facts,
    Needs,
    OrderFact,
    new_reference,
    normalize_reference,
)
from flowsvc.engine.state import (
    Decision,
    Inbound,
    Outcome,
    ResultDraft,
    State,
    history_from_json,
    history_to_json,
)
from flowsvc.engine.template import Message, Option, Section, Step, Template, load_template

__all__ = [
    "REFERENCE_ALPHABET",
    "Catalog",
    "Decision",
    "EngineConfig",
    "Facts",
    "Inbound",
    "Message",
    "Needs",
    "Option",
    "OrderFact",
    "Outcome",
    "ResultDraft",
    "Section",
    "State",
    "Step",
    "Template",
    "advance",
    "enter",
    "history_from_json",
    "history_to_json",
    "load_template",
    "new_reference",
    "normalize_reference",
    "start",
]
