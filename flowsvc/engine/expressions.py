"""The expression language of `compute` and of a step's `rules`: numbers, 'strings', context
names, + - * /, comparisons, and/or/not, `in`, a few functions, and parentheses; nothing else.

A hand-written tokenizer and recursive-descent parser; no eval, no ast. Arithmetic is on
Decimals; `compute` results are stored as plain decimal strings (see `to_context`). A condition
(`holds`) reads a missing name as null, so "guests > 8" on a context without guests is false.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, DecimalException, localcontext
from typing import Any

from flowsvc.engine.render import to_decimal

MAX_LENGTH = 500
MAX_DEPTH = 32
MAX_PLACES = 4
KEYWORDS = frozenset({"and", "or", "not", "in", "true", "false", "null"})
_TOKEN = re.compile(
    r"""\s*(?:(\d+(?:\.\d+)?)|([A-Za-z_][A-Za-z0-9_]*)|('[^'\n]*'|"[^"\n]*")"""
    r"|(==|!=|<=|>=|[-+*/()<>,]))"
)
_ORDER = {"<": (-1,), "<=": (-1, 0), ">": (1,), ">=": (1, 0)}


class ExpressionError(ValueError):
    """The expression is malformed, names a missing value, or divides by zero."""


@dataclass(frozen=True)
class _Token:
    kind: str  # "number" | "name" | "string" | "op" | "end"
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
                f"has '{stripped[at]}' at character {at + 1}: only numbers, 'strings', names, "
                "+ - * /, comparisons (== != < <= > >=), commas and parentheses are allowed"
            )
        number, name, string, op = match.groups()
        if number is not None:
            tokens.append(_Token("number", number))
        elif name is not None:
            tokens.append(_Token("name", name))
        elif string is not None:
            tokens.append(_Token("string", string[1:-1]))
        else:
            tokens.append(_Token("op", op))
        pos = match.end()
    tokens.append(_Token("end", ""))
    return tokens


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def _number(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        return value
    number = to_decimal(value)
    if number is None:
        raise ExpressionError(f"'{_text(value)[:40]}' is not a number")
    return number


def _equal(left: Any, right: Any) -> bool:
    """Numbers (and numeric strings) compare as numbers; anything else as it is."""
    if left is None or right is None or isinstance(left, bool) or isinstance(right, bool):
        return left is right if left is None or right is None else left == right
    a, b = to_decimal(left), to_decimal(right)
    if a is not None and b is not None:
        return a == b
    return _text(left) == _text(right)


def _compare(left: Any, right: Any) -> int | None:
    """-1, 0 or 1 for two numbers or two texts; None when they cannot be ordered (null)."""
    if left is None or right is None or isinstance(left, bool) or isinstance(right, bool):
        return None
    a, b = to_decimal(left), to_decimal(right)
    if a is not None and b is not None:
        return (a > b) - (a < b)
    x, y = _text(left), _text(right)
    return (x > y) - (x < y)


def _contains(container: Any, item: Any) -> bool:
    if isinstance(container, list | tuple):
        return any(_equal(element, item) for element in container)
    if isinstance(container, Mapping):
        return _text(item) in container
    if container is None:
        return False
    return _text(item).lower() in _text(container).lower()


def _length(value: Any) -> Decimal:
    if value is None:
        return Decimal(0)
    if isinstance(value, list | tuple | Mapping):
        return Decimal(len(value))
    return Decimal(len(_text(value)))


def _round(value: Any, places: Any = Decimal(0)) -> Decimal:
    digits = int(_number(places))
    if not 0 <= digits <= MAX_PLACES:
        raise ExpressionError(f"round() takes 0 to {MAX_PLACES} places")
    return _number(value).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)


def _to_number(value: Any) -> Decimal | None:
    return value if isinstance(value, Decimal) else to_decimal(value)


# name -> (fewest arguments, most arguments, function)
FUNCTIONS: dict[str, tuple[int, int, Callable[..., Any]]] = {
    "lower": (1, 1, lambda v: _text(v).lower()),
    "upper": (1, 1, lambda v: _text(v).upper()),
    "trim": (1, 1, lambda v: _text(v).strip()),
    "len": (1, 1, _length),
    "contains": (2, 2, _contains),
    "starts_with": (2, 2, lambda v, p: _text(v).lower().startswith(_text(p).lower())),
    "ends_with": (2, 2, lambda v, p: _text(v).lower().endswith(_text(p).lower())),
    "number": (1, 1, _to_number),
    "is_number": (1, 1, lambda v: _to_number(v) is not None),
    "exists": (1, 1, lambda v: v is not None and v != ""),
    "round": (1, 2, _round),
    "abs": (1, 1, lambda v: abs(_number(v))),
    "min": (2, 2, lambda a, b: min(_number(a), _number(b))),
    "max": (2, 2, lambda a, b: max(_number(a), _number(b))),
}


def truthy(value: Any) -> bool:
    """What counts as true in a condition: not null, false, 0, "" or an empty list."""
    if value is None or value is False:
        return False
    if isinstance(value, Decimal | int | float) and not isinstance(value, bool):
        return value != 0
    if isinstance(value, str | list | tuple | Mapping):
        return len(value) > 0
    return bool(value)


class _Parser:
    """or := and ('or' and)* ; and := not ('and' not)* ; not := 'not' not | comparison ;
    comparison := sum (('=='|'!='|'<'|'<='|'>'|'>='|'in'|'not' 'in') sum)? ;
    sum := term (('+'|'-') term)* ; term := unary (('*'|'/') unary)* ;
    unary := ('-'|'+') unary | atom ;
    atom := number | 'string' | true | false | null | name | function '(' args ')' | '(' or ')'"""

    def __init__(
        self, expression: str, lookup: Callable[[str], Any], *, compute: bool = True
    ) -> None:
        self._tokens = _tokenize(expression)
        self._pos = 0
        self._lookup = lookup
        self._compute = compute  # False: check the shape only, every value stands in as 1
        self._depth = 0

    def parse(self) -> Any:
        value = self._or()
        if self._peek().kind != "end":
            raise ExpressionError(f"lacks an operator before '{self._peek().text}'")
        return value

    def _peek(self, ahead: int = 0) -> _Token:
        return self._tokens[min(self._pos + ahead, len(self._tokens) - 1)]

    def _take(self) -> _Token:
        token = self._tokens[self._pos]
        self._pos += 1
        return token

    def _is(self, kind: str, *texts: str, ahead: int = 0) -> bool:
        token = self._peek(ahead)
        return token.kind == kind and token.text in texts

    def _or(self) -> Any:
        value = self._and()
        while self._is("name", "or"):
            self._take()
            right = self._and()
            value = truthy(value) or truthy(right) if self._compute else value
        return value

    def _and(self) -> Any:
        value = self._not()
        while self._is("name", "and"):
            self._take()
            right = self._not()
            value = truthy(value) and truthy(right) if self._compute else value
        return value

    def _not(self) -> Any:
        if self._is("name", "not"):
            self._take()
            self._enter()
            try:
                operand = self._not()
            finally:
                self._depth -= 1
            return not truthy(operand) if self._compute else operand
        return self._comparison()

    def _comparison(self) -> Any:
        left = self._sum()
        if self._is("op", "==", "!=", "<", "<=", ">", ">="):
            op = self._take().text
            right = self._sum()
            if not self._compute:
                return left
            if op in ("==", "!="):
                return _equal(left, right) == (op == "==")
            order = _compare(left, right)
            return order is not None and order in _ORDER[op]
        negated = self._is("name", "not") and self._is("name", "in", ahead=1)
        if self._is("name", "in") or negated:
            self._pos += 2 if negated else 1
            right = self._sum()
            if not self._compute:
                return left
            return _contains(right, left) != negated
        return left

    def _sum(self) -> Any:
        value = self._term()
        while self._is("op", "+", "-"):
            plus = self._take().text == "+"
            right = self._term()
            if self._compute:
                value = _number(value) + _number(right) if plus else _number(value) - _number(right)
        return value

    def _term(self) -> Any:
        value = self._unary()
        while self._is("op", "*", "/"):
            times = self._take().text == "*"
            right = self._unary()
            if not times and isinstance(right, Decimal) and right == 0:
                raise ExpressionError("divides by zero")
            if not self._compute:
                continue
            if times:
                value = _number(value) * _number(right)
            elif _number(right) == 0:
                raise ExpressionError("divides by zero")
            else:
                value = _number(value) / _number(right)
        return value

    def _unary(self) -> Any:
        token = self._peek()
        if token.kind == "op" and token.text in ("-", "+"):
            self._take()
            self._enter()
            try:
                operand = self._unary()
            finally:
                self._depth -= 1
            if not self._compute:
                return operand
            return -_number(operand) if token.text == "-" else _number(operand)
        return self._atom()

    def _atom(self) -> Any:
        token = self._take()
        if token.kind == "number":
            return Decimal(token.text)
        if token.kind == "string":
            return token.text
        if token.kind == "name":
            return self._named(token.text)
        if token.kind == "op" and token.text == "(":
            self._enter()
            try:
                value = self._or()
            finally:
                self._depth -= 1
            if self._take().text != ")":
                raise ExpressionError("has a '(' that is never closed")
            return value
        if token.kind == "end":
            raise ExpressionError("ends where a number or name is expected")
        raise ExpressionError(f"has '{token.text}' where a number or name is expected")

    def _named(self, name: str) -> Any:
        if name in ("true", "false"):
            return name == "true"
        if name == "null":
            return None
        if name in KEYWORDS:
            raise ExpressionError(f"has '{name}' where a number or name is expected")
        if not self._is("op", "("):
            return self._lookup(name)
        if name not in FUNCTIONS:
            raise ExpressionError(
                f"calls '{name}', which is not a function: the functions are "
                f"{', '.join(sorted(FUNCTIONS))}"
            )
        self._take()
        self._enter()
        try:
            arguments = self._arguments()
        finally:
            self._depth -= 1
        fewest, most, function = FUNCTIONS[name]
        if not fewest <= len(arguments) <= most:
            wanted = str(fewest) if fewest == most else f"{fewest} or {most}"
            raise ExpressionError(
                f"calls {name}() with {len(arguments)} arguments; it takes {wanted}"
            )
        return function(*arguments) if self._compute else Decimal(1)

    def _arguments(self) -> Sequence[Any]:
        arguments: list[Any] = []
        if self._is("op", ")"):
            self._take()
            return arguments
        while True:
            arguments.append(self._or())
            token = self._take()
            if token.kind == "op" and token.text == ")":
                return arguments
            if not (token.kind == "op" and token.text == ","):
                raise ExpressionError("has a function call whose '(' is never closed")

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


def _run(expression: str, lookup: Callable[[str], Any]) -> Any:
    with localcontext() as ctx:
        ctx.prec = 28
        ctx.Emax = 99
        ctx.Emin = -99
        try:
            return _Parser(expression, lookup).parse()
        except DecimalException as exc:
            raise ExpressionError(f"arithmetic error: {type(exc).__name__}") from None
        except (ValueError, TypeError) as exc:
            if isinstance(exc, ExpressionError):
                raise
            raise ExpressionError(f"cannot be computed: {exc}") from None


def evaluate(expression: str, values: Mapping[str, Any]) -> Decimal:
    """The value of `expression` (a `compute`) with names read from `values` (numbers or numeric
    strings); ExpressionError unless it is a number."""

    def lookup(name: str) -> Decimal:
        number = to_decimal(values.get(name))
        if number is None:
            raise ExpressionError(f"{name!r} is not a number in the context")
        return number

    result = _run(expression, lookup)
    if not isinstance(result, Decimal):
        raise ExpressionError("does not compute a number")
    return result


def holds(expression: str, values: Mapping[str, Any]) -> bool:
    """Whether a condition is true over `values`; a missing name reads as null.

    An expression that cannot be evaluated over these values (arithmetic on a text, division by
    zero) is false: a rule that cannot be decided does not apply.
    """
    try:
        return truthy(_run(expression, values.get))
    except ExpressionError:
        return False


def to_context(value: Decimal) -> str:
    """How a computed number is stored: a plain decimal string with at most 4 places.

    Decimal keeps the scale of its operands, so "3.50" * 2 is "7.00" and 2 + 3 is "5";
    longer fractions (10 / 3) are rounded half-up to 4 places.
    """
    exponent = value.as_tuple().exponent  # a str only for NaN and infinity: evaluate() raises
    if isinstance(exponent, int) and exponent < -MAX_PLACES:
        value = value.quantize(Decimal(1).scaleb(-MAX_PLACES), rounding=ROUND_HALF_UP)
    return format(value, "f")
