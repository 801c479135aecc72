"""What a Graph API answer means for an outbox message: sent, retry later, or failed for good.

The code lists follow meta-contract.md §7. A transient failure is retried however often it
happens, until the message's send deadline (gateway/deadline.py) passes, never by a count alone.
Retry delays are whole seconds (AckOutbox carries seconds): capped exponential backoff with full
jitter, so that many gateways hitting the same outage do not come back in lockstep.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any, Literal

from gateway.deadline import DEADLINE_PASSED, WINDOW_CLOSED
from gateway.meta_errors import graph_error
from gateway.pair_rate import PAIR_RATE, PairRateBackoff
from menuflow.v1 import flow_pb2

# Meta says "wait and retry" (or the service was briefly down).
RETRYABLE = frozenset({1, 2, 4, 80007, 130429, 131000, 131016, 133004, 131056, 131048})
# A message template Meta will not send as asked: parameter count (132000), no such template in
# that language (132001), text too long once filled (132005), format policy (132007), parameter
# format (132012), template paused (132015) or disabled (132016). Fixing it takes a person.
TEMPLATE_ERRORS = frozenset({132000, 132001, 132005, 132007, 132012, 132015, 132016})
# Meta says fix something first: the payload, the token, the account, or the customer's window.
PERMANENT = frozenset(
    {0, 3, 10, 100, 190, 368, 131005, 131008, 131009, 131021, 131026, 131031, 131047, 131051}
    | set(range(200, 300))
    | TEMPLATE_ERRORS
)
# Throughput limits of the business number or the app: slow the number down, not only this message.
THROUGHPUT = frozenset({4, 80007, 130429})
SPAM_RATE = 131048  # quality limit: a long pause, never hammering
BACKOFF_BASE = 1.0
BACKOFF_CAP = 30.0


@dataclass(frozen=True)
class Verdict:
    """The outcome of one send attempt."""

    kind: Literal["sent", "retry", "failed"]
    wa_message_id: str = ""
    error: flow_pb2.MetaError | None = None
    delay_seconds: int = 0
    ambiguous: bool = False  # the request may have reached Meta; a retry may duplicate it
    throttled: bool = False  # the business number's rate should back off
    transient: bool = False  # Meta failed or did not answer: counts towards the breaker

    @property
    def label(self) -> str:
        """The error code as a metric label ("" when there is none)."""
        if self.error is None:
            return "ambiguous" if self.ambiguous else ("network" if self.kind == "retry" else "")
        if self.error.code == 0 and self.error.title.startswith("HTTP "):
            return "http_" + self.error.title.removeprefix("HTTP ")
        if self.error.code == 0 and self.error.title in (DEADLINE_PASSED, WINDOW_CLOSED):
            return self.error.title.replace(" ", "_")
        return str(self.error.code)

    def ack(self, outbox_id: int) -> flow_pb2.OutboxAck:
        if self.kind == "sent":
            return flow_pb2.OutboxAck(id=outbox_id, sent_wa_message_id=self.wa_message_id)
        if self.kind == "failed":
            return flow_pb2.OutboxAck(id=outbox_id, failed=self.error)
        retry = flow_pb2.RetryLater(delay_seconds=self.delay_seconds)
        if self.error is not None:
            retry.error.CopyFrom(self.error)
        return flow_pb2.OutboxAck(id=outbox_id, retry=retry)


def backoff(attempts: int, *, base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP) -> int:
    """Capped exponential backoff with full jitter: anywhere from 0 to base * 2^(attempts - 1)
    seconds, at most `cap`, rounded to whole seconds (0: at the next claim)."""
    ceiling = min(cap, base * 2 ** min(max(attempts - 1, 0), 30))
    return round(random.uniform(0, ceiling))


def network_error(attempts: int, *, ambiguous: bool, cap: float = BACKOFF_CAP) -> Verdict:
    """No answer from Meta: retried, flagged ambiguous when the request may have been received."""
    delay = backoff(attempts, cap=cap)
    # Give a status webhook for a message Meta did accept time to arrive before resending it.
    return Verdict(
        "retry",
        delay_seconds=max(5, delay) if ambiguous else delay,
        ambiguous=ambiguous,
        transient=True,
    )


def classify(
    status: int,
    content: bytes,
    attempts: int,
    pair_rate_hits: int = 0,
    *,
    cap: float = BACKOFF_CAP,
) -> Verdict:
    """Turn one Graph API HTTP answer into a verdict; `attempts` counts this one,
    `pair_rate_hits` how often this customer hit the pair rate limit (131056) before, and `cap`
    is the longest backoff (SEND_BACKOFF_MAX_SECONDS)."""
    try:
        body: Any = json.loads(content) if content else None
    except ValueError:
        body = None
    if 200 <= status < 300:
        messages = body.get("messages") if isinstance(body, dict) else None
        first = messages[0] if isinstance(messages, list) and messages else None
        wa_id = first.get("id") if isinstance(first, dict) else None
        # Meta accepted it even if the answer is odd: resending would duplicate the message.
        return Verdict("sent", wa_message_id=wa_id if isinstance(wa_id, str) else "")
    error, code = graph_error(body, status, content)
    # A limit on one customer (131056) or on the business's quality (131048) is an answer, not an
    # outage: retried, but not counted towards the business number's circuit breaker.
    if code == PAIR_RATE:
        return Verdict("retry", error=error, delay_seconds=PairRateBackoff.delay(pair_rate_hits))
    if code == SPAM_RATE:
        return Verdict("retry", error=error, delay_seconds=backoff(attempts, base=60, cap=900))
    delay = backoff(attempts, cap=cap)
    if code in THROUGHPUT:
        return Verdict("retry", error=error, delay_seconds=delay, throttled=True, transient=True)
    if code in RETRYABLE:
        return Verdict("retry", error=error, delay_seconds=delay, transient=True)
    if code in PERMANENT:
        return Verdict("failed", error=error)
    if status >= 500 or status == 429:
        return Verdict(
            "retry", error=error, delay_seconds=delay, throttled=status == 429, transient=True
        )
    return Verdict("failed", error=error)
