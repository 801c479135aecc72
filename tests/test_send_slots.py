"""Meta's per-number rate limit across replicas: every worker of every gateway draws its send
slots from one budget per business number (GrantSendSlots), so two gateways with two workers each
never send faster than SEND_RATE_PER_SECOND from a number."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

from menuflow.v1 import flow_pb2_grpc
from tests.gateway_harness import (
    ACCESS_TOKEN,
    APP_SECRET,
    BUSINESS,
    VERIFY_TOKEN,
    message,
    post_webhook,
    seed_default_templates,
    wait_until,
    webhook,
)
from tests.graph_standin import Received, StandinServer
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[1]
RATE = 20  # sends per second per business number, for the whole deployment
BURST = RATE // 10  # after a quiet spell, a tenth of a second's worth may go at once
# Sends leave on their slots; scheduling delays on the way (event loops, sockets, a loaded box)
# may bunch a few of them: up to another tenth in a second.
JITTER = RATE // 10
OTHER_BUSINESS = "106540352249999"


@contextmanager
def gateway_processes(flowsvc_target: str, graph_url: str, folder: Path) -> Iterator[list[str]]:
    """Two `python -m gateway` with two workers each, started together; yields their base URLs."""
    ports = [free_port(), free_port()]
    processes = []
    for port in ports:
        env = os.environ | {
            "META_APP_SECRET": APP_SECRET,
            "META_VERIFY_TOKEN": VERIFY_TOKEN,
            "META_ACCESS_TOKEN": ACCESS_TOKEN,
            "FLOWSVC_TARGET": flowsvc_target,
            "GRAPH_API_URL": graph_url,
            "GATEWAY_PORT": str(port),
            "GATEWAY_WORKERS": "2",
            "SEND_RATE_PER_SECOND": str(RATE),
            "MARK_AS_READ": "0",
            "LOG_LEVEL": "WARNING",
        }
        with (folder / f"gateway-{port}.log").open("w") as out:
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "gateway"], cwd=ROOT, env=env, stdout=out, stderr=out
                )
            )
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        for url in urls:
            with httpx.Client(base_url=url, timeout=5) as client:
                wait_until(lambda: _ready(client), timeout=30, interval=0.1)
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)


def _ready(client: httpx.Client) -> bool:
    try:
        return client.get("/readyz").status_code == 200
    except httpx.TransportError:
        return False


def busiest_second(sends: list[Received]) -> int:
    """The most sends in any one-second window (sliding, from each send on)."""
    times = sorted(r.at for r in sends)
    return max(
        (sum(1 for t in times[i:] if t < start + 1.0) for i, start in enumerate(times)), default=0
    )


def test_two_gateways_with_two_workers_each_keep_one_numbers_rate(
    flowsvc_target: str, stub: flow_pb2_grpc.FlowServiceStub, tmp_path: Path
) -> None:
    seed_default_templates(stub)
    customers = [f"4917{n:08d}" for n in range(3 * RATE)]
    others = [f"4918{n:08d}" for n in range(RATE)]
    with (
        StandinServer() as graph,
        gateway_processes(flowsvc_target, graph.url, tmp_path) as urls,
        ExitStack() as stack,
    ):
        clients = [stack.enter_context(httpx.Client(base_url=url, timeout=10)) for url in urls]
        for n, customer in enumerate(customers):
            assert (
                post_webhook(clients[n % 2], webhook(message(customer, text="hi"))).status_code
                == 200
            )
        for n, customer in enumerate(others):
            document = webhook(message(customer, text="hi"), business=OTHER_BUSINESS)
            assert post_webhook(clients[n % 2], document).status_code == 200
        total = len(customers) + len(others)
        wait_until(lambda: len(graph.standin.accepted()) >= total, timeout=60, interval=0.1)
        sends = graph.standin.accepted()

    by_number = Counter(r.phone_number_id for r in sends)
    assert by_number == {BUSINESS: len(customers), OTHER_BUSINESS: len(others)}  # all delivered
    assert sorted(r.body["to"] for r in sends) == sorted(customers + others)  # each once
    busiest = busiest_second([r for r in sends if r.phone_number_id == BUSINESS])
    assert busiest <= RATE + BURST + JITTER  # two gateways x two workers at 20/s each: up to 80
