"""Order lookups and references: what the engine asks the service for, and how it shows orders.

The protocol is one extra round at most. When a step needs the customer's orders and advance()
was called without facts, it returns `Needs`; the service runs one query (below) and calls
advance() again with the same arguments plus `Facts`. Needs always asks for both the quoted
reference (if any) and the recent orders, so the second call never needs anything more.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flowsvc.engine.config import EngineConfig
from flowsvc.engine.render import money, plain

REFERENCE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no 0/O/1/I to misread
REFERENCE_LENGTH = 6
MAX_REFERENCE_CHARS = 32
RECENT_LIMIT = 5
# What a step with `"lookup": "order"` puts into the context: the keys of order_context().
ORDER_LOOKUP_NAMES = ("order_reference", "order_summary", "order_date", "order_total")
_NOT_REFERENCE = re.compile(r"[^0-9A-Z]")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class OrderFact:
    """One stored result of the customer's, as the service read it."""

    reference: str
    template: str
    version: int
    context: Mapping[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class Needs:
    """Data advance() needs before it can decide; answer with `Facts` and call again.

    The service answers with one query over the results of this customer only (same
    phone_number_id and phone number): the result whose reference equals `reference` (when set),
    plus the newest `recent_limit` results, newest first, limited to `templates` when that is
    not empty. Duplicates are harmless.
    """

    reference: str | None = None
    recent_limit: int = RECENT_LIMIT
    templates: tuple[str, ...] = ()


@dataclass(frozen=True)
class Facts:
    """The service's answer to `Needs`: the customer's matching results (any order)."""

    orders: tuple[OrderFact, ...] = ()


class MissingFacts(Exception):
    """Stops a call of advance() or start() that needs the customer's orders; carries the Needs."""

    def __init__(self, needs: Needs) -> None:
        super().__init__("lookup needed")
        self.needs = needs


def new_reference(randbelow: Callable[[int], int], length: int = REFERENCE_LENGTH) -> str:
    """A fresh reference such as "K7M4Q2"; pass `secrets.randbelow` (no randomness in here)."""
    return "".join(REFERENCE_ALPHABET[randbelow(len(REFERENCE_ALPHABET))] for _ in range(length))


def normalize_reference(text: str) -> str | None:
    """A reference as a customer may quote it (any case, spaces, dashes, '#'); None if not one."""
    folded = _NOT_REFERENCE.sub("", text.upper())
    return folded if 0 < len(folded) <= MAX_REFERENCE_CHARS else None


def find_order(facts: Facts, reference: str) -> OrderFact | None:
    """The customer's result with this (normalized) reference."""
    return next((order for order in facts.orders if order.reference.upper() == reference), None)


def quoted_order(
    facts: Facts | None, reference: str, config: EngineConfig, templates: tuple[str, ...]
) -> OrderFact | None:
    """The order a customer quoted for an `order` lookup, if it is theirs and an order.

    `templates`: those whose results are orders (Catalog.order_templates; empty: every result).
    """
    order = find_order(_required(facts, reference, config, templates), reference)
    return order if order is not None and _is_order(order, templates) else None


def customer_orders(
    facts: Facts | None, config: EngineConfig, templates: tuple[str, ...]
) -> list[OrderFact]:
    """The customer's orders, for a `recent_orders` lookup."""
    found = _required(facts, None, config, templates).orders
    return [order for order in found if _is_order(order, templates)]


def _required(
    facts: Facts | None, reference: str | None, config: EngineConfig, templates: tuple[str, ...]
) -> Facts:
    """`facts`, or MissingFacts with the Needs that a second call answers in full."""
    if facts is None:
        needs = Needs(
            reference=reference, recent_limit=config.recent_orders_limit, templates=templates
        )
        raise MissingFacts(needs)
    return facts


def _is_order(order: OrderFact, templates: tuple[str, ...]) -> bool:
    """Results of the order templates count as orders; all results do when none is declared."""
    return not templates or order.template in templates


def summary(order: OrderFact) -> str:
    """ "2 x Coffee" from an order's context; the template name when it holds no product."""
    context = order.context
    product = plain(context.get("product_title") or context.get("product"))
    quantity = plain(context.get("quantity"))
    if product and quantity:
        return f"{quantity} x {product}"
    return product or order.template.replace("_", " ").capitalize()


def date(moment: datetime) -> str:
    """A date every customer reads the same way: "28 Nov 2025" (no locale involved)."""
    return f"{moment.day} {_MONTHS[moment.month - 1]} {moment.year}"


def order_context(order: OrderFact) -> dict[str, Any]:
    """The context values a found order provides to the steps after an `order` lookup."""
    total = order.context.get("total")
    return {
        "order_reference": order.reference,
        "order_summary": summary(order),
        "order_date": date(order.created_at),
        "order_total": plain(total) if total is not None else "",
    }


def recent_orders(orders: Sequence[OrderFact], *, currency: str, limit: int, empty: str) -> str:
    """A short numbered list of the newest orders, or `empty` when there are none."""
    newest = sorted(orders, key=lambda o: (o.created_at, o.reference), reverse=True)
    seen: set[str] = set()
    unique = []
    for order in newest:
        if order.reference not in seen:
            seen.add(order.reference)
            unique.append(order)
    lines = []
    for number, order in enumerate(unique[:limit], start=1):
        parts = [order.reference, summary(order)]
        total = order.context.get("total")
        if total is not None:
            parts.append(money(total, currency))
        parts.append(date(order.created_at))
        lines.append(f"{number}. " + " · ".join(parts))
    return "\n".join(lines) if lines else empty
