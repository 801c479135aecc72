"""Who follows the events through the faults: a WatchEvents stream of flow completions (resuming
after the last id it saw whenever its flowsvc dies, from the other replica while it is down) and
a webhook endpoint that both gateways deliver flow completions to (each POST's signature
checked). After each scenario every committed completion of its customers must have reached
both, none missing and none extra once deduped by event id; repeats are counted, not failed
(both are at least once)."""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass, field

import grpc
from sqlalchemy import Engine, text

from menuflow.v1 import flow_pb2, flow_pb2_grpc
from tests.event_receiver import Receiver, ReceiverServer

Key = tuple[str, str]
HOOK_SECRET = "chaos-hook-secret"
HOOK_NAME = "chaos"


@dataclass(frozen=True)
class Completion:
    """A flow completion as a follower got it: the event's id, the result's reference, whose."""

    id: int
    reference: str
    customer: Key


@dataclass
class StreamWatcher:
    """One WatchEvents stream of flow completions, kept open across flowsvc deaths."""

    targets: list[str]
    token: str
    seen: list[Completion] = field(default_factory=list)
    resumes: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    last_id: int = 0

    async def run(self) -> None:
        """Until cancelled: follow one replica; when the stream breaks, resume after the last id
        seen on the next replica."""
        metadata = (("authorization", f"Bearer {self.token}"),)
        wanted = flow_pb2.EventFilter(types=[flow_pb2.EVENT_TYPE_FLOW_COMPLETED])
        for target in itertools.cycle(self.targets):
            try:
                async with grpc.aio.insecure_channel(target) as channel:
                    stub = flow_pb2_grpc.FlowServiceStub(channel)
                    request = flow_pb2.WatchEventsRequest(after_id=self.last_id, filter=wanted)
                    async for response in stub.WatchEvents(request, metadata=metadata):
                        event = response.event
                        customer = event.customer
                        self.seen.append(
                            Completion(
                                event.id,
                                event.flow_completed.reference,
                                (customer.phone_number_id, customer.phone_number),
                            )
                        )
                        self.last_id = max(self.last_id, event.id)
            except grpc.aio.AioRpcError as error:
                name = error.code().name
                self.errors[name] = self.errors.get(name, 0) + 1
            self.resumes += 1
            await asyncio.sleep(0.2)


class HookEndpoint:
    """The webhook endpoint the gateways deliver flow completions to (EVENT_ENDPOINTS)."""

    def __init__(self) -> None:
        self.server = ReceiverServer(Receiver(secret=HOOK_SECRET))

    @property
    def config(self) -> str:
        return json.dumps(
            [
                {
                    "name": HOOK_NAME,
                    "url": self.server.url,
                    "secret_env": "CHAOS_HOOK_SECRET",
                    "types": ["flow_completed"],
                    "start": "oldest",
                }
            ]
        )

    @property
    def seen(self) -> list[Completion]:
        found = []
        for post in self.server.receiver.all_posts():
            if post.answered != 200:
                continue
            for event in post.events:
                customer = event.get("customer", {})
                found.append(
                    Completion(
                        int(event["id"]),
                        event.get("flowCompleted", {}).get("reference", ""),
                        (customer.get("phoneNumberId", ""), customer.get("phoneNumber", "")),
                    )
                )
        return found

    @property
    def bad_signatures(self) -> int:
        return sum(1 for post in self.server.receiver.all_posts() if not post.signed)


@dataclass
class Followed:
    """One follower's account of a scenario's flow completions."""

    missing: int = 0  # committed, never received
    extra: int = 0  # received (by id), never committed, or received with other contents
    repeats: int = 0  # received more than once (at least once allows it)
    received: int = 0  # distinct


def committed(engine: Engine, customers: set[Key]) -> tuple[dict[int, Completion], int]:
    """The flow completions committed for `customers` (by event id), and how many of their stored
    results have no completion event (an event log that misses a commit)."""
    with engine.connect() as connection:
        events = connection.execute(
            text(
                "SELECT id, payload->>'reference', phone_number_id, phone_number FROM events "
                "WHERE type = 'flow_completed'"
            )
        ).all()
        results = connection.execute(
            text("SELECT reference, phone_number_id, phone_number FROM flow_results")
        ).all()
    found = {
        row[0]: Completion(row[0], row[1], (row[2], row[3]))
        for row in events
        if (row[2], row[3]) in customers
    }
    references = {c.reference for c in found.values()}
    unlogged = sum(1 for r in results if (r[1], r[2]) in customers and r[0] not in references)
    return found, unlogged


def compare(
    expected: dict[int, Completion], seen: list[Completion], customers: set[Key]
) -> Followed:
    mine = [c for c in seen if c.customer in customers]
    distinct = {c.id: c for c in mine}
    return Followed(
        missing=sum(1 for i in expected if i not in distinct),
        extra=sum(1 for i, c in distinct.items() if expected.get(i) != c),
        repeats=len(mine) - len(distinct),
        received=len(distinct),
    )


def caught_up(expected: dict[int, Completion], *followers: list[Completion]) -> bool:
    return all(set(expected) <= {c.id for c in seen} for seen in followers)
