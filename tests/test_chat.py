"""`make chat`: the terminal customer, driven through its stdin against a real flowsvc."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf import json_format

from flowsvc.server import Server
from flowsvc.settings import Settings
from menuflow.v1 import flow_pb2, flow_pb2_grpc
from tests.certificates import issue
from tests.database import row_counts
from tests.servers import free_port, running_flowsvc
from tests.test_built_menus import BOOKING_FILE, DOCTORS, slots
from tests.test_templates import struct

pytestmark = pytest.mark.usefixtures("seeded")

ORDER = "hi\n1\n1\n2\n1\n1\n/quit\n"  # New Order, Coffee, quantity 2, Pickup, Yes
TOKEN = "chat-test-token"


def chat(typed: str, *args: str, **environ: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWSVC_")}
    return subprocess.run(
        [sys.executable, "-m", "menuflow.chat", *args],
        input=typed,
        env=env | environ,
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_ordered(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, result.stderr
    assert "[1] 🛒 New Order" in result.stdout
    assert "[1] Coffee - $3.50" in result.stdout
    assert "2 x Coffee = $7.00" in result.stdout
    assert "Order placed! Your order number is" in result.stdout


def test_a_newcomer_orders_a_coffee_from_the_terminal_in_the_sandbox(
    flowsvc_target: str, database_url: str
) -> None:
    before = row_counts(database_url)

    result = chat(ORDER, "--target", flowsvc_target)

    assert_ordered(result)
    assert "(sandbox: nothing is sent or stored)" in result.stdout
    assert "(sandbox: a result" in result.stdout
    assert row_counts(database_url) == before


def test_live_chat_is_a_real_customer(flowsvc_target: str, database_url: str) -> None:
    result = chat(ORDER, "--target", flowsvc_target, "--live")

    assert_ordered(result)
    assert "(live)" in result.stdout
    counts = row_counts(database_url)
    assert counts["flow_results"] == 1 and counts["processed_messages"] == 6


def test_chat_tries_a_draft_that_customers_do_not_see(
    flowsvc_target: str, stub: flow_pb2_grpc.FlowServiceStub
) -> None:
    live = stub.GetTemplate(flow_pb2.GetTemplateRequest(name="new_order")).template
    menu = json_format.MessageToDict(live.menu_structure)
    menu["body"]["text"] = "Draft menu: what will it be?"
    definition = flow_pb2.TemplateDefinition(
        name="new_order", trigger_keywords=live.trigger_keywords
    )
    definition.menu_structure.update(menu)
    stub.UpdateTemplate(flow_pb2.UpdateTemplateRequest(template=definition, draft=True))

    tried = chat("1\n2\n1\n1\n/quit\n", "--target", flowsvc_target, "--template", "new_order")
    customer = chat("hi\n1\n/quit\n", "--target", flowsvc_target)

    assert tried.returncode == 0, tried.stderr
    assert tried.stdout.index("Draft menu: what will it be?") < tried.stdout.index(
        "2 x Coffee = $7.00"
    )
    assert "Order placed! Your order number is" in tried.stdout
    assert "What would you like to order?" in customer.stdout
    assert "Draft menu" not in customer.stdout


@pytest.fixture
def guarded(settings: Settings) -> Iterator[Server]:
    """flowsvc with a token, on a port that is not 50051."""
    with running_flowsvc(dataclasses.replace(settings, auth_token=TOKEN)) as server:
        assert server.port != 50051
        yield server


def test_chat_dials_flowsvc_target_with_flowsvc_token(guarded: Server) -> None:
    result = chat(ORDER, FLOWSVC_TARGET=f"127.0.0.1:{guarded.port}", FLOWSVC_TOKEN=TOKEN)

    assert_ordered(result)
    assert f"Chatting with 127.0.0.1:{guarded.port}" in result.stdout


def test_chat_finds_flowsvc_where_make_run_made_it_listen(guarded: Server) -> None:
    result = chat(ORDER, FLOWSVC_LISTEN=f"0.0.0.0:{guarded.port}", FLOWSVC_TOKEN=TOKEN)

    assert_ordered(result)


def test_a_wrong_token_is_said_once(guarded: Server) -> None:
    result = chat("hi\nhi\nhi\n", FLOWSVC_TARGET=f"127.0.0.1:{guarded.port}", FLOWSVC_TOKEN="no")

    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "chat: flowsvc refused the token: set FLOWSVC_TOKEN to the value flowsvc was started with"
    ]


def test_an_unreachable_flowsvc_is_said_once() -> None:
    target = f"127.0.0.1:{free_port()}"

    result = chat("hi\nhi\nhi\n", FLOWSVC_TARGET=target)

    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"chat: flowsvc is not reachable at {target}: start it with `make run`, or point "
        "FLOWSVC_TARGET at it (FLOWSVC_TLS_CA for TLS)"
    ]
    assert "bot>" not in result.stdout


def test_chat_over_mutual_tls_with_the_gateways_settings(
    settings: Settings, tmp_path: Path
) -> None:
    authority = issue(tmp_path, "chat")
    mtls = dataclasses.replace(
        settings,
        tls_cert=str(authority.server.cert),
        tls_key=str(authority.server.key),
        tls_client_ca=str(authority.ca.cert),
    )
    with running_flowsvc(mtls) as server:
        result = chat(
            ORDER,
            FLOWSVC_TARGET=f"localhost:{server.port}",
            FLOWSVC_TLS_CA=str(authority.ca.cert),
            FLOWSVC_TLS_CLIENT_CERT=str(authority.client.cert),
            FLOWSVC_TLS_CLIENT_KEY=str(authority.client.key),
        )

    assert_ordered(result)


def test_chat_starts_a_template_with_a_context_and_taps_a_menu_built_from_it(
    flowsvc_target: str, stub: flow_pb2_grpc.FlowServiceStub
) -> None:
    booking = json.loads(BOOKING_FILE.read_text(encoding="utf-8"))
    stub.ImportTemplates(
        flow_pb2.ImportTemplatesRequest(
            templates=[
                flow_pb2.TemplateDefinition(
                    name=booking["name"], menu_structure=struct(booking["menu_structure"])
                )
            ]
        )
    )
    context = json.dumps({"slots": slots(12), "doctors": DOCTORS})

    # "More" is row 10 of the first page; on the second, row 1 is "Previous", row 3 is Slot 11.
    result = chat(
        "10\n3\n2\n/quit\n",
        "--target",
        flowsvc_target,
        "--template",
        "booking_slots",
        "--context",
        context,
    )

    assert result.returncode == 0, result.stderr
    assert "[9] Slot 9 - 10:15" in result.stdout
    assert "[10] More ▸" in result.stdout
    assert "[1] ◂ Previous" in result.stdout
    assert "[2] Dr Bo" in result.stdout
    assert "Booked: Slot 11 at 10:45 with Dr Bo." in result.stdout


DELIVERY = "hi\n1\n2\n1\n2\n12 Harbour Road\n"  # New Order, Tea, 1, Delivery, the address


def test_the_sandbox_chat_asks_what_a_call_gave(flowsvc_target: str, database_url: str) -> None:
    before = row_counts(database_url)
    typed = DELIVERY + 'not json\n{"status": 200, "json": {"zone": "B"}}\n1\n/quit\n'

    result = chat(typed, "--target", flowsvc_target)

    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "One moment, I'm checking that we deliver to 12 Harbour Road" in out
    assert '(sandbox: the bot calls POST address_check/check {"address": "12 Harbour Road"})' in out
    assert "(not a call result:" in out  # asked again
    assert "Delivery to 12 Harbour Road (zone B)." in out
    assert "Order placed! Your order number is" in out
    assert row_counts(database_url) == before


def test_the_sandbox_chat_answers_every_call_with_call_result(flowsvc_target: str) -> None:
    typed = DELIVERY + "1\n/quit\n"  # 1: Pickup, offered when the check failed

    result = chat(typed, "--target", flowsvc_target, "--call-result", '{"timeout": true}')

    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert 'call> {"kind": "CALL_RESULT_KIND_TIMEOUT"}' in out
    assert "Sorry, I could not confirm delivery to that address." in out
    assert "2 x Tea" not in out and "1 x Tea = $2.50" in out
