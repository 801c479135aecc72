"""Event watchers through the whole run: one WatchEvents stream per flowsvc (menuflow.client's
watch_events, which reconnects and resumes after the last id it saw), following flow
completions across SIGKILLs of flowsvc and PostgreSQL outages. After each scenario every
committed completion must have reached every watcher, none missing and none extra once deduped
by event id."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from menuflow.client import Connection, FlowClient, MenuflowError


@dataclass
class Watcher:
    """One stream's view: each flow_completed event it got, by id (and how often)."""

    target: str
    token: str
    seen: dict[int, tuple[str, str, str]] = field(default_factory=dict)  # id -> customer, ref
    deliveries: int = 0
    reconnects: int = 0
    _stopping: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        threading.Thread(target=self._run, name=f"watch-{self.target}", daemon=True).start()

    def stop(self) -> None:
        self._stopping.set()

    def references(self) -> dict[tuple[str, str], set[str]]:
        """The completions seen, as references by customer."""
        found: dict[tuple[str, str], set[str]] = {}
        with self._lock:
            for business, customer, reference in self.seen.values():
                found.setdefault((business, customer), set()).add(reference)
        return found

    def _run(self) -> None:
        last = 0
        connection = Connection(target=self.target, token=self.token, max_backoff=1.0)
        while not self._stopping.is_set():
            try:
                with FlowClient(connection) as client:
                    for event in client.watch_events(last, types=["flow_completed"]):
                        with self._lock:
                            self.deliveries += 1
                            self.seen[event.id] = (
                                event.customer.phone_number_id,
                                event.customer.phone_number,
                                event.flow_completed.reference,
                            )
                        last = event.id
                        if self._stopping.is_set():
                            return
            except MenuflowError:  # e.g. INTERNAL while PostgreSQL restarts: resume after last
                self.reconnects += 1
                time.sleep(0.5)
