"""`make run`: flowsvc, then the gateway once flowsvc serves, then one line saying what to try.

Starting the gateway only after flowsvc's health check answers SERVING keeps its first lines free
of `pump.claim_error UNAVAILABLE` warnings. In dev mode without CALL_ENDPOINTS, the business
stand-in (menuflow.business_standin) answers the order flow's address check and the booking
flow's free times on loopback.
Either service stopping stops the other; SIGINT or SIGTERM stops both.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from types import FrameType

import httpx

from menuflow.business_standin import BusinessStandin
from menuflow.connection import DEFAULT_LISTEN, FlowsvcConnection, is_serving, local_target


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def _wait_for_flowsvc(flowsvc: subprocess.Popen[bytes], client: FlowsvcConnection) -> bool:
    with client.channel() as channel:
        while flowsvc.poll() is None:
            if is_serving(channel, timeout=1):
                return True
    return False


def _wait_for_gateway(gateway: subprocess.Popen[bytes], url: str) -> bool:
    while gateway.poll() is None:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    return False


def main() -> int:
    env = dict(os.environ)
    # Without Meta's access token there is nothing to send with: dev mode prints replies instead.
    env.setdefault("GATEWAY_DEV_MODE", "0" if env.get("META_ACCESS_TOKEN") else "1")
    env.setdefault("FLOWSVC_TARGET", local_target(env.get("FLOWSVC_LISTEN") or DEFAULT_LISTEN))
    client = FlowsvcConnection.from_env(env)
    host = env.get("GATEWAY_LISTEN_HOST") or "127.0.0.1"
    host = "127.0.0.1" if host in ("0.0.0.0", "::", "[::]") else host
    base = f"http://{host}:{env.get('GATEWAY_PORT') or 8080}"

    def stop(signum: int, _: FrameType | None) -> None:
        raise SystemExit(0)  # asked to stop: both services are stopped in `finally`

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    processes: list[subprocess.Popen[bytes]] = []
    stand_in = ""
    dev_mode = env["GATEWAY_DEV_MODE"].strip().lower() in ("1", "true", "yes", "on")
    if dev_mode and not env.get("CALL_ENDPOINTS"):
        business = BusinessStandin().serve()
        env["CALL_ENDPOINTS"] = business.endpoint_setting()
        stand_in = f" The address_check and slots stand-in answers calls on {business.url}."
    try:
        flowsvc = subprocess.Popen([sys.executable, "-m", "flowsvc"], env=env)
        processes.append(flowsvc)
        if not _wait_for_flowsvc(flowsvc, client):
            return flowsvc.returncode or 1
        gateway = subprocess.Popen([sys.executable, "-m", "gateway"], env=env)
        processes.append(gateway)
        if not _wait_for_gateway(gateway, f"{base}/readyz"):
            return gateway.returncode or 1
        print(
            f"ready: flowsvc on {client.target}, gateway on {base}. Try `make chat` (be a "
            "customer) or `make post-sample` (a webhook as Meta sends it) in another terminal; "
            f"Ctrl-C stops both.{stand_in}",
            flush=True,
        )
        while all(process.poll() is None for process in processes):
            time.sleep(0.5)
        return next(p.returncode for p in processes if p.returncode is not None) or 1
    finally:
        _stop(processes)


if __name__ == "__main__":
    sys.exit(main())
