"""The webhook endpoint both gateways deliver flow completions to (EVENT_ENDPOINTS) through every
scenario: one gateway at a time by lease, taken over when it is SIGKILLed, from the durable
cursor. Each POST's signature is checked; every committed completion must arrive, none missing
and none extra once deduped by event id (repeats are allowed: at least once)."""

from __future__ import annotations

import json

from tests.event_receiver import Receiver, ReceiverServer

Key = tuple[str, str]
SECRET = "chaos-hook-secret"


class HookEndpoint:
    def __init__(self) -> None:
        self.server = ReceiverServer(Receiver(secret=SECRET))

    def gateway_env(self) -> dict[str, str]:
        """What a gateway needs to deliver here: short leases, so a killed one is replaced soon."""
        endpoint = {
            "name": "chaos",
            "url": self.server.url,
            "secret_env": "CHAOS_HOOK_SECRET",
            "types": ["flow_completed"],
            "start": "oldest",
        }
        return {
            "EVENT_ENDPOINTS": json.dumps([endpoint]),
            "CHAOS_HOOK_SECRET": SECRET,
            "EVENT_LEASE_SECONDS": "5",
            "EVENT_TIMEOUT_SECONDS": "2",
            "EVENT_WAIT_SECONDS": "0.5",
            "EVENT_RETRY_MAX_SECONDS": "2",
        }

    def deliveries(self) -> list[tuple[int, Key, str]]:
        """(event id, customer, reference) of every completion answered 200, repeats kept."""
        found = []
        for post in self.server.receiver.all_posts():
            if post.answered != 200:
                continue
            for event in post.events:
                customer = event.get("customer", {})
                found.append(
                    (
                        int(event["id"]),
                        (customer.get("phoneNumberId", ""), customer.get("phoneNumber", "")),
                        event.get("flowCompleted", {}).get("reference", ""),
                    )
                )
        return found

    def references(self) -> dict[Key, set[str]]:
        """The completions received, as references by customer (deduped by event id)."""
        found: dict[Key, set[str]] = {}
        for _, key, reference in {d[0]: d for d in self.deliveries()}.values():
            found.setdefault(key, set()).add(reference)
        return found

    def bad_signatures(self) -> int:
        return sum(1 for post in self.server.receiver.all_posts() if not post.signed)
