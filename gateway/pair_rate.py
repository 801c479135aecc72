"""Meta's pair rate limit (131056, too many messages to one customer): a backoff per customer."""

from __future__ import annotations

import random

from gateway.customer import Customer
from menuflow.v1 import flow_pb2

PAIR_RATE = 131056
MAX_DELAY_SECONDS = 900


class PairRateBackoff:
    """How often in a row each customer hit the pair rate limit, and the 4^X seconds that follow.

    X "starts at 0 and increments each time the limit is hit" (meta-contract §7): it is counted per
    customer, so one busy customer slows no one else, and it resets once a message to them went
    through or failed for good.
    """

    def __init__(self) -> None:
        self._hits: dict[Customer, int] = {}

    def hits(self, customer: Customer) -> int:
        """X for the customer's next send."""
        return self._hits.get(customer, 0)

    def count(self, customer: Customer, error: flow_pb2.MetaError | None, *, retry: bool) -> None:
        """Count Meta's answer to one send to `customer` (`error` is None when Meta took it)."""
        if error is not None and error.code == PAIR_RATE:
            self._hits[customer] = self._hits.get(customer, 0) + 1
        elif not retry:
            self._hits.pop(customer, None)

    @staticmethod
    def delay(earlier_hits: int) -> int:
        """The retry delay after a hit: 4^X seconds for X earlier hits, with a little jitter."""
        seconds: int = 4 ** min(max(earlier_hits, 0), 5)
        return min(MAX_DELAY_SECONDS, max(1, round(seconds * random.uniform(1.0, 1.1))))
