"""The `compute` language: + - * / and parentheses over decimals and context names, nothing else.

A hand-written tokenizer and recursive-descent parser; no eval, no ast. Results are Decimals,
stored in the context as plain decimal strings (see `to_context`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, DecimalException, localcontext
from typing import Any

from flowsvc.engine.render import to_decimal

MAX_LENGTH = 500
MAX_DEPTH = 32
MAX_PLACES = 4
_TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d+)?)|([A-Za-z_][A-Za-z0-9_]*)|([-+*/()]))")


class ExpressionError(ValueError):
    """The expression is malformed, names a missing value, or divides by zero."""


@dataclass(frozen=True)
class _Token:
    kind: str  # "number" | "name" | "op" | "end"
    text: str


def _tokenize(expression: str) -> list[_Token]:
    if len(expression) > MAX_LENGTH:
        raise ExpressionError(
            f"is {len(expression)} characters long; at most {MAX_LENGTH} are allowed"
        )
    tokens: list[_Token] = []
    pos = 0
    stripped = expression.rstrip()
    while pos < len(stripped):
        match = _TOKEN.match(stripped, pos)
        if match is None:
            at = len(stripped) - len(stripped[pos:].lstrip())
            raise ExpressionError(
                f"has '{stripped[at]}' at character {at + 1}: only numbers, names, "
                "+ - * / and parentheses are allowed"
            )
        number, name, op = match.groups()
        if number is not None:
            tokens.append(_Token("number", number))
        elif name is not None:
            tokens.append(_Token("name", name))
        else:
            tokens.append(_Token("op", op))
        pos = match.end()
    tokens.append(_Token("end", ""))
    return tokens


class _Parser:
    """expr := term (('+'|'-') term)* ; term := unary (('*'|'/') unary)* ;
    unary := ('-'|'+') unary | atom ; atom := number | name | '(' expr ')'"""

    def __init__(
        self, expression: str, lookup: Callable[[str], Decimal], *, compute: bool = True
    ) -> None:
        self._tokens = _tokenize(expression)
        self._pos = 0
        self._lookup = lookup
        self._compute = compute  # False: check the shape only, every value stands in as 1
        self._depth = 0

    def parse(self) -> Decimal:
        value = self._expr()
        if self._peek().kind != "end":
            raise ExpressionError(f"lacks an operator before '{self._peek().text}'")
        return value

    def _peek(self) -> _Token:
        return self._tokens[self._pos]

    def _take(self) -> _Token:
        token = self._tokens[self._pos]
        self._pos += 1
        return token

    def _expr(self) -> Decimal:
        value = self._term()
        while self._peek().text in ("+", "-") and self._peek().kind == "op":
            plus = self._take().text == "+"
            right = self._term()
            if self._compute:
                value = value + right if plus else value - right
        return value

    def _term(self) -> Decimal:
        value = self._unary()
        while self._peek().text in ("*", "/") and self._peek().kind == "op":
            times = self._take().text == "*"
            right = self._unary()
            if not times and right == 0:
                raise ExpressionError("divides by zero")
            if not self._compute:
                continue
            if times:
                value = value * right
            else:
                value = value / right
        return value

    def _unary(self) -> Decimal:
        token = self._peek()
        if token.kind == "op" and token.text in ("-", "+"):
            self._take()
            self._enter()
            try:
                operand = self._unary()
            finally:
                self._depth -= 1
            return -operand if token.text == "-" and self._compute else operand
        return self._atom()

    def _atom(self) -> Decimal:
        token = self._take()
        if token.kind == "number":
            return Decimal(token.text)
        if token.kind == "name":
            return self._lookup(token.text)
        if token.kind == "op" and token.text == "(":
            self._enter()
            try:
                value = self._expr()
            finally:
                self._depth -= 1
            if self._take().text != ")":
                raise ExpressionError("has a '(' that is never closed")
            return value
        if token.kind == "end":
            raise ExpressionError("ends where a number or name is expected")
        raise ExpressionError(f"has '{token.text}' where a number or name is expected")

    def _enter(self) -> None:
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise ExpressionError(f"nests more than {MAX_DEPTH} parentheses and signs deep")


def names(expression: str) -> set[str]:
    """The context names an expression reads (for validators); ExpressionError if malformed."""
    seen: set[str] = set()

    def record(name: str) -> Decimal:
        seen.add(name)
        return Decimal(1)

    _Parser(expression, record, compute=False).parse()
    return seen


def evaluate(expression: str, values: Mapping[str, Any]) -> Decimal:
    """The value of `expression` with names read from `values` (numbers or numeric strings)."""

    def lookup(name: str) -> Decimal:
        number = to_decimal(values.get(name))
        if number is None:
            raise ExpressionError(f"{name!r} is not a number in the context")
        return number

    with localcontext() as ctx:
        ctx.prec = 28
        ctx.Emax = 99
        ctx.Emin = -99
        try:
            result = _Parser(expression, lookup).parse()
        except DecimalException as exc:
            raise ExpressionError(f"arithmetic error: {type(exc).__name__}") from None
    return result


def to_context(value: Decimal) -> str:
    """How a computed number is stored: a plain decimal string with at most 4 places.

    Decimal keeps the scale of its operands, so "3.50" * 2 is "7.00" and 2 + 3 is "5";
    longer fractions (10 / 3) are rounded half-up to 4 places.
    """
    exponent = value.as_tuple().exponent  # a str only for NaN and infinity: evaluate() raises
    if isinstance(exponent, int) and exponent < -MAX_PLACES:
        value = value.quantize(Decimal(1).scaleb(-MAX_PLACES), rounding=ROUND_HALF_UP)
    return format(value, "f")
