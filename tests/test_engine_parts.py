"""The engine's small parts on their own: keywords, expressions, inputs, rendering, references."""

from __future__ import annotations

from decimal import Decimal

import pytest

from flowsvc.engine import (
    REFERENCE_ALPHABET,
    Catalog,
    history_from_json,
    history_to_json,
    load_template,
    new_reference,
    normalize_reference,
)
from flowsvc.engine.expressions import ExpressionError, evaluate, names, to_context
from flowsvc.engine.keywords import KeywordIndex, normalize, phrase
from flowsvc.engine.render import fill, fill_capped, money, placeholder_names, truncate


@pytest.mark.parametrize(
    ("text", "keywords", "expected"),
    [
        ("Hi!", [("menu", "hi")], "menu"),
        ("hi there", [("menu", "hi")], "menu"),
        ("this", [("menu", "hi")], None),
        ("Olá", [("pt", "ola")], "pt"),
        ("CAFÉ please", [("cafe", "café")], "cafe"),
        ("my orders", [("account", "my orders"), ("order", "order")], "account"),
        ("my-orders", [("account", "my orders")], "account"),
        ("orders", [("order", "order")], None),
        ("help with order", [("support", "help"), ("order", "order")], "order"),
        ("hey", [("b", "hey"), ("a", "hey")], "a"),
        ("new order now", [("z", "new order"), ("a", "order now!")], "a"),
        ("", [("menu", "hi")], None),
        ("👋", [("menu", "hi")], None),
    ],
    ids=[
        "punctuation",
        "phrase",
        "not-inside-a-word",
        "accents",
        "accented-keyword",
        "more-words-wins",
        "punctuation-boundary-in-phrase",
        "no-plural",
        "more-chars-wins",
        "tie-by-template-name",
        "equal-length-tie-by-name",
        "empty",
        "emoji-only",
    ],
)
def test_keyword_matching(text: str, keywords: list[tuple[str, str]], expected: str | None) -> None:
    assert KeywordIndex(keywords).match(text) == expected


def test_normalize_and_phrase() -> None:
    assert normalize("ÉCOLE Straße") == "ecole strasse"
    assert phrase("  Cancel!!! ") == "cancel"
    assert phrase("Fresh   Juice") == "fresh juice"


def test_catalog_matches_only_active_latest_versions() -> None:
    body = {"type": "text", "body": {"text": "x"}}
    catalog = Catalog.build(
        [
            load_template("old", 1, body, trigger_keywords=["promo"]),
            load_template("old", 2, body, trigger_keywords=["deal"]),
            load_template("off", 1, body, trigger_keywords=["hidden"], is_active=False),
        ]
    )
    assert catalog.latest == {"old": 2, "off": 1}
    assert catalog.match_keyword("promo") is None
    matched = catalog.match_keyword("a deal!")
    assert matched is not None and (matched.name, matched.version) == ("old", 2)
    assert catalog.match_keyword("hidden") is None
    off = catalog.current("off")
    assert off is not None and not off.is_active
    assert catalog.get("old", 1) is not None
    assert catalog.get("old", 3) is None


@pytest.mark.parametrize(
    ("expression", "values", "expected"),
    [
        ("price * quantity", {"price": "3.50", "quantity": 2}, "7.00"),
        ("1 + 2 * 3", {}, "7"),
        ("(1 + 2) * 3", {}, "9"),
        ("-a - -b", {"a": 1, "b": 4}, "3"),
        ("10 / 4", {}, "2.5"),
        ("2 / 3", {}, "0.6667"),
        ("a * 1.5", {"a": 2.0}, "3.00"),
        ("  x  ", {"x": "1e2"}, "100"),
    ],
    ids=["money", "precedence", "parens", "unary", "division", "rounded", "float-value", "spaces"],
)
def test_expressions(expression: str, values: dict[str, object], expected: str) -> None:
    assert to_context(evaluate(expression, values)) == expected


@pytest.mark.parametrize(
    ("expression", "values"),
    [
        ("1 / 0", {}),
        ("a", {}),
        ("a", {"a": True}),
        ("a", {"a": "three"}),
        ("2 ** 3", {}),
        ("(1 + 2", {}),
        ("1 +", {}),
        ("__import__('os').system('x')", {}),
        ("a.b", {"a": 1}),
        ("(" * 100 + "1" + ")" * 100, {}),
        ("-" * 100 + "1", {}),
        ("9" * 60 + " * " + "9" * 60, {}),
        ("1" * 600, {}),
    ],
    ids=[
        "division-by-zero",
        "missing",
        "bool",
        "not-a-number",
        "power",
        "unclosed",
        "dangling",
        "code",
        "attribute",
        "deep-parens",
        "deep-unary",
        "overflow",
        "too-long",
    ],
)
def test_bad_expressions_raise_expression_error(expression: str, values: dict[str, object]) -> None:
    with pytest.raises(ExpressionError):
        evaluate(expression, values)


def test_expression_names_for_validators() -> None:
    assert names("price * (quantity + extra) - 1") == {"price", "quantity", "extra"}
    assert names("total / (count - discount)") == {"total", "count", "discount"}
    with pytest.raises(ExpressionError):
        names("price *")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7", "$7.00"),
        (7, "$7.00"),
        ("3.456", "$3.46"),
        ("-2.5", "-$2.50"),
        ("1234567.891", "$1,234,567.89"),
        ("n/a", "n/a"),
        (True, "Yes"),
    ],
    ids=["string", "int", "rounded", "negative", "thousands", "not-a-number", "bool"],
)
def test_money(value: object, expected: str) -> None:
    assert money(value, "$") == expected


def test_fill_replaces_one_pass_and_leaves_other_braces_alone() -> None:
    context = {"name": "{secret}", "secret": "leaked", "n": 3, "yes": False, "items": ["a", "b"]}
    assert fill("{name} {n} {yes} {items} {missing} {not a placeholder} {0}", context) == (
        "{secret} 3 No a, b  {not a placeholder} {0}"
    )
    assert fill("{n:money}", context, currency="€") == "€3.00"
    assert fill("{name:unknown}", context) == "{secret}"
    assert placeholder_names("{a} {b:money} {c d}") == {"a", "b"}


def test_truncate_counts_code_points_and_never_leaves_an_empty_text() -> None:
    assert truncate("héllo", 5) == "héllo"
    assert truncate("héllo!", 5) == "héll…"
    assert truncate("👍👍👍", 2) == "👍…"
    assert fill_capped("{missing}", {}, 10) == "…"


def test_references() -> None:
    values = iter(range(32))
    reference = new_reference(lambda n: next(values) % n)
    assert reference == REFERENCE_ALPHABET[:6] == "234567"
    assert not set("01OI") & set(REFERENCE_ALPHABET)
    assert len(REFERENCE_ALPHABET) == 32
    assert normalize_reference(" #k7m-4q 2 ") == "K7M4Q2"
    assert normalize_reference("---") is None
    assert normalize_reference("x" * 33) is None


def test_history_json_round_trip_drops_malformed_entries() -> None:
    history = (("main_menu", 1, "initial"), ("new_order", 3, "quantity"))
    assert history_from_json(history_to_json(history)) == history
    assert history_from_json([["a", 2.0, "b"], ["bad"], "x", ["a", True, "b"], None]) == (
        ("a", 2, "b"),
    )
    assert history_from_json(None) == ()


def test_load_template_tolerates_missing_and_odd_fields() -> None:
    template = load_template(
        "odd",
        1,
        {
            "type": "button",
            "body": "bare string body",
            "header": {"type": "image", "image": {"id": "1"}},
            "action": {"buttons": [{"reply": {"id": "a"}}, "junk"]},
            "steps": {"initial": "junk", "s": {"validation": {"type": "integer", "min": 1.0}}},
            "expiry_hours": 24.0,
        },
    )
    assert template.first.body == "bare string body"
    assert template.first.header is None
    assert [b.id for b in template.first.buttons] == ["a", ""]
    assert template.step("initial").next_steps == {}
    validation = template.step("s").validation
    assert validation is not None and validation.min == Decimal("1.0")
    assert template.expiry_hours == 24.0
    assert load_template("empty", 1, {}).first.type == "text"
