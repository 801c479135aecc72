"""Hands webhook messages and statuses to FlowService: each customer's in order, customers at once.

`record` answers True only when FlowService durably recorded everything that can be recorded, so
that a 200 to Meta never loses a message. A message FlowService refuses for good (INVALID_ARGUMENT,
or RESOURCE_EXHAUSTED when it would grow a conversation past its cap) is skipped, but only when it
is FlowService's result for that message: a call refused as a whole says nothing of its messages
(gateway/batches.py): Meta would
redeliver it for days, and it would fail the same way every time. Any other error stops that
customer's batch (a later message must not overtake it) and makes the webhook answer 503, so Meta
redelivers and dedupe absorbs what was done. The replies HandleMessage leased to this gateway go to
the send lanes at once: they are committed, so sending them does not depend on the rest of the
payload.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import grpc

from gateway.batches import Batches, HandleError
from gateway.channel import Calls
from gateway.customer import Customer
from gateway.lanes import Lanes
from gateway.leases import leased_replies
from gateway.metrics import Metrics
from gateway.payload import Parsed
from gateway.receipts import Receipts
from menuflow.logs import log, mask_message_id, mask_phone
from menuflow.v1 import flow_pb2

logger = logging.getLogger("gateway.inbox")

# flowsvc or its database is down for a while: Meta redelivers, nothing is lost, no alarm needed.
_TRANSIENT = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
_SKIPPABLE = (
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
)


def _outcome_label(response: flow_pb2.HandleMessageResponse) -> str:
    if response.duplicate:
        return "duplicate"
    return flow_pb2.Outcome.Name(response.outcome).removeprefix("OUTCOME_").lower()


class Inbox:
    """Records webhooks in FlowService with a bound on calls in flight."""

    def __init__(
        self,
        *,
        calls: Calls,
        lanes: Lanes,
        receipts: Receipts,
        metrics: Metrics,
        concurrency: int,
        batch_size: int,
        batch_max_bytes: int,
        lease_seconds: int,
        send_budget: float,
        mark_as_read: bool,
        on_held_elsewhere: Callable[[], None],
    ) -> None:
        self._calls = calls
        self._batches = Batches(
            calls,
            lease_seconds=lease_seconds,
            max_in_flight=concurrency,
            max_batch=batch_size,
            max_bytes=batch_max_bytes,
        )
        self._lanes = lanes
        self._receipts = receipts
        self._metrics = metrics
        # RecordStatus calls carry one status each: as many in flight as messages can be.
        self._status_slots = asyncio.Semaphore(concurrency * batch_size)
        self._lease = lease_seconds
        self._budget = send_budget
        self._mark_as_read = mark_as_read
        self._held_elsewhere = on_held_elsewhere

    async def record(self, parsed: Parsed) -> bool:
        """Record every message and status; False if any could not be recorded (answer non-200)."""
        customers: dict[Customer, list[flow_pb2.InboundMessage]] = {}
        for message in parsed.messages:
            customer = (message.customer.phone_number_id, message.customer.phone_number)
            customers.setdefault(customer, []).append(message)
        jobs = [
            self._customer(sorted(messages, key=lambda m: m.sent_time.seconds))
            for messages in customers.values()
        ]
        jobs += [self._status(status) for status in parsed.statuses]
        if len(jobs) == 1:  # the usual webhook: no task and no gather to wait for one job
            return await jobs[0]
        return all(await asyncio.gather(*jobs))

    async def _customer(self, messages: list[flow_pb2.InboundMessage]) -> bool:
        for message in messages:
            started = time.monotonic()
            try:
                response = await self._batches.handle(message)
            except HandleError as error:
                skip = error.code in _SKIPPABLE and not error.whole_call
                self._metrics.messages.labels(outcome="invalid" if skip else "error").inc()
                log(
                    logger,
                    logging.WARNING if skip or error.code in _TRANSIENT else logging.ERROR,
                    "message.skipped" if skip else "message.error",
                    msg_id=mask_message_id(message.message_id),
                    code=error.code.name,
                    details=error.details,
                )
                if skip:
                    continue
                return False
            self._metrics.handle_seconds.observe(time.monotonic() - started)
            self._accepted(message, response, started)
        return True

    def _accepted(
        self,
        message: flow_pb2.InboundMessage,
        response: flow_pb2.HandleMessageResponse,
        requested_at: float,
    ) -> None:
        leased = leased_replies(
            response.messages,
            response.duplicate,
            self._calls.owner,
            requested_at,
            self._lease,
            self._budget,
        )
        self._lanes.submit(leased)
        if not response.duplicate and len(leased) < len(response.messages):
            # Committed replies behind a message another sender holds: the pump must claim them.
            self._held_elsewhere()
        if self._mark_as_read and not response.duplicate:
            customer = (message.customer.phone_number_id, message.customer.phone_number)
            self._receipts.mark_read(customer, message.message_id)
        outcome = _outcome_label(response)
        self._metrics.messages.labels(outcome=outcome).inc()
        # DEBUG: a line per message is costly on this path; the metrics count them. Its fields
        # are not even built unless it is on.
        if logger.isEnabledFor(logging.DEBUG):
            log(
                logger,
                logging.DEBUG,
                "message.handled",
                msg_id=mask_message_id(message.message_id),
                customer=mask_phone(message.customer.phone_number),
                kind=message.WhichOneof("content") or "none",
                outcome=outcome,
                replies=len(response.messages),
                leased=len(leased),
            )

    async def _status(self, status: flow_pb2.RecordStatusRequest) -> bool:
        name = flow_pb2.DeliveryStatus.Name(status.status).removeprefix("DELIVERY_STATUS_").lower()
        async with self._status_slots:
            try:
                response = await self._calls.flow.RecordStatus(
                    status, timeout=self._calls.timeout, metadata=self._calls.metadata
                )
            except grpc.aio.AioRpcError as exc:
                skip = exc.code() in _SKIPPABLE
                self._metrics.statuses.labels(
                    status=name, matched="invalid" if skip else "error"
                ).inc()
                log(
                    logger,
                    logging.WARNING if skip else logging.ERROR,
                    "status.skipped" if skip else "status.error",
                    wa_id=mask_message_id(status.wa_message_id),
                    code=exc.code().name,
                )
                return skip
        self._metrics.statuses.labels(status=name, matched=str(response.matched).lower()).inc()
        log(
            logger,
            logging.INFO if status.errors else logging.DEBUG,
            "status.recorded",
            wa_id=mask_message_id(status.wa_message_id),
            status=name,
            matched=response.matched,
            errors=",".join(str(e.code) for e in status.errors),
        )
        return True
