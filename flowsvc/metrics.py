"""Prometheus metrics of one flowsvc, in its own registry, served on their own port.

Counters and histograms are updated where things happen (the call interceptor, message handling,
the sweeper); what the database holds (conversations, the outbox) is read when scraped. Labels
never carry phone numbers, texts or template content.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session, sessionmaker

from flowsvc.clock import Clock, utcnow
from flowsvc.store import calls, conversations, handoffs, outbox

log = logging.getLogger("flowsvc.metrics")

_FAST = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Every metric flowsvc exports."""

    def __init__(self, sessions: sessionmaker[Session] | None = None, clock: Clock = utcnow):
        # A `_created` series beside every counter and histogram is noise to every scraper.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.rpcs = Counter(
            "flowsvc_rpcs",
            "Unary calls answered, by method and status code",
            ["method", "code"],
            registry=r,
        )
        self.rpc_seconds = Histogram(
            "flowsvc_rpc_seconds",
            "Unary call latency, by method",
            ["method"],
            buckets=_FAST,
            registry=r,
        )
        self.messages = Counter(
            "flowsvc_messages",
            "Inbound messages handled (HandleMessage, HandleMessages), by outcome; "
            "'duplicate' for a redelivery, 'failed' for an error",
            ["outcome"],
            registry=r,
        )
        self.sweeps = Counter("flowsvc_sweeps", "Sweeper runs, by result", ["result"], registry=r)
        self.swept = Counter(
            "flowsvc_swept_rows", "Rows the sweeper deleted, by kind", ["kind"], registry=r
        )
        if sessions is not None:
            r.register(StoreCollector(sessions, clock))

    def message(self, outcome: str) -> None:
        self.messages.labels(outcome).inc()


class StoreCollector(Collector):
    """Gauges read from the database at scrape time: one short read-only transaction."""

    def __init__(self, sessions: sessionmaker[Session], clock: Clock) -> None:
        self._sessions = sessions
        self._clock = clock

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())  # read at scrape time only: describing must not touch the database

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = self._clock()
        try:
            with self._sessions() as session:
                active = conversations.count_active(session, now)
                pending, oldest = outbox.pending_depth(session)
                queues = handoffs.queues(session)
                calls_pending, oldest_call = calls.pending_depth(session)
        except Exception as error:  # a scrape during an outage shows the gap, not an error page
            log.warning("metrics: database unreadable", extra={"error": type(error).__name__})
            return
        yield GaugeMetricFamily(
            "flowsvc_conversations_active", "Conversations not yet expired", value=active
        )
        yield GaugeMetricFamily(
            "flowsvc_outbox_pending", "Outbox messages waiting to be sent", value=pending
        )
        age = (now - oldest).total_seconds() if oldest is not None else 0.0
        yield GaugeMetricFamily(
            "flowsvc_outbox_oldest_pending_seconds",
            "Age of the oldest outbox message waiting to be sent (0 when none is)",
            value=max(age, 0.0),
        )
        yield GaugeMetricFamily(
            "flowsvc_calls_pending",
            "Calls to the business's APIs queued or running (a conversation waits for each)",
            value=calls_pending,
        )
        call_age = (now - oldest_call).total_seconds() if oldest_call is not None else 0.0
        yield GaugeMetricFamily(
            "flowsvc_calls_oldest_pending_seconds",
            "Age of the oldest call whose result has not come back (0 when none is pending)",
            value=max(call_age, 0.0),
        )
        waiting = GaugeMetricFamily(
            "flowsvc_handoff_waiting",
            "Customers handed off to people, per queue",
            labels=["queue"],
        )
        longest = GaugeMetricFamily(
            "flowsvc_handoff_oldest_wait_seconds",
            "How long the longest-waiting handed-off customer of each queue has waited",
            labels=["queue"],
        )
        for queue, count, since in queues:
            waiting.add_metric([queue], count)
            longest.add_metric([queue], max((now - since).total_seconds(), 0.0))
        yield waiting
        yield longest


class MetricsServer:
    """The /metrics HTTP endpoint on its own address (FLOWSVC_METRICS_LISTEN)."""

    def __init__(self, metrics: Metrics, listen: str) -> None:
        host, _, port = listen.rpartition(":")
        self._server: WSGIServer
        self._thread: threading.Thread
        self._server, self._thread = start_http_server(
            int(port), addr=host.strip("[]") or "0.0.0.0", registry=metrics.registry
        )
        self.port = int(self._server.server_port)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
