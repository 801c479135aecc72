"""Runs the calls call steps queue: claims them from FlowService with a lease (ClaimCalls), sends
each to its endpoint (CALL_ENDPOINTS) outside any database transaction, and hands the result back
(FinishCall), which continues the customer's flow once; the replies it queues go to the lanes.

A call is sent again only to an endpoint marked idempotent: after a refused or reset connection
or a 5xx (up to its `retries`), and when an earlier claim's result never came back (the gateway
died, or FlowService was unreachable). A call to any other endpoint is sent at most once: a
claim that finds it was claimed before (attempts > 1; that claimer may have sent it) does not
send it, and hands back a failure, so the customer hears the failure path rather than waiting.
A timeout is never retried: the customer waited for it already.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping

import grpc
import httpx

from gateway.call_endpoints import CallEndpoint
from gateway.channel import Calls
from gateway.lanes import Lanes
from gateway.leases import leased_replies
from gateway.metrics import Metrics
from menuflow.logs import log
from menuflow.v1 import flow_pb2

logger = logging.getLogger("gateway.calls")

MAX_RESPONSE_BYTES = 256 * 1024  # more is not read: a response that large is no call's answer
FINISH_TRIES = 5
ANSWERED = flow_pb2.CALL_RESULT_KIND_ANSWERED
FAILED = flow_pb2.CALL_RESULT_KIND_FAILED
TIMEOUT = flow_pb2.CALL_RESULT_KIND_TIMEOUT


class CallRunner:
    """A loop: claim calls, run each (at most `concurrency` at once), wait `poll_seconds`."""

    def __init__(
        self,
        *,
        calls: Calls,
        endpoints: Mapping[str, CallEndpoint],
        http: httpx.AsyncClient,
        lanes: Lanes,
        poll_seconds: float,
        lease_seconds: int,
        reply_lease_seconds: int,
        send_budget: float,
        concurrency: int,
        on_held_elsewhere: Callable[[], None] = lambda: None,
        metrics: Metrics | None = None,
    ) -> None:
        self._calls = calls
        self._endpoints = endpoints
        self._http = http
        self._lanes = lanes
        self._poll = poll_seconds
        self._lease = lease_seconds
        self._reply_lease = reply_lease_seconds
        self._budget = send_budget
        self._room = asyncio.Semaphore(concurrency)
        self._concurrency = concurrency
        self._running: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()
        self._held_elsewhere = on_held_elsewhere
        self._metrics = metrics

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            wait = self._poll
            free = self._concurrency - len(self._running)
            if free > 0:
                try:
                    claimed = await self._claim(free)
                    failures = 0
                    wait = 0.0 if claimed >= free else wait
                except grpc.aio.AioRpcError as exc:
                    failures += 1
                    wait = min(30.0, self._poll * 2 ** min(failures, 5))
                    log(logger, logging.WARNING, "calls.claim_error", code=exc.code().name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=wait or 0.001)
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    async def _claim(self, room: int) -> int:
        response = await self._calls.flow.ClaimCalls(
            flow_pb2.ClaimCallsRequest(
                owner=self._calls.owner, max_calls=room, lease_seconds=self._lease
            ),
            timeout=self._calls.timeout,
            metadata=self._calls.metadata,
        )
        for call in response.calls:
            task = asyncio.create_task(self._run_one(call), name=f"call-{call.id}")
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        return len(response.calls)

    async def _run_one(self, call: flow_pb2.QueuedCall) -> None:
        async with self._room:
            endpoint = self._endpoints.get(call.endpoint)
            if endpoint is None:
                result = _failed(f"no endpoint {call.endpoint!r} in CALL_ENDPOINTS")
            elif call.attempts > 1 and not endpoint.idempotent:
                result = _failed("not sent again: the endpoint is not idempotent")
            else:
                result = await self._send(endpoint, call)
            log(
                logger,
                logging.INFO,
                "calls.done",
                call=call.id,
                endpoint=call.endpoint,
                kind=flow_pb2.CallResultKind.Name(result.kind),
                status=result.status_code,
                attempts=call.attempts,
            )
            if self._metrics is not None:
                kind = flow_pb2.CallResultKind.Name(result.kind).removeprefix("CALL_RESULT_KIND_")
                self._metrics.calls.labels(call.endpoint, kind.lower()).inc()
            await self._finish(call, result)

    async def _send(
        self, endpoint: CallEndpoint, call: flow_pb2.QueuedCall
    ) -> flow_pb2.FinishCallRequest:
        tries = 1 + (endpoint.retries if endpoint.idempotent else 0)
        result = _failed("not sent")
        for attempt in range(tries):
            if attempt:
                await asyncio.sleep(min(0.2 * 2**attempt, 2.0))
            started = time.monotonic()
            result = await self._request(endpoint, call)
            self._measured(call.endpoint, result, time.monotonic() - started)
            retry = result.kind == FAILED or (result.kind == ANSWERED and result.status_code >= 500)
            if not retry:
                break
        return result

    def _measured(self, endpoint: str, result: flow_pb2.FinishCallRequest, took: float) -> None:
        if self._metrics is None:
            return
        if result.kind == ANSWERED:
            outcome = f"{result.status_code // 100}xx"
        else:
            outcome = "timeout" if result.kind == TIMEOUT else "error"
        self._metrics.call_requests.labels(endpoint, outcome).inc()
        self._metrics.call_seconds.labels(endpoint).observe(took)

    async def _request(
        self, endpoint: CallEndpoint, call: flow_pb2.QueuedCall
    ) -> flow_pb2.FinishCallRequest:
        headers = dict(endpoint.headers)
        if call.body_json:
            headers["Content-Type"] = "application/json"
        try:
            async with self._http.stream(
                call.method,
                endpoint.url_for(call.path),
                content=call.body_json.encode() if call.body_json else None,
                headers=headers,
                timeout=httpx.Timeout(call.timeout_seconds),
            ) as response:
                body = b""
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_RESPONSE_BYTES:
                        break
        except httpx.TimeoutException:
            return flow_pb2.FinishCallRequest(
                kind=TIMEOUT, detail=f"no answer within {call.timeout_seconds:g} s"
            )
        except httpx.HTTPError as error:
            return _failed(type(error).__name__)
        return flow_pb2.FinishCallRequest(
            kind=ANSWERED,
            status_code=response.status_code,
            body=body[:MAX_RESPONSE_BYTES].decode("utf-8", errors="replace"),
        )

    async def _finish(self, call: flow_pb2.QueuedCall, result: flow_pb2.FinishCallRequest) -> None:
        """Hand the result back, retried a while; if FlowService stays unreachable the lease
        ends and the call is claimed again (sent again only to an idempotent endpoint)."""
        result.call_id = call.id
        result.lease_owner = self._calls.owner
        result.lease_seconds = self._reply_lease
        for attempt in range(FINISH_TRIES):
            requested_at = time.monotonic()
            try:
                response = await self._calls.flow.FinishCall(
                    result, timeout=self._calls.timeout, metadata=self._calls.metadata
                )
            except grpc.aio.AioRpcError as exc:
                retriable = exc.code() in (
                    grpc.StatusCode.UNAVAILABLE,
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    grpc.StatusCode.ABORTED,
                )
                log(
                    logger,
                    logging.WARNING,
                    "calls.finish_error",
                    call=call.id,
                    code=exc.code().name,
                )
                if not retriable or attempt == FINISH_TRIES - 1:
                    return
                await asyncio.sleep(min(0.5 * 2**attempt, 5.0))
                continue
            leased = leased_replies(
                response.messages,
                response.duplicate,
                self._calls.owner,
                requested_at,
                self._reply_lease,
                self._budget,
            )
            self._lanes.submit(leased)
            if not response.duplicate and len(leased) < len(response.messages):
                # Behind a message another sender holds (the "one moment"): the pump claims them.
                self._held_elsewhere()
            return


def _failed(detail: str) -> flow_pb2.FinishCallRequest:
    return flow_pb2.FinishCallRequest(kind=FAILED, detail=detail)
