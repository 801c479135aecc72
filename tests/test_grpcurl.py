"""The admin path: the real grpcurl binary against `python -m flowsvc`, by reflection only."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from menuflow.v1 import flow_pb2
from tests.servers import flowsvc_process

GRPCURL = shutil.which("grpcurl", path=str(Path(sys.executable).parent)) or "grpcurl"
SERVICE = "menuflow.v1.FlowService"
TEMPLATE = Path(__file__).parents[1] / "flowsvc" / "default_templates" / "support.json"
PAY_ORDER = Path(__file__).parent / "data" / "pay_order.json"
CUSTOMER = {"phone_number_id": "106540352242922", "phone_number": "15550123123"}


def grpcurl(address: str, *args: str, data: str | None = None) -> subprocess.CompletedProcess[str]:
    command = [GRPCURL, "-plaintext", "-max-time", "20"]
    if data is not None:
        command += ["-d", "@"]
    return subprocess.run(
        [*command, address, *args], input=data, capture_output=True, text=True, timeout=30
    )


@pytest.fixture
def address(database_url: str, tmp_path: Path) -> Iterator[str]:
    """`python -m flowsvc.seed`, then `python -m flowsvc` as its own process (as `make run`
    does); it must stop cleanly on SIGTERM."""
    env = {**os.environ, "DATABASE_URL": database_url}
    seeded = subprocess.run(
        [sys.executable, "-m", "flowsvc.seed"], env=env, capture_output=True, text=True
    )
    assert seeded.returncode == 0, seeded.stderr
    log = tmp_path / "flowsvc.log"
    with flowsvc_process(database_url, log) as process:
        yield process.address
    assert "flowsvc stopped" in log.read_text()


def test_health_check(address: str) -> None:
    result = grpcurl(address, "grpc.health.v1.Health/Check")
    assert json.loads(result.stdout) == {"status": "SERVING"}


def test_list_services_and_every_rpc(address: str) -> None:
    services = grpcurl(address, "list").stdout.split()
    methods = grpcurl(address, "list", SERVICE).stdout.split()

    assert {SERVICE, "grpc.health.v1.Health"} <= set(services)
    assert f"{SERVICE}.CreateTemplate" in methods
    assert f"{SERVICE}.HandleMessage" in methods
    assert f"{SERVICE}.UpdateConversation" in methods
    assert f"{SERVICE}.SendMessage" in methods
    assert f"{SERVICE}.HandOff" in methods and f"{SERVICE}.Resume" in methods
    assert f"{SERVICE}.WatchEvents" in methods
    assert f"{SERVICE}.RunSandbox" in methods
    declared = flow_pb2.DESCRIPTOR.services_by_name["FlowService"].methods
    assert sorted(methods) == sorted(f"{SERVICE}.{m.name}" for m in declared)


def test_describe_a_message(address: str) -> None:
    result = grpcurl(address, "describe", "menuflow.v1.TemplateDefinition")
    assert result.returncode == 0, result.stderr
    assert "google.protobuf.Struct menu_structure" in result.stdout


def test_create_a_template_from_a_json_file_then_validate_list_versions_delete(
    address: str,
) -> None:
    template = json.loads(TEMPLATE.read_text())
    template["name"] = "support_copy"
    template["trigger_keywords"] = ["help me please"]
    request = json.dumps({"template": template})

    created = grpcurl(address, f"{SERVICE}/CreateTemplate", data=request)
    validated = grpcurl(address, f"{SERVICE}/ValidateTemplate", data=request)
    versions = grpcurl(address, f"{SERVICE}/ListTemplateVersions", data='{"name": "support_copy"}')
    deleted = grpcurl(address, f"{SERVICE}/DeleteTemplate", data='{"name": "support_copy"}')

    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["template"]["version"] == 1
    assert validated.returncode == 0, validated.stderr
    assert json.loads(validated.stdout)["type"].startswith("TEMPLATE_TYPE_")
    assert [v["version"] for v in json.loads(versions.stdout)["versions"]] == [1]
    assert json.loads(deleted.stdout)["deleted_versions"] == 1


def test_an_invalid_template_shows_every_problem(address: str) -> None:
    request = {
        "template": {
            "name": "broken",
            "menu_structure": {"type": "button", "body": {"text": "Hi"}, "steps": {}},
        }
    }
    result = grpcurl(address, f"{SERVICE}/CreateTemplate", data=json.dumps(request))

    assert result.returncode != 0
    assert "InvalidArgument" in result.stderr
    assert "menu_structure.action" in result.stderr
    assert "menu_structure.steps" in result.stderr


def call(address: str, method: str, request: dict[str, object]) -> subprocess.CompletedProcess[str]:
    return grpcurl(address, f"{SERVICE}/{method}", data=json.dumps(request))


def test_steer_a_conversation_and_send_messages(address: str) -> None:
    """The payment example, and "your order is ready" for a customer who never wrote."""
    created = call(address, "CreateTemplate", {"template": json.loads(PAY_ORDER.read_text())})
    hi = {"message_id": "wamid.grpcurl-1", "customer": CUSTOMER, "text": "hi"}
    call(address, "HandleMessage", {"message": hi})
    start = {
        "customer": CUSTOMER,
        "template_name": "pay_order",
        "initial_step": "awaiting_payment",
        "context": {"item": "Cake", "total": 9},
        "ttl": "172800s",
    }
    started = json.loads(call(address, "StartConversation", start).stdout)
    revision = started["conversation"]["revision"]
    update = {
        "customer": CUSTOMER,
        "context": {"paid": True},
        "step": "paid",
        "expected_revision": revision,
        "send_step_messages": True,
    }
    stale = call(address, "UpdateConversation", {**update, "expected_revision": 1})
    paid = call(address, "UpdateConversation", update)
    stranger = {"phone_number_id": CUSTOMER["phone_number_id"], "phone_number": "15550999999"}
    refused = call(address, "SendMessage", {"customer": stranger, "text": "Your order is ready"})
    template = {
        "name": "order_ready",
        "language": "en_US",
        "body": [{"text": "K7M4Q2"}],
        "buttons": [{"index": 0, "quick_reply_payload": "ok"}],
    }
    sent = call(
        address,
        "SendMessage",
        {"customer": stranger, "text": "Your order is ready", "template": template},
    )

    assert created.returncode == 0, created.stderr
    assert started["conversation"]["current_step"] == "awaiting_payment"
    assert stale.returncode != 0 and "Aborted" in stale.stderr
    assert paid.returncode == 0, paid.stderr
    assert "Payment received" in json.loads(paid.stdout)["messages"][0]["body_json"]
    assert refused.returncode != 0 and "FailedPrecondition" in refused.stderr
    assert "24-hour customer service window" in refused.stderr
    assert json.loads(json.loads(sent.stdout)["message"]["body_json"])["type"] == "template"


def test_what_get_template_returns_can_be_edited_and_sent_back(address: str) -> None:
    got = grpcurl(address, f"{SERVICE}/GetTemplate", data='{"name": "support"}')
    assert got.returncode == 0, got.stderr
    assert '"version": 1' in got.stdout and '"create_time"' in got.stdout
    # The edit a person makes in an editor: one text, the rest of grpcurl's output as it is.
    edited = got.stdout.replace("How can we help", "How may we help", 1)
    assert edited != got.stdout

    sent = grpcurl(address, f"{SERVICE}/UpdateTemplate", data=edited)
    again = grpcurl(address, f"{SERVICE}/UpdateTemplate", data=edited)

    assert sent.returncode == 0, sent.stderr
    updated = json.loads(sent.stdout)
    assert updated["changed"] is True and updated["template"]["version"] == 2
    assert "How may we help" in json.dumps(updated["template"]["menu_structure"])
    assert (
        updated["template"]["trigger_keywords"]
        == json.loads(got.stdout)["template"]["trigger_keywords"]
    )
    assert again.returncode == 0 and "changed" not in json.loads(again.stdout)
