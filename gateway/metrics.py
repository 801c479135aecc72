"""Prometheus metrics of one gateway app, in its own registry so that tests can build many apps."""

from __future__ import annotations

from typing import Any, Self

import prometheus_client
from prometheus_client import CollectorRegistry, disable_created_metrics

_FAST = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Calls wait up to a step's timeout, at most 30 s.
_CALLS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0)


class _Children:
    """`labels()` that finds each label set's child once: prometheus_client checks the names,
    converts the values and takes a lock on every call, several times what the `inc()` after it
    costs, and the gateway calls it a few times per message."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._children: dict[tuple[tuple[object, ...], tuple[tuple[str, object], ...]], Self] = {}

    def labels(self, *values: object, **named: object) -> Self:
        key = (values, tuple(named.items()))
        child = self._children.get(key)
        if child is None:
            made: Self = super().labels(*values, **named)  # type: ignore[misc]
            child = self._children[key] = made
        return child


class Counter(_Children, prometheus_client.Counter):
    pass


class Gauge(_Children, prometheus_client.Gauge):
    pass


class Histogram(_Children, prometheus_client.Histogram):
    pass


class Metrics:
    """Every metric the gateway exports; labels never carry phone numbers or text."""

    def __init__(self) -> None:
        # A `_created` series beside every counter and histogram is noise to every scraper.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.webhooks = Counter(
            "gateway_webhooks", "Webhook POSTs by result", ["result"], registry=r
        )
        self.webhook_items = Counter(
            "gateway_webhook_items", "Webhook items by kind and fate", ["kind", "fate"], registry=r
        )
        self.messages = Counter(
            "gateway_messages", "Inbound messages by FlowService outcome", ["outcome"], registry=r
        )
        self.statuses = Counter(
            "gateway_statuses",
            "Status webhooks by status and match",
            ["status", "matched"],
            registry=r,
        )
        self.sends = Counter(
            "gateway_sends",
            "Graph API sends by result and Meta error code",
            ["result", "code"],
            registry=r,
        )
        self.reads = Counter(
            "gateway_reads",
            "Read receipts by result: ok, error, covered (a later message's receipt marked it) "
            "or skipped (the number's Graph API breaker was open)",
            ["result"],
            registry=r,
        )
        self.outbox_pending = Gauge(
            "gateway_outbox_pending", "Outbox messages pending at the last claim", registry=r
        )
        self.lane_messages = Gauge(
            "gateway_lane_messages",
            "Leased messages waiting in this gateway's send lanes",
            registry=r,
        )
        self.waiting = Gauge(
            "gateway_send_waiting",
            "Messages this gateway holds that wait to be sent, by business number",
            ["phone_number_id"],
            registry=r,
        )
        self.oldest_waiting = Gauge(
            "gateway_send_oldest_waiting_seconds",
            "Age (since flowsvc queued it) of the oldest message this gateway holds unsent",
            ["phone_number_id"],
            registry=r,
        )
        self.retries = Counter(
            "gateway_send_retries",
            "Sends put back for a retry, by reason: Meta's code, http_<status>, network, ambiguous",
            ["reason"],
            registry=r,
        )
        self.breaker_state = Gauge(
            "gateway_breaker_state",
            "Circuit breaker per business number: 0 closed, 1 half-open (probing), 2 open",
            ["phone_number_id"],
            registry=r,
        )
        self.breaker_openings = Counter(
            "gateway_breaker_openings",
            "Times a business number's breaker opened after consecutive transient failures",
            ["phone_number_id"],
            registry=r,
        )
        self.webhook_seconds = Histogram(
            "gateway_webhook_seconds", "Time to answer a webhook POST", buckets=_FAST, registry=r
        )
        self.handle_seconds = Histogram(
            "gateway_handle_message_seconds",
            "HandleMessage call latency",
            buckets=_FAST,
            registry=r,
        )
        self.send_seconds = Histogram(
            "gateway_send_seconds", "Graph API send latency", buckets=_FAST, registry=r
        )
        self.queue_seconds = Histogram(
            "gateway_send_queue_seconds",
            "Time from lease to send attempt",
            buckets=_FAST,
            registry=r,
        )
        self.event_posts = Counter(
            "gateway_event_posts",
            "Event deliveries' POSTs by endpoint and result: ok, retry (5xx, 408, 429, timeout, "
            "connection error) or dead (a permanent 4xx, or retries past the deadline)",
            ["endpoint", "result"],
            registry=r,
        )
        self.events_delivered = Counter(
            "gateway_events_delivered",
            "Events an endpoint accepted (2xx), by endpoint",
            ["endpoint"],
            registry=r,
        )
        self.events_dead_lettered = Counter(
            "gateway_events_dead_lettered",
            "Events given up on (dead letters; ListDeadLetters lists them), by endpoint",
            ["endpoint"],
            registry=r,
        )
        self.event_cursor = Gauge(
            "gateway_event_cursor",
            "The last event id delivered or given up on, per endpoint this gateway delivers",
            ["endpoint"],
            registry=r,
        )
        self.event_lag_seconds = Histogram(
            "gateway_event_delivery_lag_seconds",
            "From an event's commit to its endpoint's 2xx",
            buckets=_FAST,
            registry=r,
        )
        self.call_requests = Counter(
            "gateway_call_requests",
            "HTTP requests of call steps sent, retries included, by endpoint and result: 2xx, "
            "3xx, 4xx, 5xx, timeout or error (refused, reset)",
            ["endpoint", "result"],
            registry=r,
        )
        self.calls = Counter(
            "gateway_calls",
            "Calls whose result went back to flowsvc, by endpoint and kind: answered (any "
            "status), failed (no answer, or not sent) or timeout",
            ["endpoint", "kind"],
            registry=r,
        )
        self.call_seconds = Histogram(
            "gateway_call_seconds",
            "Time from a call's request to its answer (or its timeout), by endpoint",
            ["endpoint"],
            buckets=_CALLS,
            registry=r,
        )
