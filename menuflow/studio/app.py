"""The studio's Starlette app: the page (static files) and a small JSON API over the admin's
FlowClient: templates and their versions, a version's preview with its flow stats, and one
sandbox turn."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypedDict

from google.protobuf import json_format
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from menuflow.call_results import sandbox_call_result
from menuflow.client import AsyncFlowClient, Connection, MenuflowError, to_dict
from menuflow.v1 import flow_pb2

STATIC = Path(__file__).parent / "static"


class State(TypedDict):
    flow: AsyncFlowClient


async def templates(request: Request) -> JSONResponse:
    """Every template with its versions, newest first: which is live, which are drafts."""
    flow: AsyncFlowClient = request.state.flow
    found = []
    for template in await flow.list_templates():
        versions = await flow.list_template_versions(template.name)
        found.append(
            {
                "name": template.name,
                "live_version": template.live_version,
                "versions": [
                    {"version": v.version, "live": v.live, "draft": v.draft} for v in versions
                ],
            }
        )
    return JSONResponse(found)


async def preview(request: Request) -> JSONResponse:
    flow: AsyncFlowClient = request.state.flow
    name = request.query_params.get("name", "")
    version = int(request.query_params.get("version") or 0)
    shown = await flow.preview_template(name, version)
    # Where customers dropped off in that version over the last week, beside its steps.
    stats = await flow.flow_stats(name, shown.template.version)
    return JSONResponse({**to_dict(shown), "stats": to_dict(stats)})


async def turn(request: Request) -> JSONResponse:
    """One sandbox turn: {template, version, conversation?, text? | selection? | call_result? |
    start?}; call_result in menuflow/call_results.py's shape (a sandbox runs no call)."""
    flow: AsyncFlowClient = request.state.flow
    body: dict[str, Any] = await request.json()
    sandbox = flow_pb2.RunSandboxRequest(
        template_name=str(body.get("template", "")),
        version=int(body.get("version") or 0),
        contact_name="Studio",
    )
    if body.get("conversation"):
        json_format.ParseDict(body["conversation"], sandbox.conversation)
    if body.get("selection"):
        json_format.ParseDict(body["selection"], sandbox.selection)
    elif body.get("call_result") is not None:
        try:
            sandbox.call_result.CopyFrom(sandbox_call_result(body["call_result"]))
        except ValueError as error:
            return JSONResponse(
                {"error": "INVALID_ARGUMENT", "message": f"call_result: {error}", "violations": []},
                status_code=400,
            )
    elif body.get("text"):
        sandbox.text = str(body["text"])
    return JSONResponse(to_dict(await flow.run_sandbox(sandbox)))


async def failed(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, MenuflowError)
    return JSONResponse(
        {
            "error": error.code.name,
            "message": error.message,
            "violations": [[v.field, v.description] for v in error.violations],
        },
        status_code=400,
    )


def create_app(connection: Connection) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        async with AsyncFlowClient(connection) as flow:
            yield {"flow": flow}

    return Starlette(
        routes=[
            Route("/api/templates", templates),
            Route("/api/preview", preview),
            Route("/api/turn", turn, methods=["POST"]),
            Mount("/", StaticFiles(directory=STATIC, html=True)),
        ],
        lifespan=lifespan,
        exception_handlers={MenuflowError: failed},
    )
