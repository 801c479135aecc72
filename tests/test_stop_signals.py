"""`python -m flowsvc` stops cleanly on SIGTERM or SIGINT however many arrive at once: `make run`
stopped by Ctrl-C or by its process group's SIGTERM gets one from the terminal or the group and
one from the launcher, a few milliseconds apart."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.servers import flowsvc_process

pytestmark = pytest.mark.usefixtures("seeded")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_burst_of_stop_signals_stops_flowsvc_once_and_cleanly(
    database_url: str, tmp_path: Path, signum: signal.Signals
) -> None:
    log = tmp_path / "flowsvc.log"
    with flowsvc_process(database_url, log) as process:  # it waits for exit status 0
        for _ in range(300):
            process.popen.send_signal(signum)
    assert log.read_text().count("flowsvc stopping") == 1
    assert "flowsvc stopped" in log.read_text()
