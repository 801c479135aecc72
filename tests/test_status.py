"""How a failed call's status is sized: whatever the problems, its trailers stay under the 8 KiB
that gRPC clients accept, and the message says how many problems it left out."""

from __future__ import annotations

import pytest

from flowsvc.errors import InvalidArgument, NotFound
from flowsvc.rpc.status import TRAILER_BUDGET, status_message, wire_size

CLIENT_LIMIT = 8192  # grpc's default soft limit on received metadata; refusals start above it


def trailer_size(error: Exception) -> int:
    """The trailers as a client counts them: each entry's name, value and 32 bytes (HPACK)."""
    status = status_message(error)
    entries = {
        "grpc-status": str(status.code),
        "grpc-message": "x" * wire_size(status.message),
        "grpc-status-details-bin": status.SerializeToString(),
    }
    return sum(len(name) + len(value) + 32 for name, value in entries.items())


@pytest.mark.parametrize(
    "reason",
    ["x" * 5000, "é" * 2000, "50% off {total}\n" * 100, "short"],
    ids=["long-ascii", "accented", "percent-and-newlines", "short"],
)
@pytest.mark.parametrize("problems", [1, 7, 800])
def test_any_invalid_argument_fits_the_trailers(reason: str, problems: int) -> None:
    error = InvalidArgument(
        "template 'shop' is invalid",
        [(f"menu_structure.steps.s{i}.prompt", reason) for i in range(problems)],
    )

    message = status_message(error).message

    assert trailer_size(error) <= TRAILER_BUDGET + 200 < CLIENT_LIMIT
    assert message.startswith(f"template 'shop' is invalid ({problems} problem")
    lines = message.split("\n")
    if problems == 800:
        assert lines[-1].startswith("… and ") and lines[-1].endswith("more problems not shown here")
        shown = len(lines) - 2
        assert lines[-1] == f"… and {800 - shown} more problems not shown here"


def test_a_long_message_of_another_error_is_cut_within_the_budget() -> None:
    error = NotFound("template " + "ü" * 10_000 + " does not exist")

    message = status_message(error).message

    assert message.endswith("…") and trailer_size(error) < CLIENT_LIMIT
