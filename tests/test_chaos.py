"""The fault suite's own parts: its invariant checker sees every kind of delivery failure, and its
drop proxy never lets a dropped request reach the Graph API stand-in."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from chaos.invariants import Ambiguity, Findings, _lane
from chaos.proxy import DropProxy
from tests.graph_standin import StandinServer

NOBODY = Ambiguity(outbox_ids=set(), known_wa_ids=set(), gateway_kills=[])


def row(outbox_id: int, text: str, state: str = "sent", wa_id: str | None = None) -> tuple:
    body = json.dumps({"to": "491500000001", "type": "text", "text": {"body": text}})
    return (outbox_id, "1065", "491500000001", "wamid.in", body, state, wa_id, None)


def arrival(position: int, text: str, wa_id: str = "", at: float = 0.0) -> tuple[int, dict]:
    body = {"to": "491500000001", "type": "text", "text": {"body": text}}
    return position, {"body": body, "wa_message_id": wa_id or f"wamid.S{position}", "at": at}


def checked(rows: list[tuple], arrivals: list[tuple[int, dict]], **ambiguity: Any) -> Findings:
    found = Findings()
    _lane(
        found,
        rows,
        arrivals,
        Ambiguity(
            **({"outbox_ids": set(), "known_wa_ids": set(), "gateway_kills": []} | ambiguity)
        ),
    )
    return found


def test_a_clean_lane_has_no_findings() -> None:
    found = checked([row(1, "a"), row(2, "b")], [arrival(0, "a"), arrival(1, "b")])
    assert (found.lost, found.sent_twice, found.out_of_order, found.phantom) == (0, 0, 0, 0)


@pytest.mark.parametrize(
    ("rows", "arrivals", "figure"),
    [
        ([row(1, "a"), row(2, "b", "pending")], [arrival(0, "a")], "lost"),
        ([row(1, "a")], [arrival(0, "a"), arrival(1, "a")], "sent_twice"),
        ([row(1, "a"), row(2, "b")], [arrival(0, "b"), arrival(1, "a")], "out_of_order"),
        ([row(1, "a")], [arrival(0, "a"), arrival(1, "z")], "phantom"),
    ],
    ids=["lost", "sent-twice", "out-of-order", "never-committed"],
)
def test_each_failure_is_counted(rows: list, arrivals: list, figure: str) -> None:
    assert getattr(checked(rows, arrivals), figure) == 1


def test_the_same_body_twice_on_purpose_is_not_a_duplicate() -> None:
    found = checked([row(1, "menu"), row(2, "menu")], [arrival(0, "menu"), arrival(1, "menu")])
    assert (found.lost, found.sent_twice, found.out_of_order) == (0, 0, 0)


def test_a_copy_accepted_just_before_its_gateway_was_killed_is_ambiguous() -> None:
    rows = [row(1, "a", wa_id="wamid.S1")]
    arrivals = [arrival(0, "a", "wamid.S0", at=100.0), arrival(1, "a", "wamid.S1", at=130.0)]
    found = checked(rows, arrivals, gateway_kills=[101.0])
    assert (found.sent_twice, found.ambiguous_twice) == (0, 1)
    assert checked(rows, arrivals, gateway_kills=[200.0]).sent_twice == 1


def test_a_dropped_request_never_reaches_the_standin() -> None:
    with StandinServer() as graph:
        proxy = DropProxy(graph.port).start()
        try:
            body = {
                "messaging_product": "whatsapp",
                "to": "491500000001",
                "type": "text",
                "text": {"body": "hello"},
            }
            headers = {"Authorization": "Bearer test-access-token"}
            url = f"http://127.0.0.1:{proxy.port}/v25.0/1065/messages"
            with httpx.Client(headers=headers) as client:
                assert client.post(url, json=body).status_code == 200
                proxy.dropping = True
                with pytest.raises(httpx.TransportError):
                    client.post(url, json=body)  # on the kept-alive connection
                with pytest.raises(httpx.TransportError), httpx.Client(headers=headers) as fresh:
                    fresh.post(url, json=body)
                proxy.dropping = False
                assert client.post(url, json=body).status_code == 200
        finally:
            proxy.stop()
        assert len(graph.standin.received()) == 2
        assert proxy.dropped == 2


def test_the_hook_endpoint_dedupes_by_event_id_and_counts_bad_signatures() -> None:
    from chaos.hook_endpoint import HookEndpoint
    from tests.event_receiver import Post

    customer = {"phoneNumberId": "1065", "phoneNumber": "491500000001"}

    def completion(event_id: int, reference: str) -> dict[str, Any]:
        return {
            "id": str(event_id),
            "customer": customer,
            "flowCompleted": {"reference": reference},
        }

    hook = HookEndpoint()
    with hook.server:
        hook.server.receiver.posts += [
            Post("chaos", [completion(1, "A"), completion(2, "B")], signed=True, answered=200),
            Post("chaos", [completion(2, "B")], signed=True, answered=200),  # again
            Post("chaos", [completion(3, "C")], signed=False, answered=0),  # never answered
        ]
        assert hook.references() == {("1065", "491500000001"): {"A", "B"}}
        assert len(hook.deliveries()) == 3
        assert hook.bad_signatures() == 1
