"""Requests as flowsvc accepts them: one that does not parse (corrupt bytes, invalid UTF-8, nesting
past protobuf's limit) is INVALID_ARGUMENT, where grpc would answer UNKNOWN; and NUL characters,
which PostgreSQL can store neither in text nor in JSONB, arrive as U+FFFD on every database."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message

from flowsvc.rpc import Continuation, abort, call

NUL, REPLACEMENT = "\x00", "\ufffd"


class ParseRequests(grpc.aio.ServerInterceptor):
    """Parses unary requests itself, so that a parse failure gets a status that says so."""

    def __init__(self) -> None:
        self._handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}

    async def intercept_service(
        self, continuation: Continuation, details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        wrapped = self._handlers.get(details.method)
        if wrapped is None:
            wrapped = _parsing(await continuation(details))
            if wrapped is not None:  # only real methods: any name can be sent
                self._handlers[details.method] = wrapped  # handlers never change: wrap once
        return wrapped


def _parsing(
    handler: grpc.RpcMethodHandler[Any, Any] | None,
) -> grpc.RpcMethodHandler[Any, Any] | None:
    if (
        handler is None
        or handler.request_streaming
        or handler.response_streaming
        or handler.request_deserializer is None
        or handler.unary_unary is None
    ):
        return handler
    parse = handler.request_deserializer
    behavior = handler.unary_unary

    async def parsed(raw: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            request = parse(raw)
        except DecodeError as error:
            await abort(
                context, grpc.StatusCode.INVALID_ARGUMENT, f"the request does not parse: {error}"
            )
        if b"\x00" in raw:  # rare: no NUL byte on the wire, no NUL character in any string
            replace_nul(request)
        return await call(behavior, request, context)

    return grpc.unary_unary_rpc_method_handler(
        parsed, response_serializer=handler.response_serializer
    )


def _clean(text: str) -> str:
    return text.replace(NUL, REPLACEMENT) if NUL in text else text


def replace_nul(message: Message) -> None:
    """Replace NUL with U+FFFD in every string of `message`, map keys included, in place."""
    for field, value in message.ListFields():
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            _replace_in_map(field.message_type, value)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            for item in value if field.is_repeated else (value,):
                replace_nul(item)
        elif field.type == FieldDescriptor.TYPE_STRING:
            if field.is_repeated:
                value[:] = [_clean(item) for item in value]
            elif NUL in value:
                setattr(message, field.name, _clean(value))


def _replace_in_map(entry: Descriptor, entries: Any) -> None:
    holds_messages = entry.fields_by_name["value"].type == FieldDescriptor.TYPE_MESSAGE
    for key in list(entries):
        clean = _clean(key) if isinstance(key, str) else key
        if clean != key:
            if holds_messages:
                entries[clean].CopyFrom(entries[key])
            else:
                entries[clean] = entries[key]
            del entries[key]
        if holds_messages:
            replace_nul(entries[clean])
        elif isinstance(entries[clean], str):
            entries[clean] = _clean(entries[clean])
