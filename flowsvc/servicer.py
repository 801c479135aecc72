"""The FlowService servicer: translates protobuf to service calls and back, nothing else."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from flowsvc import convert
from flowsvc.errors import (
    AlreadyExists,
    FailedPrecondition,
    FlowError,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
)
from flowsvc.service import messagelog
from flowsvc.service.conversations import Conversations
from flowsvc.service.deliveries import Deliveries
from flowsvc.service.results import Results
from flowsvc.service.retention import Retention
from flowsvc.service.templates import ImportAction, Templates
from flowsvc.store.db import UNREACHABLE
from menuflow.v1 import flow_pb2, flow_pb2_grpc

T = TypeVar("T")
log = logging.getLogger("flowsvc.calls")
INTERNAL = "internal error: flowsvc logged the details"
UNAVAILABLE = "the database cannot be reached right now; try again"
# These log their own failures, with the message's fields.
SELF_LOGGING: frozenset[Callable[..., object]] = frozenset(
    {messagelog.handle, messagelog.handle_many, messagelog.start}
)
MAX_BATCH = 100  # messages in one HandleMessages call

STATUS_CODES: dict[type[FlowError], int] = {
    InvalidArgument: code_pb2.INVALID_ARGUMENT,
    NotFound: code_pb2.NOT_FOUND,
    AlreadyExists: code_pb2.ALREADY_EXISTS,
    FailedPrecondition: code_pb2.FAILED_PRECONDITION,
    ResourceExhausted: code_pb2.RESOURCE_EXHAUSTED,
}
IMPORT_ACTIONS = {
    ImportAction.CREATED: flow_pb2.IMPORT_ACTION_CREATED,
    ImportAction.UPDATED: flow_pb2.IMPORT_ACTION_UPDATED,
    ImportAction.UNCHANGED: flow_pb2.IMPORT_ACTION_UNCHANGED,
}
ACTIVE_FILTERS = {
    flow_pb2.ACTIVE_FILTER_UNSPECIFIED: None,
    flow_pb2.ACTIVE_FILTER_ACTIVE: True,
    flow_pb2.ACTIVE_FILTER_INACTIVE: False,
}


# A status travels in HTTP/2 trailers, and clients refuse trailers over 8 KiB: the message and the
# details each get a share of that, and what does not fit is counted instead of sent.
MAX_MESSAGE_CHARS = 1500
MAX_DETAILS_BYTES = 4000


def error_status(error: FlowError) -> grpc.Status:
    """A FlowError as a gRPC status; INVALID_ARGUMENT carries a google.rpc.BadRequest."""
    return rpc_status.to_status(status_message(error))


def status_message(error: Exception) -> status_pb2.Status:
    """The google.rpc.Status a call failing with `error` answers: a FlowError's own code (and
    BadRequest); UNAVAILABLE when the database cannot be reached; otherwise INTERNAL, whose
    exception text (it may quote a customer's words) stays in our log."""
    if isinstance(error, UNREACHABLE):
        return status_pb2.Status(code=code_pb2.UNAVAILABLE, message=UNAVAILABLE)
    if not isinstance(error, FlowError):
        return status_pb2.Status(code=code_pb2.INTERNAL, message=INTERNAL)
    message = str(error)
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[: MAX_MESSAGE_CHARS - 1] + "…"
    status = status_pb2.Status(code=STATUS_CODES[type(error)], message=message)
    if isinstance(error, InvalidArgument) and error.violations:
        request = error_details_pb2.BadRequest()
        for index, (field, reason) in enumerate(error.violations):
            request.field_violations.add(field=field[:300], description=reason[:500])
            if request.ByteSize() > MAX_DETAILS_BYTES:
                del request.field_violations[-1]
                request.field_violations.add(
                    field=field[:300],
                    description=f"and {len(error.violations) - index} more problems",
                )
                break
        detail = any_pb2.Any()
        detail.Pack(request)
        status.details.append(detail)
    return status


class FlowServicer(flow_pb2_grpc.FlowServiceServicer):
    """FlowService over gRPC. Each call runs on one of the server's worker threads, and a service
    call is blocking (one DB transaction each): the thread waits on the database, not a loop."""

    def __init__(
        self,
        templates: Templates,
        conversations: Conversations,
        results: Results,
        deliveries: Deliveries,
        retention: Retention,
    ) -> None:
        self._templates = templates
        self._conversations = conversations
        self._results = results
        self._deliveries = deliveries
        self._retention = retention

    def _call(self, context: grpc.ServicerContext, function: Callable[..., T], *args: object) -> T:
        try:
            return function(*args)
        except Exception as error:
            if function not in SELF_LOGGING:
                if isinstance(error, UNREACHABLE):
                    # Retryable for the caller: the gateway answers Meta non-200; Meta redelivers.
                    log.warning(
                        "database unavailable",
                        extra={
                            "call": function.__qualname__,
                            "error": type(getattr(error, "orig", None) or error).__name__,
                        },
                    )
                elif not isinstance(error, FlowError):
                    log.exception("call failed", extra={"call": function.__qualname__})
            context.abort_with_status(rpc_status.to_status(status_message(error)))
            raise  # abort_with_status raises; this keeps type checkers informed

    def CreateTemplate(
        self, request: flow_pb2.CreateTemplateRequest, context: grpc.ServicerContext
    ) -> flow_pb2.CreateTemplateResponse:
        definition = convert.template_definition(request.template)
        created = self._call(context, self._templates.create, definition)
        return flow_pb2.CreateTemplateResponse(template=convert.template(created))

    def GetTemplate(
        self, request: flow_pb2.GetTemplateRequest, context: grpc.ServicerContext
    ) -> flow_pb2.GetTemplateResponse:
        found = self._call(context, self._templates.get, request.name, request.version)
        return flow_pb2.GetTemplateResponse(template=convert.template(found))

    def ListTemplates(
        self, request: flow_pb2.ListTemplatesRequest, context: grpc.ServicerContext
    ) -> flow_pb2.ListTemplatesResponse:
        page = self._call(
            context,
            self._templates.list,
            ACTIVE_FILTERS.get(request.active_filter),
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
        updated, changed = self._call(
            context,
            self._templates.update,
            convert.template_definition(request.template),
            tuple(request.update_mask.paths),
            request.expected_version,
        )
        return flow_pb2.UpdateTemplateResponse(template=convert.template(updated), changed=changed)

    def DeleteTemplate(
        self, request: flow_pb2.DeleteTemplateRequest, context: grpc.ServicerContext
    ) -> flow_pb2.DeleteTemplateResponse:
        versions, ended = self._call(context, self._templates.delete, request.name)
        return flow_pb2.DeleteTemplateResponse(deleted_versions=versions, ended_conversations=ended)

    def ValidateTemplate(
        self, request: flow_pb2.ValidateTemplateRequest, context: grpc.ServicerContext
    ) -> flow_pb2.ValidateTemplateResponse:
        definition = convert.template_definition(request.template)
        kind = self._call(context, self._templates.validate, definition)
        return flow_pb2.ValidateTemplateResponse(type=convert.TEMPLATE_TYPES[kind])

    def ListTemplateVersions(
        self, request: flow_pb2.ListTemplateVersionsRequest, context: grpc.ServicerContext
    ) -> flow_pb2.ListTemplateVersionsResponse:
        page = self._call(
            context, self._templates.versions, request.name, request.page_size, request.page_token
        )
        return flow_pb2.ListTemplateVersionsResponse(
            versions=[convert.template(item) for item in page.items],
            next_page_token=page.next_page_token,
        )

    def ImportTemplates(
        self, request: flow_pb2.ImportTemplatesRequest, context: grpc.ServicerContext
    ) -> flow_pb2.ImportTemplatesResponse:
        definitions = [convert.template_definition(item) for item in request.templates]
        imported = self._call(context, self._templates.import_, definitions)
        return flow_pb2.ImportTemplatesResponse(
            templates=[
                flow_pb2.ImportedTemplate(
                    name=item.name, version=item.version, action=IMPORT_ACTIONS[item.action]
                )
                for item in imported
            ]
        )

    def HandleMessage(
        self, request: flow_pb2.HandleMessageRequest, context: grpc.ServicerContext
    ) -> flow_pb2.HandleMessageResponse:
        handled = self._call(
            context,
            messagelog.handle,
            self._conversations.handle,
            convert.inbound(request.message),
            request.lease_owner,
            request.lease_seconds,
        )
        return convert.handle_response(handled)

    def HandleMessages(
        self, request: flow_pb2.HandleMessagesRequest, context: grpc.ServicerContext
    ) -> flow_pb2.HandleMessagesResponse:
        if len(request.messages) > MAX_BATCH:
            error = InvalidArgument(
                "too many messages", [("messages", f"at most {MAX_BATCH} in one call")]
            )
            context.abort_with_status(error_status(error))
        outcomes = self._call(
            context,
            messagelog.handle_many,
            self._conversations.handle_many,
            [convert.inbound(message) for message in request.messages],
            request.lease_owner,
            request.lease_seconds,
        )
        return flow_pb2.HandleMessagesResponse(
            results=[
                flow_pb2.HandleMessagesResult(error=status_message(handled))
                if isinstance(handled, Exception)
                else flow_pb2.HandleMessagesResult(handled=convert.handle_response(handled))
                for handled in outcomes
            ]
        )

    def StartConversation(
        self, request: flow_pb2.StartConversationRequest, context: grpc.ServicerContext
    ) -> flow_pb2.StartConversationResponse:
        handled = self._call(
            context,
            messagelog.start,
            self._conversations.start,
            request.customer.phone_number_id,
            request.customer.phone_number,
            request.template_name,
            convert.from_struct(request.context),
            request.request_id,
            request.lease_owner,
            request.lease_seconds,
        )
        return flow_pb2.StartConversationResponse(
            conversation=convert.conversation(handled.conversation),
            messages=[convert.outbox_message(row) for row in handled.messages],
        )

    def GetConversation(
        self, request: flow_pb2.GetConversationRequest, context: grpc.ServicerContext
    ) -> flow_pb2.GetConversationResponse:
        found = self._call(
            context,
            self._conversations.get,
            request.customer.phone_number_id,
            request.customer.phone_number,
        )
        return flow_pb2.GetConversationResponse(conversation=convert.conversation(found))

    def ListConversations(
        self, request: flow_pb2.ListConversationsRequest, context: grpc.ServicerContext
    ) -> flow_pb2.ListConversationsResponse:
        items, token = self._call(
            context,
            self._conversations.list,
            request.flow,
            request.step,
            request.phone_number_id,
            request.page_size,
            request.page_token,
        )
        return flow_pb2.ListConversationsResponse(
            conversations=[convert.conversation(item) for item in items], next_page_token=token
        )

    def EndConversation(
        self, request: flow_pb2.EndConversationRequest, context: grpc.ServicerContext
    ) -> flow_pb2.EndConversationResponse:
        ended = self._call(
            context,
            self._conversations.end,
            request.customer.phone_number_id,
            request.customer.phone_number,
        )
        return flow_pb2.EndConversationResponse(conversation=convert.conversation(ended))

    def SweepExpired(
        self, request: flow_pb2.SweepExpiredRequest, context: grpc.ServicerContext
    ) -> flow_pb2.SweepExpiredResponse:
        expired, old = self._call(context, self._conversations.sweep)
        purged = self._call(context, self._retention.sweep)
        return flow_pb2.SweepExpiredResponse(
            expired_conversations=expired,
            processed_messages=old,
            results=purged.results,
            outbox_messages=purged.outbox_messages,
        )

    def GetResult(
        self, request: flow_pb2.GetResultRequest, context: grpc.ServicerContext
    ) -> flow_pb2.GetResultResponse:
        found = self._call(context, self._results.get, request.reference)
        return flow_pb2.GetResultResponse(result=convert.result(found))

    def ListResults(
        self, request: flow_pb2.ListResultsRequest, context: grpc.ServicerContext
    ) -> flow_pb2.ListResultsResponse:
        rows, token = self._call(
            context,
            self._results.list,
            request.template_name,
            request.customer.phone_number_id,
            request.customer.phone_number,
            request.page_size,
            request.page_token,
        )
        return flow_pb2.ListResultsResponse(
            results=[convert.result(row) for row in rows], next_page_token=token
        )

    def ClaimOutbox(
        self, request: flow_pb2.ClaimOutboxRequest, context: grpc.ServicerContext
    ) -> flow_pb2.ClaimOutboxResponse:
        messages, pending = self._call(
            context,
            self._deliveries.claim,
            request.owner,
            request.max_messages,
            request.lease_seconds,
        )
        return flow_pb2.ClaimOutboxResponse(
            messages=[convert.outbox_message(row) for row in messages], pending=pending
        )

    def AckOutbox(
        self, request: flow_pb2.AckOutboxRequest, context: grpc.ServicerContext
    ) -> flow_pb2.AckOutboxResponse:
        try:
            acks = [convert.ack(item) for item in request.acks]
        except FlowError as error:
            context.abort_with_status(error_status(error))
            raise
        lost = self._call(context, self._deliveries.ack, request.owner, acks)
        return flow_pb2.AckOutboxResponse(lease_lost_ids=lost)

    def RecordStatus(
        self, request: flow_pb2.RecordStatusRequest, context: grpc.ServicerContext
    ) -> flow_pb2.RecordStatusResponse:
        matched, status = self._call(
            context,
            self._deliveries.record_status,
            request.wa_message_id,
            convert.STATUS_NAMES.get(request.status, ""),
            [(e.code, e.title, e.details) for e in request.errors],
        )
        return flow_pb2.RecordStatusResponse(
            matched=matched, delivery_status=convert.DELIVERY_STATUSES.get(status, 0)
        )
