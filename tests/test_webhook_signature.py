"""The webhook signature check refuses every bypass people try; only Meta's exact form passes."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from gateway.signature import is_valid, same_secret, sign

SECRET = "app-secret"
BODY = b'{"object":"whatsapp_business_account","entry":[]}'
GOOD = sign(SECRET, BODY)


def test_metas_signature_is_accepted() -> None:
    assert GOOD == "sha256=" + hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    assert is_valid(SECRET, BODY, [GOOD])


@pytest.mark.parametrize(
    ("secret", "body", "headers"),
    [
        (SECRET, BODY, []),
        (SECRET, BODY, [""]),
        (SECRET, BODY, ["sha256="]),
        (SECRET, BODY, [GOOD, GOOD]),
        (SECRET, BODY, [GOOD, "sha256=" + "0" * 64]),
        (SECRET, BODY, ["sha1=" + hmac.new(SECRET.encode(), BODY, hashlib.sha1).hexdigest()]),
        (SECRET, BODY, ["SHA256=" + GOOD.removeprefix("sha256=")]),
        (SECRET, BODY, ["sha256=" + GOOD.removeprefix("sha256=").upper()]),
        (SECRET, BODY, [GOOD.removeprefix("sha256=")]),
        (SECRET, BODY, [GOOD + " "]),
        (SECRET, BODY, [" " + GOOD]),
        (SECRET, BODY, [GOOD[:-1]]),
        (SECRET, BODY, [GOOD[:-1] + "g"]),
        (SECRET, BODY + b" ", [GOOD]),
        (SECRET, b'{"object": "whatsapp_business_account", "entry": []}', [GOOD]),
        ("other-secret", BODY, [GOOD]),
        ("", BODY, [sign("", BODY)]),
    ],
    ids=[
        "missing",
        "empty",
        "prefix_only",
        "two_headers",
        "two_headers_one_bad",
        "sha1",
        "uppercase_prefix",
        "uppercase_hex",
        "no_prefix",
        "trailing_space",
        "leading_space",
        "truncated",
        "not_hex",
        "body_altered",
        "body_reencoded",
        "wrong_secret",
        "empty_secret",
    ],
)
def test_bypass_attempts_are_refused(secret: str, body: bytes, headers: list[str]) -> None:
    assert not is_valid(secret, body, headers)


@pytest.mark.parametrize(
    ("expected", "given", "result"),
    [("tok", "tok", True), ("tok", "tok2", False), ("tok", "", False), ("", "", False)],
    ids=["equal", "different", "missing", "unconfigured"],
)
def test_tokens_compare_exactly_and_empty_never_matches(
    expected: str, given: str, result: bool
) -> None:
    assert same_secret(expected, given) is result
