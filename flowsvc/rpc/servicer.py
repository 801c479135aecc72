"""FlowService over gRPC: each method translates its request, makes one service call by name, and
translates the answer. Errors become statuses in rpc.status, for every method alike."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC
from typing import Any

import grpc

from flowsvc.rpc import authoring, convert
from flowsvc.rpc.status import status_message
from flowsvc.service.calls import CallQueue
from flowsvc.service.conversations import Conversations
from flowsvc.service.deliveries import Deliveries
from flowsvc.service.event_delivery import EventDeliveries
from flowsvc.service.event_feed import EventFeed
from flowsvc.service.handling import MessageHandling
from flowsvc.service.results import Results
from flowsvc.service.retention import Retention
from flowsvc.service.sandbox import Sandbox
from flowsvc.service.send_slots import SendSlots
from flowsvc.service.stats import FlowStatistics
from flowsvc.service.templates import Templates
from flowsvc.service.turns import LeaseRequest
from menuflow.v1 import flow_pb2, flow_pb2_grpc


class FlowServicer(flow_pb2_grpc.FlowServiceServicer):
    """FlowService. Each call runs on one of the server's worker threads, and a service call is
    blocking (one database transaction each): the thread waits on the database, not a loop."""

    def __init__(
        self,
        templates: Templates,
        handling: MessageHandling,
        conversations: Conversations,
        results: Results,
        deliveries: Deliveries,
        retention: Retention,
        send_slots: SendSlots,
        feed: EventFeed,
        event_deliveries: EventDeliveries,
        sandbox: Sandbox,
        stats: FlowStatistics,
        call_queue: CallQueue,
    ) -> None:
        self._templates = templates
        self._handling = handling
        self._conversations = conversations
        self._results = results
        self._deliveries = deliveries
        self._retention = retention
        self._send_slots = send_slots
        self._feed = feed
        self._event_deliveries = event_deliveries
        self._events = convert.EventCache()
        self._responses = convert.ResponseCache(self._events)
        self._sandbox = sandbox
        self._stats = stats
        self._call_queue = call_queue

    def CreateTemplate(
        self, request: flow_pb2.CreateTemplateRequest, context: grpc.ServicerContext
    ) -> flow_pb2.CreateTemplateResponse:
        created, warnings = self._templates.create(
            convert.template_definition(request.template, draft=request.draft)
        )
        return flow_pb2.CreateTemplateResponse(
            template=convert.template(created), warnings=convert.warnings(warnings)
        )

    def GetTemplate(
        self, request: flow_pb2.GetTemplateRequest, context: grpc.ServicerContext
    ) -> flow_pb2.GetTemplateResponse:
        found = self._templates.get(request.name, request.version)
        return flow_pb2.GetTemplateResponse(template=convert.template(found))

    def ListTemplates(
        self, request: flow_pb2.ListTemplatesRequest, context: grpc.ServicerContext
    ) -> flow_pb2.ListTemplatesResponse:
        page = self._templates.list_heads(
            convert.ACTIVE_FILTERS.get(request.active_filter),
            request.page_size,
            request.page_token,
        )
        return flow_pb2.ListTemplatesResponse(
            templates=[convert.template(item) for item in page.items],
            next_page_token=page.next_page_token,
        )

    def UpdateTemplate(
        self, request: flow_pb2.UpdateTemplateRequest, context: grpc.ServicerContext
    ) -> flow_pb2.UpdateTemplateResponse:
        updated, changed, warnings = self._templates.update(
            convert.template_definition(request.template, draft=request.draft),
            tuple(request.update_mask.paths),
            request.expected_version,
        )
        return flow_pb2.UpdateTemplateResponse(
            template=convert.template(updated),
            changed=changed,
            warnings=convert.warnings(warnings),
        )

    def DeleteTemplate(
        self, request: flow_pb2.DeleteTemplateRequest, context: grpc.ServicerContext
    ) -> flow_pb2.DeleteTemplateResponse:
        versions, ended = self._templates.delete(request.name)
        return flow_pb2.DeleteTemplateResponse(deleted_versions=versions, ended_conversations=ended)

    def ValidateTemplate(
        self, request: flow_pb2.ValidateTemplateRequest, context: grpc.ServicerContext
    ) -> flow_pb2.ValidateTemplateResponse:
        kind, warnings = self._templates.validate(convert.template_definition(request.template))
        return flow_pb2.ValidateTemplateResponse(
            type=convert.TEMPLATE_TYPES[kind], warnings=convert.warnings(warnings)
        )

    def ListTemplateVersions(
        self, request: flow_pb2.ListTemplateVersionsRequest, context: grpc.ServicerContext
    ) -> flow_pb2.ListTemplateVersionsResponse:
        page = self._templates.versions(request.name, request.page_size, request.page_token)
        return flow_pb2.ListTemplateVersionsResponse(
            versions=[convert.template(item) for item in page.items],
            next_page_token=page.next_page_token,
        )

    def ImportTemplates(
        self, request: flow_pb2.ImportTemplatesRequest, context: grpc.ServicerContext
    ) -> flow_pb2.ImportTemplatesResponse:
        imported = self._templates.import_(
            [convert.template_definition(item, draft=request.draft) for item in request.templates]
        )
        return flow_pb2.ImportTemplatesResponse(
            templates=[convert.imported(item) for item in imported]
        )

    def HandleMessage(
        self, request: flow_pb2.HandleMessageRequest, context: grpc.ServicerContext
    ) -> flow_pb2.HandleMessageResponse:
        handled = self._handling.handle(convert.inbound(request.message), convert.lease(request))
        return convert.handle_response(handled)

    def HandleMessages(
        self, request: flow_pb2.HandleMessagesRequest, context: grpc.ServicerContext
    ) -> flow_pb2.HandleMessagesResponse:
        outcomes = self._handling.handle_many(
            [convert.inbound(message) for message in request.messages], convert.lease(request)
        )
        response = flow_pb2.HandleMessagesResponse()
        results = response.results
        for handled in outcomes:
            result = results.add()
            if isinstance(handled, Exception):
                result.error.CopyFrom(status_message(handled))
            else:  # written in place: a message given to a constructor is copied in
                convert.handle_response(handled, result.handled)
        return response

    def StartConversation(
        self, request: flow_pb2.StartConversationRequest, context: grpc.ServicerContext
    ) -> flow_pb2.StartConversationResponse:
        handled = self._handling.start(convert.start_request(request), convert.lease(request))
        return convert.start_response(handled)

    def UpdateConversation(
        self, request: flow_pb2.UpdateConversationRequest, context: grpc.ServicerContext
    ) -> flow_pb2.UpdateConversationResponse:
        handled = self._handling.update(convert.update_request(request), LeaseRequest())
        return convert.update_response(handled)

    def SendMessage(
        self, request: flow_pb2.SendMessageRequest, context: grpc.ServicerContext
    ) -> flow_pb2.SendMessageResponse:
        handled = self._handling.send(convert.send_request(request), LeaseRequest())
        return convert.send_response(handled)

    def HandOff(
        self, request: flow_pb2.HandOffRequest, context: grpc.ServicerContext
    ) -> flow_pb2.HandOffResponse:
        handled = self._handling.hand_off(convert.hand_off_request(request))
        return convert.hand_off_response(handled)

    def Resume(
        self, request: flow_pb2.ResumeRequest, context: grpc.ServicerContext
    ) -> flow_pb2.ResumeResponse:
        handled = self._handling.resume(convert.resume_request(request))
        return convert.resume_response(handled)

    def GetConversation(
        self, request: flow_pb2.GetConversationRequest, context: grpc.ServicerContext
    ) -> flow_pb2.GetConversationResponse:
        customer = request.customer
        found = self._conversations.get(customer.phone_number_id, customer.phone_number)
        return flow_pb2.GetConversationResponse(conversation=convert.conversation(found))

    def ListConversations(
        self, request: flow_pb2.ListConversationsRequest, context: grpc.ServicerContext
    ) -> flow_pb2.ListConversationsResponse:
        items, token = self._conversations.list_active(
            request.flow,
            request.step,
            request.phone_number_id,
            request.page_size,
            request.page_token,
            handed_off=request.handed_off,
            queue=request.queue,
        )
        return flow_pb2.ListConversationsResponse(
            conversations=[convert.conversation(item) for item in items], next_page_token=token
        )

    def EndConversation(
        self, request: flow_pb2.EndConversationRequest, context: grpc.ServicerContext
    ) -> flow_pb2.EndConversationResponse:
        customer = request.customer
        ended = self._conversations.end(customer.phone_number_id, customer.phone_number)
        return flow_pb2.EndConversationResponse(conversation=convert.conversation(ended))

    def SetLanguage(
        self, request: flow_pb2.SetLanguageRequest, context: grpc.ServicerContext
    ) -> flow_pb2.SetLanguageResponse:
        customer = request.customer
        updated = self._conversations.set_language(
            customer.phone_number_id, customer.phone_number, request.language
        )
        return flow_pb2.SetLanguageResponse(conversation_updated=updated)

    def SweepExpired(
        self, request: flow_pb2.SweepExpiredRequest, context: grpc.ServicerContext
    ) -> flow_pb2.SweepExpiredResponse:
        self._handling.resume_idle()
        self._handling.fire_timers()
        expired, old = self._conversations.sweep()
        purged = self._retention.sweep()
        return flow_pb2.SweepExpiredResponse(
            expired_conversations=expired,
            processed_messages=old,
            results=purged.results,
            outbox_messages=purged.outbox_messages,
            events=purged.events,
            calls=purged.calls,
        )

    def GetResult(
        self, request: flow_pb2.GetResultRequest, context: grpc.ServicerContext
    ) -> flow_pb2.GetResultResponse:
        found = self._results.get(request.reference)
        return flow_pb2.GetResultResponse(result=convert.result(found))

    def ListResults(
        self, request: flow_pb2.ListResultsRequest, context: grpc.ServicerContext
    ) -> flow_pb2.ListResultsResponse:
        items, token = self._results.list_newest(
            request.template_name,
            request.customer.phone_number_id,
            request.customer.phone_number,
            request.page_size,
            request.page_token,
        )
        return flow_pb2.ListResultsResponse(
            results=[convert.result(item) for item in items], next_page_token=token
        )

    def ClaimOutbox(
        self, request: flow_pb2.ClaimOutboxRequest, context: grpc.ServicerContext
    ) -> flow_pb2.ClaimOutboxResponse:
        messages, pending = self._deliveries.claim(
            request.owner, request.max_messages, request.lease_seconds
        )
        return flow_pb2.ClaimOutboxResponse(
            messages=[convert.outbox_message(entry) for entry in messages], pending=pending
        )

    def AckOutbox(
        self, request: flow_pb2.AckOutboxRequest, context: grpc.ServicerContext
    ) -> flow_pb2.AckOutboxResponse:
        acked = self._deliveries.ack(
            request.owner,
            [convert.ack(item) for item in request.acks],
            lease_next_seconds=request.lease_next_seconds,
        )
        return flow_pb2.AckOutboxResponse(
            lease_lost_ids=acked.lost,
            messages=[convert.outbox_message(entry) for entry in acked.leased],
        )

    def RecordStatus(
        self, request: flow_pb2.RecordStatusRequest, context: grpc.ServicerContext
    ) -> flow_pb2.RecordStatusResponse:
        matched, status = self._deliveries.record_status(
            request.wa_message_id,
            convert.STATUS_NAMES.get(request.status, ""),
            [(e.code, e.title, e.details) for e in request.errors],
            outbox_id=request.outbox_id,
            recipient=request.recipient_id,
        )
        return flow_pb2.RecordStatusResponse(
            matched=matched, delivery_status=convert.delivery_status(status)
        )

    def GrantSendSlots(
        self, request: flow_pb2.GrantSendSlotsRequest, context: grpc.ServicerContext
    ) -> flow_pb2.GrantSendSlotsResponse:
        grant = self._send_slots.grant(
            request.phone_number_id, request.count, request.rate_per_second, request.burst
        )
        return flow_pb2.GrantSendSlotsResponse(
            granted=grant.count, first_in_seconds=grant.first_in, interval_seconds=grant.interval
        )

    def ClaimCalls(
        self, request: flow_pb2.ClaimCallsRequest, context: grpc.ServicerContext
    ) -> flow_pb2.ClaimCallsResponse:
        claimed = self._call_queue.claim(request.owner, request.max_calls, request.lease_seconds)
        return flow_pb2.ClaimCallsResponse(calls=[convert.queued_call(call) for call in claimed])

    def FinishCall(
        self, request: flow_pb2.FinishCallRequest, context: grpc.ServicerContext
    ) -> flow_pb2.FinishCallResponse:
        handled = self._handling.finish_call(
            request.call_id, convert.call_result(request), convert.call_lease(request)
        )
        return convert.finish_call_response(handled)

    # Yields each WatchEventsResponse as its bytes, which the stubs do not foresee.
    async def WatchEvents(  # type: ignore[override]
        self, request: flow_pb2.WatchEventsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[bytes]:
        """On the server's event loop (the other methods run on its thread pool). Responses go
        out serialized, once for all the streams that send the same one."""
        after_id = request.after_id if request.HasField("after_id") else None
        async with self._feed.watching(after_id, convert.event_filter(request.filter)) as found:
            # Headers once the start is settled: a caller that has them gets every event
            # committed from then on, before the first of them arrives.
            await context.send_initial_metadata(())
            async for batch in found:
                yield self._responses.get(batch)

    def ListEvents(
        self, request: flow_pb2.ListEventsRequest, context: grpc.ServicerContext
    ) -> flow_pb2.ListEventsResponse:
        page = self._feed.page(
            request.after_id,
            convert.event_filter(request.filter),
            request.page_size,
            request.page_token,
        )
        return flow_pb2.ListEventsResponse(
            events=[convert.event(item) for item in page.items],
            next_page_token=page.next_page_token,
            last_id=page.last_id,
        )

    def ClaimEventDelivery(
        self, request: flow_pb2.ClaimEventDeliveryRequest, context: grpc.ServicerContext
    ) -> flow_pb2.ClaimEventDeliveryResponse:
        claim = self._event_deliveries.claim(convert.claim_request(request))
        return convert.claim_response(claim, self._events.get)

    def AckEventDelivery(
        self, request: flow_pb2.AckEventDeliveryRequest, context: grpc.ServicerContext
    ) -> flow_pb2.AckEventDeliveryResponse:
        cursor = self._event_deliveries.ack(
            request.endpoint,
            request.owner,
            request.from_id,
            request.through_id,
            [convert.letter(item) for item in request.dead_letters],
            release=request.release,
        )
        return flow_pb2.AckEventDeliveryResponse(cursor=cursor)

    def ListDeadLetters(
        self, request: flow_pb2.ListDeadLettersRequest, context: grpc.ServicerContext
    ) -> flow_pb2.ListDeadLettersResponse:
        rows, token = self._event_deliveries.dead_letters(
            request.endpoint, request.page_size, request.page_token
        )
        return flow_pb2.ListDeadLettersResponse(
            dead_letters=[convert.dead_letter(row) for row in rows], next_page_token=token
        )

    # Authoring (drafts, preview, sandbox).

    def PublishTemplate(
        self, request: flow_pb2.PublishTemplateRequest, context: grpc.ServicerContext
    ) -> flow_pb2.PublishTemplateResponse:
        published, previous = self._templates.publish(request.name, request.version)
        return flow_pb2.PublishTemplateResponse(
            template=convert.template(published), previous_live_version=previous or 0
        )

    def DiffTemplateVersions(
        self, request: flow_pb2.DiffTemplateVersionsRequest, context: grpc.ServicerContext
    ) -> flow_pb2.DiffTemplateVersionsResponse:
        old, new, changes = self._templates.diff(
            request.name, request.from_version, request.to_version
        )
        return authoring.diff_response(old, new, changes)

    def PreviewTemplate(
        self, request: flow_pb2.PreviewTemplateRequest, context: grpc.ServicerContext
    ) -> flow_pb2.PreviewTemplateResponse:
        version, steps = self._templates.preview(
            request.name, request.version, convert.from_struct(request.context, "context")
        )
        return authoring.preview_response(version, steps)

    def RunSandbox(
        self, request: flow_pb2.RunSandboxRequest, context: grpc.ServicerContext
    ) -> flow_pb2.RunSandboxResponse:
        decision = self._sandbox.run(authoring.sandbox_turn(request))
        return authoring.sandbox_response(decision)

    def GetFlowStats(
        self, request: flow_pb2.GetFlowStatsRequest, context: grpc.ServicerContext
    ) -> flow_pb2.GetFlowStatsResponse:
        found = self._stats.get(
            request.name,
            request.version,
            request.start_time.ToDatetime(UTC) if request.HasField("start_time") else None,
            request.end_time.ToDatetime(UTC) if request.HasField("end_time") else None,
        )
        return authoring.stats_response(found)
