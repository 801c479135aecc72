"""Bare ceilings measured in the same run as `make bench`'s figures, so each figure is a ratio.

`python -m bench.ceilings webhook --port N --secret S`: a uvicorn endpoint (uvloop, httptools, no
access log, like the gateway) that only reads the body and checks X-Hub-Signature-256 with the
gateway's own check. `python -m bench.ceilings echo --port N`: grpc.aio's server running a plain
function on 8 pool threads (as flowsvc runs its methods) echoing unary calls; `echo_rate()`
drives it with 50 calls in flight from a grpc.aio client in the calling process, as the gateway
calls flowsvc.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from bench.procstat import quantile
from gateway import signature

ECHO = "/bench.Echo/Echo"


def webhook_app(secret: str) -> Starlette:
    async def receive(request: Request) -> Response:
        body = await request.body()
        if not signature.is_valid(secret, body, request.headers.getlist("x-hub-signature-256")):
            return PlainTextResponse("Invalid signature", status_code=401)
        return PlainTextResponse("OK")

    return Starlette(routes=[Route("/webhook", receive, methods=["POST"])])


def echo_server(port: int) -> None:
    def echo(request: bytes, context: Any) -> bytes:
        return request

    async def serve() -> None:
        # A plain function: grpc.aio runs it on the pool, as flowsvc's methods run.
        server = grpc.aio.server(migration_thread_pool=ThreadPoolExecutor(8))
        handler = grpc.method_handlers_generic_handler(
            "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
        )
        server.add_generic_rpc_handlers((handler,))
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        await server.wait_for_termination()

    asyncio.run(serve())


async def echo_rate(address: str, seconds: float, in_flight: int = 50) -> dict[str, float]:
    """Unary echo calls/s and latency with `in_flight` calls outstanding."""
    async with grpc.aio.insecure_channel(address) as channel:
        await channel.channel_ready()
        call = channel.unary_unary(ECHO)
        payload = b"x" * 200
        latencies: list[float] = []
        deadline = time.monotonic() + seconds

        async def worker() -> None:
            while time.monotonic() < deadline:
                began = time.perf_counter()
                await call(payload)
                latencies.append(time.perf_counter() - began)

        began = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(in_flight)))
        elapsed = time.monotonic() - began
    return {
        "calls": len(latencies),
        "per_second": len(latencies) / elapsed,
        "p50_ms": quantile(latencies, 0.5) * 1000,
        "p99_ms": quantile(latencies, 0.99) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="bare ceilings for make bench")
    parser.add_argument("what", choices=["webhook", "echo"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret", default="")
    args = parser.parse_args()
    if args.what == "echo":
        echo_server(args.port)
        return
    uvicorn.run(
        webhook_app(args.secret),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=None,
        server_header=False,
    )


if __name__ == "__main__":
    main()
