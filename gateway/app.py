"""The gateway app factory: routes, error mapping, and a lifespan owning connections and tasks."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypedDict

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway import webhook
from gateway.breaker import Breakers, State
from gateway.call_runner import CallRunner
from gateway.channel import Calls, call_metadata, open_channels
from gateway.event_delivery import EndpointDelivery, EventDelivery
from gateway.inbox import Inbox
from gateway.lanes import Lanes
from gateway.metrics import Metrics
from gateway.pump import OutboxPump
from gateway.receipts import Receipts
from gateway.send_slots import SharedRateLimiter
from gateway.sender import GraphSender
from gateway.settings import Settings
from gateway.transport import Transport
from menuflow.logs import log
from menuflow.v1 import flow_pb2_grpc

logger = logging.getLogger("gateway.app")


class AppState(TypedDict):
    """What every request sees as request.state."""

    settings: Settings
    metrics: Metrics
    health: health_pb2_grpc.HealthStub
    calls: Calls
    inbox: Inbox
    lanes: Lanes
    breakers: Breakers


async def healthz(request: Request) -> Response:
    return PlainTextResponse("OK")


async def readyz(request: Request) -> Response:
    """Ready when FlowService answers its health check with SERVING.

    An outage of the Graph API keeps the gateway ready (200): it still records every webhook, and
    taking it out of rotation would lose those, not bring Meta back. The body says so instead:
    each business number whose breaker is not closed, and the oldest reply held unsent.
    """
    calls: Calls = request.state.calls
    reply = await request.state.health.Check(
        health_pb2.HealthCheckRequest(service=""), timeout=2.0, metadata=calls.metadata
    )
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        return PlainTextResponse("FlowService not serving", status_code=503)
    breakers: Breakers = request.state.breakers
    failing = {
        number: state.name.lower()
        for number, state in breakers.states().items()
        if state is not State.CLOSED
    }
    lanes: Lanes = request.state.lanes
    return JSONResponse(
        {
            "status": "graph_api_failing" if failing else "ok",
            "flowsvc": "serving",
            "breakers": failing,
            "oldest_waiting_seconds": round(lanes.oldest_waiting(), 1),
        }
    )


async def metrics(request: Request) -> Response:
    request.state.lanes.observe()
    registry = request.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


_CLOSING = (408, 413, 431)


async def _rejected(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, webhook.Rejected)
    request.state.metrics.webhooks.labels(result=exc.result).inc()
    log(logger, logging.WARNING, "webhook.rejected", status=exc.status_code, result=exc.result)
    # A body refused unread (413) or half read (408) must not be parsed as the next request.
    close = {"connection": "close"} if exc.status_code in _CLOSING else None
    return PlainTextResponse(exc.detail, status_code=exc.status_code, headers=close)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return PlainTextResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)


async def _flowsvc_error(request: Request, exc: Exception) -> Response:
    # FlowService unreachable or failing: 503, so Meta (or a load balancer) tries again later.
    assert isinstance(exc, grpc.aio.AioRpcError)
    log(logger, logging.WARNING, "flowsvc.error", path=request.url.path, code=exc.code().name)
    return PlainTextResponse("FlowService unavailable", status_code=503)


async def _disconnected(request: Request, exc: Exception) -> Response:
    # The sender hung up mid-body: nobody reads this answer, and nothing was processed.
    log(logger, logging.INFO, "webhook.client_gone", path=request.url.path)
    return PlainTextResponse("Client disconnected", status_code=400)


def _breaker_changed(metrics: Metrics, number: str, was: State | None, state: State) -> None:
    metrics.breaker_state.labels(phone_number_id=number).set(int(state))
    if state is State.OPEN and was is State.CLOSED:
        log(logger, logging.WARNING, "breaker.open", phone_number_id=number)
    elif state is State.CLOSED and was is not None:
        log(logger, logging.WARNING, "breaker.closed", phone_number_id=number)


# Error -> answer, looked up along the error's class hierarchy (a Rejected is an HTTPException).
_ERRORS: dict[type[Exception], Callable[[Request, Exception], Awaitable[Response]]] = {
    webhook.Rejected: _rejected,
    HTTPException: _http_error,
    grpc.aio.AioRpcError: _flowsvc_error,
    ClientDisconnect: _disconnected,
}
_CAUGHT = tuple(_ERRORS)


class Gateway:
    """The gateway's ASGI app: Starlette, except that `fast`, a POST route among Starlette's
    routes, is served here, before Starlette's middleware and router.

    The webhook POST is the one path under load, and every await in it resumes through each layer
    around it. Its errors are answered by the same handlers either way.
    """

    def __init__(self, app: Starlette, *, fast: Route) -> None:
        self.app = app
        self._path = fast.path
        self._endpoint: Callable[[Request], Awaitable[Response]] = fast.endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == self._path:
            request = Request(scope, receive)
            try:
                response = await self._endpoint(request)
            except _CAUGHT as exc:
                handler = next(_ERRORS[c] for c in type(exc).__mro__ if c in _ERRORS)
                response = await handler(request, exc)
            await response(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def create_app(settings: Settings, *, transport: Transport | None = None) -> ASGIApp:
    """A gateway; `transport` replaces the outside world (the Graph API) in tests."""
    app_metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[AppState]:
        if settings.dev_mode:
            # On loopback (as `make run` starts it) dev mode is the plan, not a hazard: said at
            # info, so that a first start shows no warning; reachable from elsewhere, it warns.
            log(
                logger,
                logging.INFO if settings.listens_privately else logging.WARNING,
                "DEV_MODE",
                warning="accepting UNSIGNED webhooks and PRINTING outbound messages instead of "
                "sending them; never expose this gateway to the internet",
                signed=bool(settings.app_secret),
                real_graph_api=transport is not None,
            )
        channels = open_channels(settings)
        sender = GraphSender(settings, transport)
        calls = Calls(
            stubs=tuple(flow_pb2_grpc.FlowServiceStub(channel) for channel in channels),
            owner=settings.gateway_id,
            metadata=call_metadata(settings),
            timeout=settings.flowsvc_timeout_seconds,
        )
        # Graph API requests in flight and the per-number rate: replies and receipts share both.
        slots = asyncio.Semaphore(settings.send_concurrency)
        limiter = SharedRateLimiter(calls, settings.send_rate_per_second)
        breakers = Breakers(
            threshold=settings.breaker_failures,
            cooldown=settings.breaker_cooldown_seconds,
            cooldown_max=settings.breaker_cooldown_max_seconds,
            on_change=lambda number, was, state: _breaker_changed(app_metrics, number, was, state),
        )
        lanes = Lanes(
            calls=calls,
            sender=sender,
            limiter=limiter,
            slots=slots,
            metrics=app_metrics,
            breakers=breakers,
            send_deadline=settings.send_deadline_seconds,
            lease_seconds=settings.outbox_lease_seconds,
            send_budget=settings.send_budget_seconds,
        )
        receipts = Receipts(
            sender=sender, slots=slots, limiter=limiter, metrics=app_metrics, breakers=breakers
        )
        pump = OutboxPump(
            calls=calls,
            lanes=lanes,
            metrics=app_metrics,
            poll_seconds=settings.outbox_poll_seconds,
            lease_seconds=settings.outbox_lease_seconds,
            claim_max=settings.outbox_claim_max,
        )
        inbox = Inbox(
            calls=calls,
            lanes=lanes,
            receipts=receipts,
            metrics=app_metrics,
            concurrency=settings.concurrency,
            batch_size=settings.batch_size,
            batch_max_bytes=settings.batch_max_bytes,
            lease_seconds=settings.outbox_lease_seconds,
            send_budget=settings.send_budget_seconds,
            mark_as_read=settings.mark_as_read,
            on_held_elsewhere=pump.hurry,
        )
        pump_task = asyncio.create_task(pump.run(), name="outbox-pump")
        # Calls to the business's HTTP APIs: their own client (other hosts and timeouts).
        calls_http = httpx.AsyncClient(follow_redirects=False)
        call_runner = CallRunner(
            calls=calls,
            endpoints={endpoint.name: endpoint for endpoint in settings.call_endpoints},
            http=calls_http,
            lanes=lanes,
            poll_seconds=settings.call_poll_seconds,
            lease_seconds=settings.call_lease_seconds,
            reply_lease_seconds=settings.outbox_lease_seconds,
            send_budget=settings.send_budget_seconds,
            concurrency=settings.call_concurrency,
            on_held_elsewhere=pump.hurry,
            metrics=app_metrics,
        )
        calls_task = asyncio.create_task(call_runner.run(), name="call-runner")
        # Event webhooks: their own HTTP client (other hosts, other timeouts than Meta's).
        hooks_http = httpx.AsyncClient(
            timeout=settings.event_timeout_seconds, follow_redirects=False
        )
        hooks = EventDelivery(
            [
                EndpointDelivery(
                    endpoint,
                    calls=calls,
                    http=hooks_http,
                    metrics=app_metrics,
                    lease_seconds=settings.event_lease_seconds,
                    wait_seconds=settings.event_wait_seconds,
                    retry_min=settings.event_retry_min_seconds,
                    retry_max=settings.event_retry_max_seconds,
                )
                for endpoint in settings.event_endpoints
            ]
        )
        hooks.start()
        log(
            logger,
            logging.INFO,
            "gateway.started",
            id=settings.gateway_id,
            flowsvc=settings.flowsvc_target,
        )
        try:
            yield AppState(
                settings=settings,
                metrics=app_metrics,
                health=health_pb2_grpc.HealthStub(channels[0]),
                calls=calls,
                inbox=inbox,
                lanes=lanes,
                breakers=breakers,
            )
        finally:
            # uvicorn has stopped accepting and finished in-flight requests before this runs.
            pump.stop()
            await pump_task
            call_runner.stop()
            await calls_task
            await calls_http.aclose()
            await hooks.stop()
            await hooks_http.aclose()
            receipts.stop()  # none starts while the lanes close; those waiting may still send
            await lanes.close(settings.shutdown_grace_seconds)
            await receipts.close()
            await limiter.close()
            await sender.aclose()
            for channel in channels:
                await channel.close()
            log(logger, logging.INFO, "gateway.stopped", id=settings.gateway_id)

    # Gateway serves the POST itself, past Starlette's layers. The GET comes first: a request of
    # another method gets the first route's 405, which allows GET.
    notifications = Route("/webhook", webhook.receive, methods=["POST"])
    routes = [
        Route("/webhook", webhook.verify, methods=["GET"]),
        notifications,
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=dict(_ERRORS))
    return Gateway(app, fast=notifications)
