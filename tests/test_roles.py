"""Tokens with roles over a real gRPC server: each FlowService RPC answers the roles rpc.roles
allows and refuses the others with PERMISSION_DENIED (before parsing the request, changing
nothing); a token flowsvc does not know stays UNAUTHENTICATED; reflection answers any valid
token; FLOWSVC_TOKEN keeps meaning an admin's token."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import grpc
import pytest

from flowsvc.rpc import roles
from flowsvc.server import Server
from flowsvc.settings import Settings, SettingsError
from menuflow.v1 import flow_pb2, flow_pb2_grpc
from tests.database import row_counts
from tests.servers import running_flowsvc

SERVICE = flow_pb2.DESCRIPTOR.services_by_name["FlowService"]
TOKENS = {"admin": "admin-token-1", "client": "client-token-2", "gateway": "gateway-token-3"}
README = Path(__file__).parents[1] / "README.md"
SECURITY = Path(__file__).parents[1] / "SECURITY.md"


@pytest.fixture(scope="module")
def role_settings() -> dict[str, object]:
    return {
        "auth_token": TOKENS["admin"],
        "tokens": (("client", TOKENS["client"]), ("gateway", TOKENS["gateway"])),
    }


@pytest.fixture(scope="module")
def guarded(migrated_database: str, role_settings: dict[str, object]) -> Iterator[Server]:
    """One flowsvc for the module's calls: which roles a call answers is the same on any server
    (the table is emptied before each test all the same: database_url). A flowsvc per test cost
    more than the call it checked, times every RPC and role."""
    settings = Settings(
        database_url=migrated_database,
        listen="127.0.0.1:0",
        grace_seconds=1,
        **role_settings,  # type: ignore[arg-type]
    )
    with running_flowsvc(settings) as server:
        yield server


@pytest.fixture(scope="module")
def channel(guarded: Server) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{guarded.port}") as channel:
        yield channel


def call(channel: grpc.Channel, method: str, token: str) -> grpc.StatusCode:
    """Any FlowService method with an empty request; the status code it answers (a stream that
    opens answers OK, and is cancelled)."""
    if SERVICE.methods_by_name[method].server_streaming:
        stream = channel.unary_stream(
            f"/{SERVICE.full_name}/{method}",
            request_serializer=lambda raw: raw,
            response_deserializer=lambda raw: raw,
        )(b"", metadata=(("authorization", f"Bearer {token}"),), timeout=10)
        stream.initial_metadata()
        if stream.is_active():  # type: ignore[attr-defined]
            stream.cancel()
            return grpc.StatusCode.OK
        return stream.code()  # type: ignore[no-any-return]
    invoke = channel.unary_unary(
        f"/{SERVICE.full_name}/{method}",
        request_serializer=lambda raw: raw,
        response_deserializer=lambda raw: raw,
    )
    try:
        invoke(b"", metadata=(("authorization", f"Bearer {token}"),), timeout=10)
    except grpc.RpcError as error:
        return error.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def test_every_rpc_has_a_line_in_the_roles_table() -> None:
    assert sorted(m.name for m in SERVICE.methods) == sorted(roles.ALLOWED)
    assert all("admin" in allowed for allowed in roles.ALLOWED.values())


@pytest.mark.parametrize("role", roles.ROLES)
@pytest.mark.parametrize("method", [m.name for m in SERVICE.methods])
def test_each_rpc_answers_the_roles_it_allows_and_refuses_the_others(
    channel: grpc.Channel, database_url: str, method: str, role: str
) -> None:
    before = row_counts(database_url)

    code = call(channel, method, TOKENS[role])

    if role in roles.ALLOWED[method]:
        assert code not in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED)
    else:
        assert code == grpc.StatusCode.PERMISSION_DENIED
        assert row_counts(database_url) == before


def test_the_refusal_names_the_role_needed(channel: grpc.Channel) -> None:
    stub = flow_pb2_grpc.FlowServiceStub(channel)
    with pytest.raises(grpc.RpcError) as caught:
        stub.ClaimOutbox(
            flow_pb2.ClaimOutboxRequest(owner="thief"),
            metadata=(("authorization", f"Bearer {TOKENS['client']}"),),
        )
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert caught.value.details() == (
        "a client token may not call ClaimOutbox: it needs a token of the role admin or gateway "
        "(see SECURITY.md)"
    )


def test_an_unknown_token_is_still_unauthenticated(channel: grpc.Channel) -> None:
    assert call(channel, "ListResults", "client-token-2x") == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("role", roles.ROLES)
def test_reflection_answers_a_valid_token_of_any_role(channel: grpc.Channel, role: str) -> None:
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    answers = stub.ServerReflectionInfo(
        iter([request]), metadata=(("authorization", f"Bearer {TOKENS[role]}"),), timeout=10
    )
    names = [s.name for a in answers for s in a.list_services_response.service]
    assert SERVICE.full_name in names


def test_flowsvc_token_alone_is_an_admin_token(settings: Settings) -> None:
    """Deployments from before roles gave the gateway the one shared token: it still works."""
    with running_flowsvc(replace(settings, auth_token="shared")) as server:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            assert call(channel, "ClaimOutbox", "shared") == grpc.StatusCode.INVALID_ARGUMENT
            assert call(channel, "ListTemplates", "shared") == grpc.StatusCode.OK


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("client:abc", (("client", "abc"),)),
        (" client:abc , gateway:d:e ", (("client", "abc"), ("gateway", "d:e"))),
        ("", ()),
    ],
)
def test_flowsvc_tokens_are_role_token_pairs(raw: str, expected: object) -> None:
    assert Settings.from_env({"FLOWSVC_TOKENS": raw}).tokens == expected


@pytest.mark.parametrize(
    "environ",
    [
        {"FLOWSVC_TOKENS": "root:abc"},
        {"FLOWSVC_TOKENS": "client:"},
        {"FLOWSVC_TOKENS": "abc"},
        {"FLOWSVC_TOKENS": "client:same,gateway:same"},
        {"FLOWSVC_TOKEN": "same", "FLOWSVC_TOKENS": "client:same"},
    ],
)
def test_bad_flowsvc_tokens_stop_flowsvc_naming_the_variable(environ: dict[str, str]) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(environ)
    assert "FLOWSVC_TOKEN" in str(caught.value)
    assert "same" not in str(caught.value).replace("the same token", "")  # no secret echoed


def test_tokens_are_never_shown() -> None:
    shown = repr(Settings.from_env({"FLOWSVC_TOKENS": "client:s3cret-client"}))
    assert "s3cret" not in shown


@pytest.mark.parametrize("document", [README, SECURITY], ids=["README", "SECURITY"])
def test_the_documented_table_is_the_roles_table(document: Path) -> None:
    """The docs' "which RPC needs which role" table says what rpc.roles enforces."""
    rows = re.findall(r"^ *\| `(\w+)` \| ([a-z, ]+) \|$", document.read_text(), re.MULTILINE)
    documented = {name: frozenset(r.strip() for r in who.split(",")) for name, who in rows}
    assert documented == roles.ALLOWED
