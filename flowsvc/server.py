"""flowsvc's gRPC server: FlowService, health, reflection, the sweeper, graceful shutdown."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import astuple
from typing import Any, TypeVar

import grpc
from google.rpc import error_details_pb2  # noqa: F401  (lets reflection describe error details)
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from sqlalchemy import Engine

from flowsvc.engine import EngineConfig
from flowsvc.metrics import Metrics, MetricsServer
from flowsvc.rpc.auth import TokenAuth
from flowsvc.rpc.binding import add_port
from flowsvc.rpc.metering import CallMetrics
from flowsvc.rpc.request_parsing import ParseRequests
from flowsvc.rpc.servicer import FlowServicer
from flowsvc.rpc.status import ErrorStatus
from flowsvc.service.calls import CallQueue
from flowsvc.service.catalog import TemplateCatalog
from flowsvc.service.conversations import Conversations
from flowsvc.service.deliveries import Deliveries
from flowsvc.service.event_delivery import EventDeliveries
from flowsvc.service.event_feed import EventFeed
from flowsvc.service.event_hub import EventHub
from flowsvc.service.handling import MessageHandling
from flowsvc.service.results import Results
from flowsvc.service.retention import Retention
from flowsvc.service.sandbox import Sandbox
from flowsvc.service.send_slots import SendSlots
from flowsvc.service.stats import FlowStatistics
from flowsvc.service.templates import Templates
from flowsvc.settings import Settings
from flowsvc.store.db import UNREACHABLE, check_schema, create_db_engine, create_sessionmaker
from menuflow.v1 import flow_pb2, flow_pb2_grpc

log = logging.getLogger("flowsvc")

TIMER_BATCH = 100  # due timers one pass of the timer sweep reads at once
T = TypeVar("T")
SERVICE_NAME = flow_pb2.DESCRIPTOR.services_by_name["FlowService"].full_name


class Server:
    """A started-or-startable flowsvc: the gRPC server plus what it owns.

    grpc.aio's server, on an event loop thread of its own: the servicer's methods, each a
    blocking database transaction, run on the thread pool (`worker_threads`), and the event
    streams on the loop. A stream on grpc's threaded server held a thread, and each response it
    wrote was two thread hand-offs: at 100 streams that cost more CPU than the messages they
    followed (README, Performance). The hop from loop to pool per call is small next to a call's
    transaction, and calls come in batches.
    """

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self.executor = ThreadPoolExecutor(settings.worker_threads, thread_name_prefix="flowsvc")
        self._loop = asyncio.new_event_loop()
        self._loop.set_default_executor(self.executor)
        self._loop_thread = threading.Thread(
            target=self._loop.run_forever, name="flowsvc-grpc", daemon=True
        )
        self._loop_thread.start()
        sessions = create_sessionmaker(engine)
        self.events = EventHub(
            sessions,
            max_watchers=settings.event_max_watchers,
            poll_seconds=settings.event_poll_seconds,
            batch_seconds=settings.event_batch_ms / 1000,
        )
        catalog = TemplateCatalog()
        self.conversations = Conversations(
            sessions,
            dedupe_retention=settings.dedupe_retention,
            expiry_notice=settings.expiry_notice,
        )
        self.retention = Retention(
            sessions, settings.retention, keep_events=settings.event_retention
        )
        self.health = health.aio.HealthServicer()
        self.metrics = Metrics(sessions)
        self.metrics_server: MetricsServer | None = None
        config = engine_config(settings)
        self.handling = MessageHandling(
            sessions,
            catalog,
            config,
            max_context_bytes=settings.max_context_bytes,
            expiry_notice=settings.expiry_notice,
            observe=self.metrics.message,
        )
        servicer = FlowServicer(
            Templates(sessions, on_change=catalog.invalidate, config=config),
            self.handling,
            self.conversations,
            Results(sessions),
            Deliveries(sessions, maybe_sent_grace=settings.maybe_sent_grace),
            self.retention,
            SendSlots(sessions),
            EventFeed(sessions, self.events),
            EventDeliveries(sessions, self.events),
            Sandbox(sessions, catalog, engine_config(settings)),
            FlowStatistics(sessions),
            CallQueue(sessions),
        )
        self._stopping = threading.Event()
        self._sweeper = threading.Thread(target=self._sweep_periodically, name="flowsvc-sweeper")
        self._timers = threading.Thread(
            target=self._fire_timers_periodically, name="flowsvc-timers"
        )
        try:
            self.grpc, self.port = self._on_loop(self._bind(servicer))
        except BaseException:
            self._stop_loop()
            raise

    async def _bind(self, servicer: FlowServicer) -> tuple[grpc.aio.Server, int]:
        """The gRPC server with its services, bound to its port (created on the loop it runs on)."""
        settings = self.settings
        server = grpc.aio.server(
            migration_thread_pool=self.executor,
            # The token comes first: a caller without it learns nothing, not even a parse error.
            # Only the metrics see calls before it, so that refused calls are counted too.
            interceptors=[
                CallMetrics(self.metrics),
                *([TokenAuth(settings.role_tokens)] if settings.role_tokens else []),
                ParseRequests(),
                ErrorStatus(),
            ],
            options=[
                ("grpc.max_receive_message_length", settings.max_request_bytes),
                ("grpc.so_reuseport", 0),
            ],
        )
        flow_pb2_grpc.add_FlowServiceServicer_to_server(servicer, server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        return server, add_port(server, settings)

    def _on_loop(self, work: Coroutine[Any, Any, T]) -> T:
        """Run `work` on the server's event loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(work, self._loop).result()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._loop_thread.join()
        self._loop.close()

    def start(self) -> None:
        self.events.start()
        if self.settings.metrics_listen is not None:
            self.metrics_server = MetricsServer(self.metrics, self.settings.metrics_listen)
        self._on_loop(self.grpc.start())
        for name in ("", SERVICE_NAME):
            self._on_loop(self.health.set(name, health_pb2.HealthCheckResponse.SERVING))
        if self.settings.sweep_interval_seconds > 0:
            self._sweeper.start()
        if self.settings.timer_interval_seconds > 0:
            self._timers.start()
        settings = self.settings
        if not (settings.listens_privately or settings.authenticates_callers):
            log.warning(
                "FLOWSVC_ALLOW_UNAUTHENTICATED is set: anyone who can reach "
                f"{settings.listen} can read and change every template and conversation; "
                "set FLOWSVC_TOKEN unless a network policy keeps everyone else out",
                extra={"listen": settings.listen},
            )
        log.info(
            "flowsvc serving",
            extra={
                "listen": settings.listen,
                "port": self.port,
                "tls": bool(settings.tls_cert),
                "client_certificates": bool(settings.tls_client_ca),
                "token": bool(settings.role_tokens),
                "roles": sorted({role for role, _ in settings.role_tokens}),
                "metrics_port": self.metrics_server.port if self.metrics_server else None,
            },
        )

    def stop(self) -> None:
        """Stop taking calls, let running ones finish within the grace period, release the DB."""
        self._on_loop(self.health.enter_graceful_shutdown())
        self._stopping.set()
        self.events.stop()  # ends the event streams: they would hold the grace period
        self._on_loop(self.grpc.stop(self.settings.grace_seconds))
        if self._sweeper.is_alive():
            self._sweeper.join()
        if self._timers.is_alive():
            self._timers.join()
        # The pool before the loop: a call still running hands its answer to the loop.
        self.executor.shutdown(wait=True)
        self._stop_loop()
        if self.metrics_server is not None:
            self.metrics_server.stop()
        self.engine.dispose()
        log.info("flowsvc stopped")

    def _fire_timers_periodically(self) -> None:
        """Fire the step timers that came due, every timer interval (a full batch: at once
        again). Every replica does: a timer fires once whichever claims it (store.timers)."""
        while not self._stopping.wait(self.settings.timer_interval_seconds):
            try:
                while self.handling.fire_timers(TIMER_BATCH) >= TIMER_BATCH:
                    if self._stopping.is_set():
                        break
            except UNREACHABLE as error:  # down for a while: every second, a line, no traceback
                log.warning(
                    "firing timers: database unreachable, retrying",
                    extra={"error": type(getattr(error, "orig", None) or error).__name__},
                )
            except Exception:
                log.exception("firing timers failed")

    def _sweep_periodically(self) -> None:
        """Delete expired conversations, old dedupe records, and results and finished outbox
        messages past retention, every sweep interval."""
        while not self._stopping.wait(self.settings.sweep_interval_seconds):
            try:
                self.handling.resume_idle()
                expired, old = self.conversations.sweep()
                purged = self.retention.sweep()
            except Exception:  # the database may be down for a while: try again next time
                log.exception("sweep failed")
                self.metrics.sweeps.labels("failed").inc()
                continue
            self.metrics.sweeps.labels("ok").inc()
            for kind, rows in (
                ("conversations", expired),
                ("processed", old),
                ("results", purged.results),
                ("outbox_messages", purged.outbox_messages),
                ("events", purged.events),
                ("calls", purged.calls),
            ):
                self.metrics.swept.labels(kind).inc(rows)
            if expired or old or any(astuple(purged)):
                log.info(
                    "swept",
                    extra={
                        "expired_conversations": expired,
                        "processed": old,
                        "results": purged.results,
                        "outbox_messages": purged.outbox_messages,
                        "events": purged.events,
                        "calls": purged.calls,
                    },
                )


def _create_when_the_database_answers(settings: Settings) -> Server | None:
    """A database that is down at start (a restart during an outage) is waited for, with backoff,
    rather than a reason to exit: nothing else would start flowsvc again. None: a stop signal
    came meanwhile."""
    delay = 0.5
    while True:
        try:
            return create_server(settings)
        except UNREACHABLE as error:
            log.warning(
                "database unreachable at start, retrying",
                extra={
                    "retry_in": delay,
                    "error": type(getattr(error, "orig", None) or error).__name__,
                },
            )
        if signal.sigtimedwait(STOP_SIGNALS, delay) is not None:
            return None
        delay = min(delay * 2, 10.0)


def engine_config(settings: Settings) -> EngineConfig:
    return EngineConfig(
        default_template=settings.default_template,
        expiry=settings.conversation_ttl,
        cancel_words=settings.cancel_words,
        menu_words=settings.menu_words,
        back_words=settings.back_words,
        handoff_idle=settings.handoff_idle,
        handoff_resume_text=settings.handoff_resume_text,
        handoff_leave_words=settings.handoff_leave_words,
        handoff_default_queue=settings.handoff_default_queue,
        text_sets=settings.text_sets,
        languages_by_country=settings.languages_by_country,
    )


def create_server(settings: Settings) -> Server:
    """A flowsvc for `settings`; refuses a database whose schema is behind the migrations, and
    TLS files it cannot read."""
    engine = create_db_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        prepared_statements=settings.db_prepared_statements,
    )
    try:
        check_schema(engine)
        return Server(settings, engine)
    except Exception:
        engine.dispose()
        raise


STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})


def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully.

    The stop signals are blocked before any thread starts (threads inherit the mask) and taken
    by the main thread with sigwait, so no handler runs in the middle of whatever a thread was
    doing: a handler that set a threading.Event deadlocked when a second signal came while the
    main thread, woken by the first, held that Event's lock (`make run` stopped by its process
    group gets two SIGTERMs a few milliseconds apart). Signals after the first stay pending.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    server = _create_when_the_database_answers(settings)
    if server is None:
        return
    server.start()
    signal.sigwait(STOP_SIGNALS)
    log.info("flowsvc stopping")
    server.stop()
