"""The whole system on loopback: PostgreSQL, the Graph API stand-in behind a drop proxy, two
flowsvc replicas, two gateways and the business's API stand-in their call steps ask; started
once, faulted by the scenarios, stopped at the end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from chaos import processes
from chaos.customers import TIMER_TEMPLATE
from chaos.hook_endpoint import HookEndpoint
from chaos.postgres import Postgres
from chaos.processes import Service
from chaos.proxy import DropProxy
from chaos.watcher import Watcher
from flowsvc.seed import seed
from flowsvc.service.templates import TemplateDefinition, Templates
from flowsvc.store.db import create_db_engine, create_sessionmaker
from menuflow.business_standin import BusinessStandin
from tests.database import migrate
from tests.servers import free_port


class System:
    def __init__(self, folder: Path, *, graph_timeout: int = 5) -> None:
        self.folder = folder
        self.postgres = Postgres(free_port())
        standin_port = free_port()
        g1, g2 = free_port(), free_port()
        self.webhook_urls = [f"http://127.0.0.1:{p}/webhook" for p in (g1, g2)]
        # Like Meta, the stand-in follows each accepted message with a "sent" status webhook.
        self.standin = processes.standin(standin_port, folder, statuses_to=self.webhook_urls)
        self.standin_url = f"http://127.0.0.1:{standin_port}"
        self.proxy = DropProxy(standin_port)
        a, b = free_port(), free_port()
        url = self.postgres.url
        self.flowsvcs = [
            processes.flowsvc("flowsvc-a", a, url, folder),
            processes.flowsvc("flowsvc-b", b, url, folder),
        ]
        graph = f"http://127.0.0.1:{self.proxy.port}"
        # Both gateways deliver flow completions to one endpoint (one at a time, by lease).
        self.hook = HookEndpoint()
        hooks = self.hook.gateway_env()
        # The business's API the booking walks' call step asks (answers in a thread here).
        self.business = BusinessStandin()
        hooks |= {"CALL_ENDPOINTS": self.business.endpoint_setting(), "CALL_POLL_SECONDS": "0.2"}
        self.gateways = [
            processes.gateway(
                "gateway-1", g1, [a, b], graph, folder, graph_timeout=graph_timeout, extra_env=hooks
            ),
            processes.gateway(
                "gateway-2", g2, [b, a], graph, folder, graph_timeout=graph_timeout, extra_env=hooks
            ),
        ]
        # A watcher of flow completions on each flowsvc, resuming across its SIGKILLs.
        self.watchers = [Watcher(f"127.0.0.1:{port}", processes.FLOWSVC_TOKEN) for port in (a, b)]
        self._control = httpx.Client(base_url=self.standin_url, timeout=30.0)

    @property
    def services(self) -> list[Service]:
        return [self.standin, *self.flowsvcs, *self.gateways]

    def start(self) -> None:
        self.postgres.init()
        migrate(self.postgres.url)
        engine = create_db_engine(self.postgres.url, pool_size=1)
        try:
            templates = Templates(create_sessionmaker(engine))
            seed(templates)
            templates.create(
                TemplateDefinition(
                    TIMER_TEMPLATE["name"],
                    TIMER_TEMPLATE["menu_structure"],
                    tuple(TIMER_TEMPLATE["trigger_keywords"]),
                )
            )
        finally:
            engine.dispose()
        self.standin.start()
        self.proxy.start()
        self.hook.server.start()
        self.business.serve()
        for service in (*self.flowsvcs, *self.gateways):
            service.start()
        for watcher in self.watchers:
            watcher.start()

    def stop(self) -> dict[str, list[int]]:
        """Stop everything gracefully (gateways first); returns each service's exit codes."""
        for watcher in self.watchers:
            watcher.stop()
        for service in (*self.gateways, *self.flowsvcs, self.standin):
            service.stop()
        self.proxy.stop()
        self.hook.server.stop()
        self.business.shutdown()
        self.business.server_close()
        self._control.close()
        self.postgres.destroy()
        return {s.name: s.exits for s in self.services}

    def fail_graph(self, **fault: Any) -> None:
        self._control.post("/_standin/faults", json=fault).raise_for_status()

    def heal_graph(self) -> None:
        self._control.delete("/_standin/faults").raise_for_status()
        self.proxy.dropping = False

    def graph_requests(self) -> list[dict[str, Any]]:
        response = self._control.get("/_standin/requests")
        response.raise_for_status()
        return list(response.json())
