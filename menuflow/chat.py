"""`make chat`: talk to a running flowsvc as a WhatsApp customer would, in a terminal.

Buttons and list rows are numbered: type the number to tap one, or type any text. By default the
chat runs in the sandbox (RunSandbox): the same engine, but nothing is queued or stored, and
`--template NAME [--version N]` tries any version, drafts included (`TEMPLATE=... VERSION=...
make chat`), started with `--context` (a JSON object or @file.json, as StartConversation's: e.g.
the slots a menu built from data shows). A sandbox runs no call (a step's `call`): the chat shows
the call the step would make and asks what it gave at a `call>` prompt, as JSON (`{"status": 200,
"json": {...}}`, `{"timeout": true}`, `{"failed": true}`; Enter: the default), or answers every
call with `--call-result JSON` (`CALL_RESULT=... make chat`). `--live` talks as a real customer
(HandleMessage): the messages shown are marked sent, so a gateway's outbox pump running beside it
does not send them again.
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
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format

from menuflow.call_results import describe, sandbox_call_result
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


MEDIA_ICONS = {"image": "🖼", "document": "📄", "video": "🎬", "audio": "🔊", "sticker": "🏷"}


def media(kind: str, item: dict[str, Any]) -> str:
    """An image, document, video, audio or sticker (a message or a header) as one line: its
    kind, filename and caption, and where it comes from (a link, or Meta's media id)."""
    where = item.get("link") or f"media id {item.get('id', '?')}"
    name = f" {item['filename']}" if item.get("filename") else ""
    caption = f": {item['caption']}" if item.get("caption") else ""
    return f"[{MEDIA_ICONS.get(kind, '📎')} {kind}{name}{caption}] <{where}>"


def render_other(body: dict[str, Any]) -> str:
    """A message that is neither text nor interactive: media, a location, contact cards, a
    Meta message template."""
    kind = str(body.get("type", "?"))
    item = body.get(kind, {})
    if kind in MEDIA_ICONS:
        return media(kind, item)
    if kind == "location":
        place = ", ".join(str(item[k]) for k in ("name", "address") if item.get(k))
        at = f"({item.get('latitude')}, {item.get('longitude')})"
        return f"📍 {place} {at}" if place else f"📍 {at}"
    if kind == "contacts":
        cards = []
        for contact in item if isinstance(item, list) else []:
            name = contact.get("name", {}).get("formatted_name", "?")
            phones = ", ".join(p.get("phone", "") for p in contact.get("phones", []))
            cards.append(f"👤 {name}" + (f": {phones}" if phones else ""))
        return "\n".join(cards) or "👤 (a contact card)"
    if kind == "template":
        return f"[template {item.get('name', '?')} ({item.get('language', {}).get('code', '?')})]"
    return f"[{kind} message]"


def render(body: dict[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    """A Graph API message as terminal text, and the (id, title) options it offers."""
    if body.get("type") == "text":
        return body["text"]["body"], []
    if body.get("type") != "interactive":
        return render_other(body), []
    interactive = body.get("interactive", {})
    lines, options = [], []
    header = interactive.get("header", {})
    if header.get("text"):
        lines.append(f"*{header['text']}*")
    elif header.get("type") in MEDIA_ICONS:
        lines.append(media(header["type"], header.get(header["type"], {})))
    lines.append(interactive.get("body", {}).get("text", ""))
    if interactive.get("footer", {}).get("text"):
        lines.append(f"_{interactive['footer']['text']}_")
    action = interactive.get("action", {})
    numbers = itertools.count(1)
    parameters = action.get("parameters", {})
    if interactive.get("type") == "location_request_message":
        lines.append("  [📍 Send location] (a WhatsApp button: the terminal sends text only)")
    elif interactive.get("type") == "cta_url":
        lines.append(f"  [🔗 {parameters.get('display_text', 'Open')}] <{parameters.get('url')}>")
    elif interactive.get("type") == "flow":
        flow = parameters.get("flow_id") or parameters.get("flow_name", "")
        screen = parameters.get("flow_action_payload", {}).get("screen", "")
        lines.append(f"  [ {parameters.get('flow_cta', '')} ] (WhatsApp Flow {flow} {screen})")
    elif interactive.get("type") == "button":
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


class Fatal(Exception):
    """An error after which another message cannot fare better."""


Said = str | flow_pb2.Selection | None
"""A typed text, a tap, or (None) nothing: the sandbox then starts its template."""


def show(bodies: list[dict[str, Any]] | None, options: list[tuple[str, str]]) -> list[Any]:
    """Print the bot's replies; the options now on offer (the last ones, if none are new)."""
    if bodies is None:
        return options
    offered_now: list[tuple[str, str]] = []
    for body in bodies:
        text, offered = render(body)
        offered_now = offered or offered_now
        print(f"bot> {text}\n")
    return offered_now or ([] if bodies else options)


def _failed(error: grpc.RpcError, target: str) -> None:
    """Raise Fatal for errors that end the chat; print the others (None: the turn is lost)."""
    fatal = FATAL.get(error.code())
    if fatal is not None:
        raise Fatal(fatal.format(target=target)) from None
    print(f"!! {error.code().name}: {error.details()}", file=sys.stderr)


@dataclasses.dataclass
class Live:
    """A real customer: HandleMessage, replies leased to the chat and acknowledged as sent."""

    stub: flow_pb2_grpc.FlowServiceStub
    client: FlowsvcConnection
    customer: flow_pb2.Customer
    name: str
    owner: str = dataclasses.field(default_factory=lambda: f"chat-{os.getpid()}")

    def turn(self, said: Said) -> list[dict[str, Any]] | None:
        message = flow_pb2.InboundMessage(
            message_id=f"chat.{self.owner}.{time.time_ns()}",
            customer=self.customer,
            contact_name=self.name,
        )
        if isinstance(said, flow_pb2.Selection):
            message.selection.CopyFrom(said)
        else:
            message.text = said or ""
        try:
            response = self.stub.HandleMessage(
                flow_pb2.HandleMessageRequest(message=message, lease_owner=self.owner),
                metadata=self.client.metadata,
            )
        except grpc.RpcError as error:
            _failed(error, self.client.target)
            return None
        acks = [
            flow_pb2.OutboxAck(id=outbox.id, sent_wa_message_id=f"chat.{outbox.id}")
            for outbox in response.messages
            if outbox.lease_owner == self.owner
        ]
        if acks:
            self.stub.AckOutbox(
                flow_pb2.AckOutboxRequest(owner=self.owner, acks=acks),
                metadata=self.client.metadata,
            )
        return [json.loads(outbox.body_json) for outbox in response.messages]


class Sandbox:
    """A sandbox customer: RunSandbox, the conversation kept here between turns."""

    def __init__(
        self,
        stub: flow_pb2_grpc.FlowServiceStub,
        client: FlowsvcConnection,
        args: argparse.Namespace,
    ) -> None:
        self.stub = stub
        self.client = client
        self.template = args.template
        self.version = args.version
        self.name = args.name
        self.context: dict[str, Any] = args.context
        self.call_result: flow_pb2.SandboxCallResult | None = args.call_result
        self.conversation: flow_pb2.SandboxConversation | None = None

    def turn(self, said: Said) -> list[dict[str, Any]] | None:
        """One turn; while the conversation then waits for a call, its result is asked for (or
        the --call-result given) and sent as a turn of its own, the replies shown so far first."""
        bodies, call = self._run(self._request(said))
        while call is not None and bodies is not None:
            show(bodies, [])
            print(f"(sandbox: the bot calls {describe(call)})")
            request = flow_pb2.RunSandboxRequest(
                template_name=self.template,
                version=self.version,
                contact_name=self.name,
                conversation=self.conversation,
                call_result=self._call_result(),
            )
            bodies, call = self._run(request)
        return bodies

    def _call_result(self) -> flow_pb2.SandboxCallResult:
        if self.call_result is not None:
            print(f"call> {json_format.MessageToJson(self.call_result, indent=None)}\n")
            return self.call_result
        while True:
            try:
                typed = input(f"call> (Enter: {DEFAULT_CALL_RESULT}) ").strip()
            except EOFError:
                typed = ""
            try:
                return sandbox_call_result(json.loads(typed or DEFAULT_CALL_RESULT))
            except ValueError as error:
                print(f"(not a call result: {error})")

    def _request(self, said: Said) -> flow_pb2.RunSandboxRequest:
        request = flow_pb2.RunSandboxRequest(
            template_name=self.template,
            version=self.version,
            contact_name=self.name,
            conversation=self.conversation,
        )
        if isinstance(said, flow_pb2.Selection):
            request.selection.CopyFrom(said)
        elif said is not None:
            request.text = said
        elif self.context:  # the template starts: with the data another service would give
            request.start_context.update(self.context)
        return request

    def _run(
        self, request: flow_pb2.RunSandboxRequest
    ) -> tuple[list[dict[str, Any]] | None, flow_pb2.SandboxCall | None]:
        """The turn's replies (None: it failed) and the call the conversation now waits for."""
        try:
            response = self.stub.RunSandbox(request, metadata=self.client.metadata)
        except grpc.RpcError as error:
            _failed(error, self.client.target)
            return None, None
        self.conversation = response.conversation if response.HasField("conversation") else None
        if response.result_reference:
            print(f"(sandbox: a result {response.result_reference} would be stored)\n")
        call = response.call if response.HasField("call") else None
        return [json_format.MessageToDict(body) for body in response.messages], call


DEFAULT_CALL_RESULT = '{"status": 200, "json": {}}'


def _call_result_option(raw: str) -> flow_pb2.SandboxCallResult:
    """--call-result: the result every call gets, in menuflow/call_results.py's shape."""
    try:
        return sandbox_call_result(json.loads(raw))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not a call result: {error}") from None


def _context(raw: str) -> dict[str, Any]:
    """--context: a JSON object, inline or `@path` to a file holding one."""
    try:
        text = Path(raw[1:]).read_text(encoding="utf-8") if raw.startswith("@") else raw
        value = json.loads(text)
    except (OSError, ValueError) as error:
        raise argparse.ArgumentTypeError(f"not a JSON object: {error}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError('must be a JSON object, like {"slots": [...]}')
    return value


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
    parser.add_argument(
        "--live", action="store_true", help="be a real customer: replies are queued, orders stored"
    )
    parser.add_argument(
        "--template", default="", help="(sandbox) start this template, e.g. a draft, at once"
    )
    parser.add_argument(
        "--version", type=int, default=0, help="(sandbox) its version; default: the latest"
    )
    parser.add_argument(
        "--context",
        type=_context,
        default={},
        help="(sandbox, with --template) the context it starts with, as StartConversation's: "
        "a JSON object, or @file.json (e.g. the slots a menu is built from)",
    )
    parser.add_argument(
        "--call-result",
        type=_call_result_option,
        default=None,
        help='(sandbox) what every call a step makes gives, e.g. \'{"status": 200, "json": '
        '{"zone": "B"}}\' or \'{"timeout": true}\'; default: asked at a call> prompt',
    )
    args = parser.parse_args(argv)
    if args.live and args.call_result is not None:
        parser.error("--call-result answers the sandbox's calls: a live call runs for real")
    if args.live and (args.template or args.version):
        parser.error("--template and --version try a version in the sandbox: drop --live")
    if args.context and not args.template:
        parser.error("--context is what --template starts with: give --template too")
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
        mode = "live" if args.live else "sandbox: nothing is sent or stored"
        print(f"Chatting with {client.target} as {args.phone} ({mode}). Type /quit to leave.\n")
        stub = flow_pb2_grpc.FlowServiceStub(channel)
        talk = Live(stub, client, customer, args.name) if args.live else Sandbox(stub, client, args)
        try:
            if args.template:
                options = show(talk.turn(None), options)
            for line in inputs("you> "):
                line = line.strip()
                if line == "/quit":
                    break
                if not line:
                    continue
                if line.isdigit() and 1 <= int(line) <= len(options):
                    option_id, title = options[int(line) - 1]
                    said: str | flow_pb2.Selection = flow_pb2.Selection(id=option_id, title=title)
                else:
                    said = line
                options = show(talk.turn(said), options)
        except Fatal as fatal:
            print(f"chat: {fatal}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
