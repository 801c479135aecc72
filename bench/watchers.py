"""Event watchers for `make bench --watchers N`: N WatchEvents streams on one asyncio loop, each
from now on, each event's latency taken from its commit time (Event.create_time, set by flowsvc
just before COMMIT) to its arrival, and the responses counted (each a write of flowsvc's);
figures written as JSON on SIGTERM.

    python -m bench.watchers --target 127.0.0.1:50051 --streams 100 --out watchers.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import time
from pathlib import Path

import grpc

from menuflow.v1 import flow_pb2, flow_pb2_grpc


async def watch(
    stub: flow_pb2_grpc.FlowServiceAsyncStub,
    wanted: flow_pb2.EventFilter,
    latencies: list[float],
    counts: list[int],
    responses: list[int],
    ready: asyncio.Event,
) -> None:
    stream = stub.WatchEvents(flow_pb2.WatchEventsRequest(filter=wanted))
    await stream.initial_metadata()
    ready.set()
    try:
        async for response in stream:
            arrived = time.time()
            responses.append(len(response.events))
            for event in response.events:
                stamp = event.create_time
                latencies.append(arrived - (stamp.seconds + stamp.nanos / 1e9))
                counts.append(event.id)
    except grpc.aio.AioRpcError as error:
        if error.code() != grpc.StatusCode.CANCELLED:
            raise


async def main(args: argparse.Namespace) -> None:
    wanted = flow_pb2.EventFilter(
        types=[flow_pb2.EventType.Value(f"EVENT_TYPE_{t.upper()}") for t in args.types]
    )
    latencies: list[float] = []
    counts: list[int] = []
    responses: list[int] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with grpc.aio.insecure_channel(args.target) as channel:
        stub: flow_pb2_grpc.FlowServiceAsyncStub = flow_pb2_grpc.FlowServiceStub(channel)
        readies = [asyncio.Event() for _ in range(args.streams)]
        tasks = [
            asyncio.create_task(watch(stub, wanted, latencies, counts, responses, ready))
            for ready in readies
        ]
        await asyncio.gather(*(ready.wait() for ready in readies))
        args.ready.write_text("ready")
        await stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    ordered = sorted(latencies)
    figures = {
        "streams": args.streams,
        "events": len(ordered),
        "distinct": len(set(counts)),
        "responses": len(responses),
        "p50": statistics.median(ordered) if ordered else None,
        "p99": ordered[int(len(ordered) * 0.99)] if ordered else None,
        "max": ordered[-1] if ordered else None,
    }
    args.out.write_text(json.dumps(figures))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", required=True)
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--types", nargs="*", default=["step_entered"])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--ready", type=Path, required=True)
    asyncio.run(main(parser.parse_args()))
