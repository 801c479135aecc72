"""The outbox pump: claims unsent messages from FlowService with a lease, hands them to the lanes.

This is how a committed reply still goes out when the gateway that recorded it died after its 200,
when the Graph API was down, or when a send was retried later. Claims are exclusive per customer
(FlowService guarantees it), so several gateways pumping at once never send the same message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import grpc

from gateway.channel import Calls
from gateway.lanes import Lanes
from gateway.metrics import Metrics
from menuflow.logs import log
from menuflow.v1 import flow_pb2

logger = logging.getLogger("gateway.pump")

# How soon to claim again while a committed reply waits behind a message another sender holds.
SOON = 0.1


class OutboxPump:
    """A loop: claim, hand to lanes, wait `poll_seconds` (not at all after a full claim, SOON
    while hurried)."""

    def __init__(
        self,
        *,
        calls: Calls,
        lanes: Lanes,
        metrics: Metrics,
        poll_seconds: float,
        lease_seconds: int,
        claim_max: int,
    ) -> None:
        self._calls = calls
        self._lanes = lanes
        self._metrics = metrics
        self._poll = poll_seconds
        self._lease = lease_seconds
        self._claim_max = claim_max
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()  # cuts the current wait short
        self._hurry_until = 0.0

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def hurry(self) -> None:
        """A committed reply was not leased to us because another sender (another gateway or
        worker) still holds an earlier message to that customer: claim every SOON seconds for the
        next poll interval, so the reply goes out soon after that sender is done, not at the next
        poll."""
        now = time.monotonic()
        if now >= self._hurry_until:
            self._wake.set()
        self._hurry_until = now + self._poll

    async def run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            wait = self._poll
            room = 2 * self._claim_max - self._lanes.holding
            if room > 0:
                try:
                    claimed = await self._claim(min(self._claim_max, room))
                    failures = 0
                    if claimed >= min(self._claim_max, room):
                        wait = 0.0  # more is waiting: claim again at once
                except grpc.aio.AioRpcError as exc:
                    failures += 1
                    wait = min(30.0, self._poll * 2 ** min(failures, 5))
                    log(
                        logger,
                        logging.WARNING if failures < 3 else logging.ERROR,
                        "pump.claim_error",
                        code=exc.code().name,
                        failures=failures,
                        retry_in=round(wait, 2),
                    )
            if not failures and time.monotonic() < self._hurry_until:
                wait = min(wait, SOON)
            self._wake.clear()
            if self._stop.is_set():  # stopped during the claim: its wake was just cleared
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=wait or 0.001)

    async def _claim(self, max_messages: int) -> int:
        requested_at = time.monotonic()
        response = await self._calls.flow.ClaimOutbox(
            flow_pb2.ClaimOutboxRequest(
                owner=self._calls.owner, max_messages=max_messages, lease_seconds=self._lease
            ),
            timeout=self._calls.timeout,
            metadata=self._calls.metadata,
        )
        self._metrics.outbox_pending.set(response.pending)
        added = self._lanes.take(response.messages, requested_at)
        if response.messages:
            log(logger, logging.INFO, "pump.claimed", messages=len(response.messages), new=added)
        return len(response.messages)
