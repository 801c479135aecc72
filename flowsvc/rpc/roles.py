"""Who may call what: each FlowService RPC and the roles whose tokens may call it.

admin: everything (templates, the sweep, and all below). client: what other services steer and
read (conversations, sends, results, events, dead letters). gateway: what the webhook gateway
does (handing messages over, the outbox, delivery statuses, delivering events to webhook
endpoints). Reflection answers any valid token; health needs none.
"""

from __future__ import annotations

from grpc_reflection.v1alpha import reflection

ADMIN, CLIENT, GATEWAY = "admin", "client", "gateway"
ROLES = (ADMIN, CLIENT, GATEWAY)
SERVICE = "menuflow.v1.FlowService"

_ADMIN = frozenset({ADMIN})
_CLIENT = frozenset({ADMIN, CLIENT})
_GATEWAY = frozenset({ADMIN, GATEWAY})

# Every FlowService RPC has a line here (tests/test_roles.py walks the service against it); one
# without a line is admin-only.
ALLOWED: dict[str, frozenset[str]] = {
    "CreateTemplate": _ADMIN,
    "GetTemplate": _ADMIN,
    "ListTemplates": _ADMIN,
    "UpdateTemplate": _ADMIN,
    "DeleteTemplate": _ADMIN,
    "ValidateTemplate": _ADMIN,
    "ListTemplateVersions": _ADMIN,
    "ImportTemplates": _ADMIN,
    "SweepExpired": _ADMIN,
    "StartConversation": _CLIENT,
    "GetConversation": _CLIENT,
    "ListConversations": _CLIENT,
    "EndConversation": _CLIENT,
    "UpdateConversation": _CLIENT,
    "SetLanguage": _CLIENT,
    "SendMessage": _CLIENT,
    "HandOff": _CLIENT,
    "Resume": _CLIENT,
    "GetResult": _CLIENT,
    "ListResults": _CLIENT,
    "WatchEvents": _CLIENT,
    "ListEvents": _CLIENT,
    "ListDeadLetters": _CLIENT,
    "HandleMessage": _GATEWAY,
    "HandleMessages": _GATEWAY,
    "ClaimOutbox": _GATEWAY,
    "AckOutbox": _GATEWAY,
    "RecordStatus": _GATEWAY,
    "GrantSendSlots": _GATEWAY,
    "ClaimCalls": _GATEWAY,
    "FinishCall": _GATEWAY,
    "ClaimEventDelivery": _GATEWAY,
    "AckEventDelivery": _GATEWAY,
    # Authoring (drafts, preview, sandbox).
    "PublishTemplate": _ADMIN,
    "DiffTemplateVersions": _ADMIN,
    "PreviewTemplate": _ADMIN,
    "RunSandbox": _ADMIN,
    # Where customers drop off (from the event log, which clients read too).
    "GetFlowStats": _CLIENT,
}
# Reflection maps the API: any caller with a valid token may read the map.
_ANY_ROLE_SERVICES = (reflection.SERVICE_NAME, "grpc.reflection.v1.ServerReflection")


def allowed(method: str) -> frozenset[str]:
    """The roles that may call `method` ("/package.Service/Method")."""
    service, _, name = method.strip("/").rpartition("/")
    if service == SERVICE:
        return ALLOWED.get(name, _ADMIN)
    if service in _ANY_ROLE_SERVICES:
        return frozenset(ROLES)
    return _ADMIN
