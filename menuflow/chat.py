"""`make chat`: talk to a running flowsvc as a WhatsApp customer would, in a terminal.

Buttons and list rows are numbered: type the number to tap one, or type any text. The messages
shown are marked sent, so a gateway's outbox pump running beside it does not send them again.
flowsvc is found as the gateway finds it: FLOWSVC_TARGET (else the address FLOWSVC_LISTEN gives
`make run`), FLOWSVC_TOKEN, and FLOWSVC_TLS_CA with FLOWSVC_TLS_CLIENT_CERT/KEY for TLS.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

import grpc

from menuflow.connection import FlowsvcConnection, is_serving
from menuflow.v1 import flow_pb2, flow_pb2_grpc

# Errors after which another message cannot fare better: say so once and stop.
FATAL = {
    grpc.StatusCode.UNAVAILABLE: "flowsvc stopped answering at {target}",
    grpc.StatusCode.UNAUTHENTICATED: "flowsvc refused the token: set FLOWSVC_TOKEN to the value "
    "flowsvc was started with",
    grpc.StatusCode.PERMISSION_DENIED: "flowsvc refused the token: set FLOWSVC_TOKEN to the value "
    "flowsvc was started with",
}


def render(body: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    """A Graph API message as terminal text, and the (id, title) options it offers."""
    if body.get("type") == "text":
        return body["text"]["body"], []
    interactive = body.get("interactive", {})
    lines, options = [], []
    if interactive.get("header", {}).get("text"):
        lines.append(f"*{interactive['header']['text']}*")
    lines.append(interactive.get("body", {}).get("text", ""))
    if interactive.get("footer", {}).get("text"):
        lines.append(f"_{interactive['footer']['text']}_")
    action = interactive.get("action", {})
    numbers = itertools.count(1)
    if interactive.get("type") == "button":
        for button in action.get("buttons", []):
            reply = button["reply"]
            options.append((reply["id"], reply["title"]))
            lines.append(f"  [{next(numbers)}] {reply['title']}")
    else:
        lines.append(f"  ({action.get('button', 'Menu')})")
        for section in action.get("sections", []):
            if section.get("title"):
                lines.append(f"  {section['title']}")
            for row in section.get("rows", []):
                options.append((row["id"], row["title"]))
                description = f" - {row['description']}" if row.get("description") else ""
                lines.append(f"    [{next(numbers)}] {row['title']}{description}")
    return "\n".join(lines), options


def inputs(prompt: str) -> Iterator[str]:
    while True:
        try:
            yield input(prompt)
        except EOFError:
            return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    client = FlowsvcConnection.from_env()
    parser.add_argument("--target", default=client.target, help="flowsvc's host:port")
    parser.add_argument("--phone", default="15550001234", help="the customer's number (digits)")
    parser.add_argument("--business", default="100000000000001", help="phone_number_id")
    parser.add_argument("--name", default="Terminal Customer", help="the profile name")
    args = parser.parse_args(argv)
    owner = f"chat-{os.getpid()}"
    customer = flow_pb2.Customer(phone_number_id=args.business, phone_number=args.phone)
    options: list[tuple[str, str]] = []
    client = dataclasses.replace(client, target=args.target)
    with client.channel() as channel:
        if not is_serving(channel, timeout=5):
            print(
                f"chat: flowsvc is not reachable at {client.target}: start it with `make run`, or "
                "point FLOWSVC_TARGET at it (FLOWSVC_TLS_CA for TLS)",
                file=sys.stderr,
            )
            return 1
        print(f"Chatting with {client.target} as {args.phone}. Type /quit to leave.\n")
        stub = flow_pb2_grpc.FlowServiceStub(channel)
        for line in inputs("you> "):
            line = line.strip()
            if line == "/quit":
                break
            if not line:
                continue
            message = flow_pb2.InboundMessage(
                message_id=f"chat.{owner}.{time.time_ns()}",
                customer=customer,
                contact_name=args.name,
            )
            if line.isdigit() and 1 <= int(line) <= len(options):
                option_id, title = options[int(line) - 1]
                message.selection.CopyFrom(flow_pb2.Selection(id=option_id, title=title))
            else:
                message.text = line
            try:
                response = stub.HandleMessage(
                    flow_pb2.HandleMessageRequest(message=message, lease_owner=owner),
                    metadata=client.metadata,
                )
            except grpc.RpcError as error:
                fatal = FATAL.get(error.code())
                if fatal is not None:
                    print(f"chat: {fatal.format(target=client.target)}", file=sys.stderr)
                    return 1
                print(f"!! {error.code().name}: {error.details()}", file=sys.stderr)
                continue
            options = []
            acks = []
            for outbox in response.messages:
                text, offered = render(json.loads(outbox.body_json))
                options = offered or options
                print(f"bot> {text}\n")
                if outbox.lease_owner == owner:
                    acks.append(
                        flow_pb2.OutboxAck(id=outbox.id, sent_wa_message_id=f"chat.{outbox.id}")
                    )
            if acks:
                stub.AckOutbox(
                    flow_pb2.AckOutboxRequest(owner=owner, acks=acks), metadata=client.metadata
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
