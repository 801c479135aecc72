"""`make chat`: the terminal customer, driven through its stdin against a real flowsvc."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.usefixtures("seeded")


def test_a_newcomer_orders_a_coffee_from_the_terminal(flowsvc_target: str) -> None:
    typed = "hi\n1\n1\n2\n1\n/quit\n"  # New Order, Coffee, quantity 2, Yes

    result = subprocess.run(
        [sys.executable, "-m", "menuflow.chat", "--target", flowsvc_target],
        input=typed,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert "[1] 🛒 New Order" in result.stdout
    assert "[1] Coffee - $3.50" in result.stdout
    assert "2 x Coffee = $7.00" in result.stdout
    assert "Order placed! Your order number is" in result.stdout
