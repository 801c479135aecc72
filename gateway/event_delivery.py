"""Delivering menuflow's events to webhook endpoints: one loop per endpoint, at least once, in
event id order (so in order per customer), signed.

Each loop claims its endpoint from FlowService with a lease (one gateway at a time delivers an
endpoint, whichever replica gets it), POSTs the batch of events after the endpoint's durable
cursor, and acks only after a 2xx, which moves the cursor. 5xx, 408, 429, timeouts and
connection errors are retried with capped exponential backoff and jitter, renewing the lease;
another 4xx, or an event still failing past the endpoint's deadline (from its commit), is given
up on: the batch is recorded as dead letters with the ack, counted in /metrics, and delivery
goes on. A gateway that dies mid-batch leaves the cursor as it was, and whoever takes the lease
next posts the batch again: receivers dedupe by event id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Sequence

import grpc
import httpx
from google.protobuf import json_format

from gateway.channel import Calls
from gateway.event_endpoints import Endpoint
from gateway.event_signature import HEADER, sign
from gateway.metrics import Metrics
from menuflow.logs import log
from menuflow.v1 import flow_pb2

logger = logging.getLogger("gateway.events")

_RETRIED = frozenset({408, 429})


class EndpointDelivery:
    """The loop delivering one endpoint's events."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        calls: Calls,
        http: httpx.AsyncClient,
        metrics: Metrics,
        lease_seconds: int,
        wait_seconds: float,
        retry_min: float,
        retry_max: float,
    ) -> None:
        self.endpoint = endpoint
        self._calls = calls
        self._http = http
        self._metrics = metrics
        self._lease = lease_seconds
        self._wait = wait_seconds
        self._retry_min = retry_min
        self._retry_max = retry_max
        self._cursor: int | None = None  # where our lease's cursor stands, while we hold it
        self._filter = flow_pb2.EventFilter(
            types=[flow_pb2.EventType.Value(f"EVENT_TYPE_{t.upper()}") for t in endpoint.types]
        )

    async def run(self) -> None:
        """Until cancelled."""
        failures = 0
        while True:
            try:
                claim = await self._claim(renew_only=False)
            except grpc.aio.AioRpcError as exc:
                failures += 1
                wait = min(self._retry_max, self._retry_min * 2 ** min(failures, 10))
                self._log_rpc_error("events.claim_error", exc, failures, wait)
                await asyncio.sleep(wait)
                continue
            failures = 0
            self._cursor = claim.cursor if claim.leased else None
            if not claim.leased:
                # Another gateway delivers it; try again in case that one dies (its lease ends).
                await asyncio.sleep(min(self._wait, self._lease / 3) or 0.1)
                continue
            self._metrics.event_cursor.labels(endpoint=self.endpoint.name).set(claim.cursor)
            if not claim.events:
                if not self._wait:
                    await asyncio.sleep(0.1)
                continue
            letters = await self._deliver(claim.events)
            if letters is not None:  # None: the lease went to another gateway mid-batch
                await self._ack(claim, letters)

    async def _claim(self, *, renew_only: bool) -> flow_pb2.ClaimEventDeliveryResponse:
        response: flow_pb2.ClaimEventDeliveryResponse = await self._calls.flow.ClaimEventDelivery(
            flow_pb2.ClaimEventDeliveryRequest(
                endpoint=self.endpoint.name,
                owner=self._calls.owner,
                lease_seconds=self._lease,
                max_events=self.endpoint.batch_max,
                wait_ms=0 if renew_only else round(self._wait * 1000),
                filter=self._filter,
                start=flow_pb2.DELIVERY_START_OLDEST
                if self.endpoint.from_oldest
                else flow_pb2.DELIVERY_START_UNSPECIFIED,
                renew_only=renew_only,
            ),
            timeout=self._calls.timeout + self._wait,
            metadata=self._calls.metadata,
        )
        return response

    async def _deliver(self, batch: Sequence[flow_pb2.Event]) -> list[flow_pb2.DeadLetter] | None:
        """POST `batch` until a 2xx ([]), a permanent refusal or the deadline (its dead
        letters), or the lease is lost (None)."""
        name = self.endpoint.name
        body = json.dumps(
            {"endpoint": name, "events": [json_format.MessageToDict(e) for e in batch]},
            separators=(",", ":"),
        ).encode()
        oldest = batch[0].create_time.seconds + batch[0].create_time.nanos / 1e9
        deadline = oldest + self.endpoint.deadline_seconds
        attempt = 0
        while True:
            status, problem, retry_after = await self._post(body)
            if 200 <= status < 300:
                self._metrics.event_posts.labels(endpoint=name, result="ok").inc()
                self._metrics.events_delivered.labels(endpoint=name).inc(len(batch))
                now = time.time()
                for event in batch:
                    commit = event.create_time.seconds + event.create_time.nanos / 1e9
                    self._metrics.event_lag_seconds.observe(max(0.0, now - commit))
                return []
            permanent = 400 <= status < 500 and status not in _RETRIED
            backoff = min(self._retry_max, self._retry_min * 2**attempt)
            delay = max(retry_after or 0.0, backoff * random.uniform(0.5, 1.0))
            if permanent or time.time() + delay > deadline:
                reason = problem if permanent else f"deadline passed; last: {problem}"
                self._metrics.event_posts.labels(endpoint=name, result="dead").inc()
                self._metrics.events_dead_lettered.labels(endpoint=name).inc(len(batch))
                log(
                    logger,
                    logging.ERROR,
                    "events.dead_lettered",
                    endpoint=name,
                    first_id=batch[0].id,
                    last_id=batch[-1].id,
                    reason=reason,
                )
                return [
                    flow_pb2.DeadLetter(event_id=e.id, reason=reason, http_status=status)
                    for e in batch
                ]
            self._metrics.event_posts.labels(endpoint=name, result="retry").inc()
            log(
                logger,
                logging.WARNING,
                "events.retry",
                endpoint=name,
                first_id=batch[0].id,
                problem=problem,
                attempt=attempt + 1,
                retry_in=round(delay, 2),
            )
            await asyncio.sleep(delay)
            attempt += 1
            try:
                renewed = await self._claim(renew_only=True)
            except grpc.aio.AioRpcError as exc:
                self._log_rpc_error("events.renew_error", exc, attempt, 0.0)
                continue  # the lease may still hold; the ack will tell
            if not renewed.leased:
                log(logger, logging.WARNING, "events.lease_lost", endpoint=name)
                return None

    async def _post(self, body: bytes) -> tuple[int, str, float | None]:
        """(HTTP status or 0, what went wrong, Retry-After in seconds if given)."""
        headers = {
            "Content-Type": "application/json",
            HEADER: sign(self.endpoint.secret, int(time.time()), body),
            "X-Menuflow-Endpoint": self.endpoint.name,
        }
        try:
            response = await self._http.post(self.endpoint.url, content=body, headers=headers)
        except httpx.TimeoutException:
            return 0, "timeout", None
        except httpx.TransportError as exc:
            return 0, f"connection error ({type(exc).__name__})", None
        retry_after = None
        with contextlib.suppress(ValueError):
            retry_after = min(self._retry_max, float(response.headers.get("Retry-After", "")))
        return response.status_code, f"HTTP {response.status_code}", retry_after

    async def _ack(
        self, claim: flow_pb2.ClaimEventDeliveryResponse, letters: list[flow_pb2.DeadLetter]
    ) -> None:
        try:
            acked = await self._calls.flow.AckEventDelivery(
                flow_pb2.AckEventDeliveryRequest(
                    endpoint=self.endpoint.name,
                    owner=self._calls.owner,
                    from_id=claim.cursor,
                    through_id=claim.through_id,
                    dead_letters=letters,
                ),
                timeout=self._calls.timeout,
                metadata=self._calls.metadata,
            )
        except grpc.aio.AioRpcError as exc:
            # Not moved: the batch goes out again (at least once), by us or the lease's holder.
            self._log_rpc_error("events.ack_error", exc, 1, 0.0)
            return
        self._cursor = acked.cursor
        self._metrics.event_cursor.labels(endpoint=self.endpoint.name).set(acked.cursor)

    async def release(self) -> None:
        """Give the lease up (this gateway is stopping), so that another gateway delivers the
        endpoint at once instead of when the lease ends. A batch in flight is not acked."""
        if self._cursor is None:
            return
        with contextlib.suppress(grpc.aio.AioRpcError):
            try:
                await self._release(self._cursor)
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.ABORTED:
                    raise
                # An ack cut short by the stop may have moved the cursor: read it, try again.
                held = await self._claim(renew_only=True)
                if held.leased:
                    await self._release(held.cursor)

    async def _release(self, cursor: int) -> None:
        await self._calls.flow.AckEventDelivery(
            flow_pb2.AckEventDeliveryRequest(
                endpoint=self.endpoint.name,
                owner=self._calls.owner,
                from_id=cursor,
                through_id=cursor,
                release=True,
            ),
            timeout=self._calls.timeout,
            metadata=self._calls.metadata,
        )

    def _log_rpc_error(
        self, what: str, exc: grpc.aio.AioRpcError, failures: int, wait: float
    ) -> None:
        log(
            logger,
            logging.WARNING if failures < 3 else logging.ERROR,
            what,
            endpoint=self.endpoint.name,
            code=exc.code().name,
            failures=failures,
            retry_in=round(wait, 2),
        )


class EventDelivery:
    """Every configured endpoint's loop, as tasks of the gateway's lifespan."""

    def __init__(self, loops: Sequence[EndpointDelivery]) -> None:
        self._loops = loops
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(loop.run(), name=f"events-{loop.endpoint.name}")
            for loop in self._loops
        ]

    async def stop(self) -> None:
        """Stop at once and give the leases up: a batch in flight is not acked, and goes out
        again from another gateway (or this one, restarted)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.gather(*(loop.release() for loop in self._loops))
