"""FlowClient: FlowService for synchronous code."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

import grpc

from menuflow.client import requests as build
from menuflow.client.connection import Connection
from menuflow.client.errors import from_rpc_error
from menuflow.v1 import flow_pb2, flow_pb2_grpc


class FlowClient:
    """A connection to flowsvc; use it as a context manager, or close() it.

        with FlowClient(Connection(target="flowsvc:50051", token=..., business=...)) as flow:
            flow.send_message("15551234567", text="Your order is ready")

    Failures raise menuflow.client.errors.MenuflowError subclasses.
    """

    def __init__(self, connection: Connection | None = None) -> None:
        self.connection = connection or Connection.from_env()
        credentials = self.connection.credentials()
        self.channel = (
            grpc.secure_channel(self.connection.target, credentials)
            if credentials is not None
            else grpc.insecure_channel(self.connection.target)
        )
        self.stub = flow_pb2_grpc.FlowServiceStub(self.channel)

    def __enter__(self) -> FlowClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.channel.close()

    def _call(self, method: str, request: Any) -> Any:
        """One call within the connection's deadline, UNAVAILABLE retried with backoff."""
        connection = self.connection
        deadline = time.monotonic() + connection.timeout
        invoke = getattr(self.stub, method)
        attempt = 0
        while True:
            left = deadline - time.monotonic()
            try:
                return invoke(request, metadata=connection.metadata, timeout=max(left, 0.001))
            except grpc.RpcError as error:
                delay = connection.delay(attempt)
                retry = error.code() == grpc.StatusCode.UNAVAILABLE
                if not retry or attempt >= connection.retries or left - delay <= 0:
                    raise from_rpc_error(error) from None
            time.sleep(delay)
            attempt += 1

    def _customer(self, phone_number: str, business: str | None) -> flow_pb2.Customer:
        return build.customer(business or self.connection.business, phone_number)

    # Templates (admin)

    def create_template(self, definition: Mapping[str, Any]) -> flow_pb2.Template:
        request = flow_pb2.CreateTemplateRequest(template=build.template_definition(definition))
        return self._call("CreateTemplate", request).template  # type: ignore[no-any-return]

    def get_template(self, name: str, version: int = 0) -> flow_pb2.Template:
        request = flow_pb2.GetTemplateRequest(name=name, version=version)
        return self._call("GetTemplate", request).template  # type: ignore[no-any-return]

    def list_templates(self, active: bool | None = None) -> list[flow_pb2.Template]:
        found: list[flow_pb2.Template] = []
        token = ""
        while True:
            request = flow_pb2.ListTemplatesRequest(
                active_filter=build.ACTIVE[active], page_size=500, page_token=token
            )
            page = self._call("ListTemplates", request)
            found += page.templates
            token = page.next_page_token
            if not token:
                return found

    def update_template(
        self,
        definition: Mapping[str, Any],
        fields: Iterable[str] = (),
        expected_version: int = 0,
        *,
        draft: bool = False,
    ) -> flow_pb2.UpdateTemplateResponse:
        request = build.update_template(definition, fields, expected_version, draft)
        return self._call("UpdateTemplate", request)  # type: ignore[no-any-return]

    def delete_template(self, name: str) -> flow_pb2.DeleteTemplateResponse:
        request = flow_pb2.DeleteTemplateRequest(name=name)
        return self._call("DeleteTemplate", request)  # type: ignore[no-any-return]

    def validate_template(self, definition: Mapping[str, Any]) -> flow_pb2.TemplateType.ValueType:
        request = flow_pb2.ValidateTemplateRequest(template=build.template_definition(definition))
        return self._call("ValidateTemplate", request).type  # type: ignore[no-any-return]

    def import_templates(
        self, definitions: Iterable[Mapping[str, Any]], *, draft: bool = False
    ) -> list[flow_pb2.ImportedTemplate]:
        request = flow_pb2.ImportTemplatesRequest(
            templates=[build.template_definition(d) for d in definitions], draft=draft
        )
        return list(self._call("ImportTemplates", request).templates)

    def publish_template(self, name: str, version: int = 0) -> flow_pb2.PublishTemplateResponse:
        request = flow_pb2.PublishTemplateRequest(name=name, version=version)
        return self._call("PublishTemplate", request)  # type: ignore[no-any-return]

    def diff_template_versions(
        self, name: str, from_version: int = 0, to_version: int = 0
    ) -> flow_pb2.DiffTemplateVersionsResponse:
        request = flow_pb2.DiffTemplateVersionsRequest(
            name=name, from_version=from_version, to_version=to_version
        )
        return self._call("DiffTemplateVersions", request)  # type: ignore[no-any-return]

    def list_template_versions(self, name: str) -> list[flow_pb2.Template]:
        found: list[flow_pb2.Template] = []
        token = ""
        while True:
            request = flow_pb2.ListTemplateVersionsRequest(
                name=name, page_size=500, page_token=token
            )
            page = self._call("ListTemplateVersions", request)
            found += page.versions
            token = page.next_page_token
            if not token:
                return found

    def preview_template(
        self, name: str, version: int = 0, context: Mapping[str, Any] | None = None
    ) -> flow_pb2.PreviewTemplateResponse:
        request = flow_pb2.PreviewTemplateRequest(
            name=name, version=version, context=build.struct(context)
        )
        return self._call("PreviewTemplate", request)  # type: ignore[no-any-return]

    def run_sandbox(self, request: flow_pb2.RunSandboxRequest) -> flow_pb2.RunSandboxResponse:
        """One sandbox turn (see menuflow.client.requests.sandbox to build the request)."""
        return self._call("RunSandbox", request)  # type: ignore[no-any-return]

    def flow_stats(
        self,
        name: str,
        version: int = 0,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> flow_pb2.GetFlowStatsResponse:
        """Where customers drop off: NAME's funnel (all versions, or one) over [start, end)
        (default: the week until now), from the event log."""
        request = build.flow_stats(name, version, start, end)
        return self._call("GetFlowStats", request)  # type: ignore[no-any-return]

    # Conversations (client)

    def start_conversation(
        self,
        phone_number: str,
        template_name: str,
        *,
        context: Mapping[str, Any] | None = None,
        initial_step: str = "",
        ttl: timedelta | None = None,
        template: flow_pb2.MessageTemplate | None = None,
        business: str | None = None,
        request_id: str | None = None,
    ) -> flow_pb2.StartConversationResponse:
        request = build.start(
            self._customer(phone_number, business),
            template_name,
            context=context,
            initial_step=initial_step,
            ttl=ttl,
            template=template,
            request_id_=request_id,
        )
        return self._call("StartConversation", request)  # type: ignore[no-any-return]

    def get_conversation(
        self, phone_number: str, *, business: str | None = None
    ) -> flow_pb2.Conversation:
        request = flow_pb2.GetConversationRequest(customer=self._customer(phone_number, business))
        return self._call("GetConversation", request).conversation  # type: ignore[no-any-return]

    def list_conversations(
        self, *, flow: str = "", step: str = "", business: str = ""
    ) -> list[flow_pb2.Conversation]:
        found: list[flow_pb2.Conversation] = []
        token = ""
        while True:
            request = flow_pb2.ListConversationsRequest(
                flow=flow, step=step, phone_number_id=business, page_size=500, page_token=token
            )
            page = self._call("ListConversations", request)
            found += page.conversations
            token = page.next_page_token
            if not token:
                return found

    def end_conversation(
        self, phone_number: str, *, business: str | None = None
    ) -> flow_pb2.Conversation:
        request = flow_pb2.EndConversationRequest(customer=self._customer(phone_number, business))
        return self._call("EndConversation", request).conversation  # type: ignore[no-any-return]

    def update_conversation(
        self,
        phone_number: str,
        *,
        context: Mapping[str, Any] | None = None,
        step: str = "",
        flow: str = "",
        expected_revision: int = 0,
        send: bool = False,
        template: flow_pb2.MessageTemplate | None = None,
        business: str | None = None,
        request_id: str | None = None,
    ) -> flow_pb2.UpdateConversationResponse:
        request = build.update(
            self._customer(phone_number, business),
            context=context,
            step=step,
            flow=flow,
            expected_revision=expected_revision,
            send=send,
            template=template,
            request_id_=request_id,
        )
        return self._call("UpdateConversation", request)  # type: ignore[no-any-return]

    def send_message(
        self,
        phone_number: str,
        *,
        text: str | None = None,
        interactive: Mapping[str, Any] | None = None,
        template: flow_pb2.MessageTemplate | None = None,
        business: str | None = None,
        request_id: str | None = None,
        agent: str = "",
    ) -> flow_pb2.OutboxMessage:
        request = build.send(
            self._customer(phone_number, business),
            text=text,
            interactive=interactive,
            template=template,
            request_id_=request_id,
            agent=agent,
        )
        return self._call("SendMessage", request).message  # type: ignore[no-any-return]

    # Handing customers to people (client)

    def hand_off(
        self,
        phone_number: str,
        *,
        reason: str = "",
        queue: str = "",
        priority: int = 0,
        until: datetime | None = None,
        text: str = "",
        business: str | None = None,
        request_id: str | None = None,
    ) -> flow_pb2.HandOffResponse:
        """Hand a customer to people: the bot steps aside until resume() (or idling)."""
        request = build.hand_off(
            self._customer(phone_number, business),
            reason=reason,
            queue=queue,
            priority=priority,
            until=until,
            text=text,
            request_id_=request_id,
        )
        return self._call("HandOff", request)  # type: ignore[no-any-return]

    def resume(
        self,
        phone_number: str,
        *,
        step: str = "",
        flow: str = "",
        end: bool = False,
        context: Mapping[str, Any] | None = None,
        text: str = "",
        expected_revision: int = 0,
        business: str | None = None,
        request_id: str | None = None,
    ) -> flow_pb2.ResumeResponse:
        """Give a handed-off customer back to the bot: to `step` (or `flow`), or `end`."""
        request = build.resume(
            self._customer(phone_number, business),
            step=step,
            flow=flow,
            end=end,
            context=context,
            text=text,
            expected_revision=expected_revision,
            request_id_=request_id,
        )
        return self._call("Resume", request)  # type: ignore[no-any-return]

    def handed_off(self, *, queue: str = "", business: str = "") -> list[flow_pb2.Conversation]:
        """The customers handed off to people (in `queue`), oldest first."""
        found: list[flow_pb2.Conversation] = []
        token = ""
        while True:
            request = flow_pb2.ListConversationsRequest(
                phone_number_id=business,
                handed_off=True,
                queue=queue,
                page_size=500,
                page_token=token,
            )
            page = self._call("ListConversations", request)
            found += page.conversations
            token = page.next_page_token
            if not token:
                return found

    # Results (client)

    def get_result(self, reference: str) -> flow_pb2.Result:
        request = flow_pb2.GetResultRequest(reference=reference)
        return self._call("GetResult", request).result  # type: ignore[no-any-return]

    def list_results(
        self,
        *,
        template_name: str = "",
        phone_number: str = "",
        business: str = "",
        limit: int = 50,
    ) -> list[flow_pb2.Result]:
        request = flow_pb2.ListResultsRequest(
            template_name=template_name,
            customer=build.customer(business, phone_number),
            page_size=limit,
        )
        return list(self._call("ListResults", request).results)

    # Events (client)

    def list_events(
        self,
        after_id: int = 0,
        *,
        types: Iterable[str | int] = (),
        template_name: str = "",
        phone_number: str = "",
        business: str = "",
        limit: int = 500,
    ) -> list[flow_pb2.Event]:
        """Past events after `after_id`, oldest first, at most `limit` (page after page)."""
        wanted = build.event_filter(types, template_name, business, phone_number)
        found: list[flow_pb2.Event] = []
        token = ""
        while len(found) < limit:
            request = flow_pb2.ListEventsRequest(
                after_id=after_id,
                filter=wanted,
                page_size=min(limit - len(found), 500),
                page_token=token,
            )
            page = self._call("ListEvents", request)
            found += page.events
            token = page.next_page_token
            if not token:
                break
        return found

    def watch_events(
        self,
        after_id: int | None = None,
        *,
        types: Iterable[str | int] = (),
        template_name: str = "",
        phone_number: str = "",
        business: str = "",
    ) -> Iterator[flow_pb2.Event]:
        """Events after `after_id` (None: from now on) as they commit, forever. When the stream
        breaks (flowsvc restarts, the network drops) it reconnects with backoff and resumes after
        the last event it gave: at least once, none missed."""
        wanted = build.event_filter(types, template_name, business, phone_number)
        # "From now" is the newest id when called, so a reconnect before the first event
        # misses none either.
        last = after_id if after_id is not None else self._last_event_id()
        attempt = 0
        while True:
            request = flow_pb2.WatchEventsRequest(filter=wanted, after_id=last)
            stream = self.stub.WatchEvents(request, metadata=self.connection.metadata)
            try:
                for response in stream:
                    attempt = 0
                    for event in response.events:
                        last = event.id
                        yield event
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.UNAVAILABLE:
                    raise from_rpc_error(error) from None
            finally:
                stream.cancel()
            time.sleep(self.connection.delay(min(attempt, 6)))
            attempt += 1

    def _last_event_id(self) -> int:
        request = flow_pb2.ListEventsRequest(page_size=1)
        return self._call("ListEvents", request).last_id  # type: ignore[no-any-return]

    # Maintenance (admin)

    def sweep_expired(self) -> flow_pb2.SweepExpiredResponse:
        return self._call("SweepExpired", flow_pb2.SweepExpiredRequest())  # type: ignore[no-any-return]
