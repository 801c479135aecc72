"""CPU time and peak memory of processes, read from /proc (Linux), for per-message cost figures;
and the quantile every benchmark reports its latencies with."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def quantile(values: list[float], q: float) -> float:
    """The value below which a share `q` of `values` lies (nearest rank); NaN for none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process so far (0.0 once it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _memory_mib(pid: int, key: str) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def peak_memory_mib(pid: int) -> float:
    """VmHWM: the most resident memory the process ever had."""
    return _memory_mib(pid, "VmHWM:")


def resident_mib(pid: int) -> float:
    """VmRSS: resident memory now."""
    return _memory_mib(pid, "VmRSS:")


def _parent(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return -1
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def tree(pid: int) -> list[int]:
    """`pid` and all its descendants (e.g. uvicorn's worker processes)."""
    parents = {p: _parent(p) for p in _pids()}
    found = [pid]
    for candidate in found:
        found.extend(p for p, parent in parents.items() if parent == candidate)
    return found


def machine_busy_seconds() -> float:
    """CPU seconds every core of the machine spent not idle, since boot."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / _TICKS


@dataclass
class Group:
    """A role in the benchmark (gateway, flowsvc, ...) and its processes, found anew each time."""

    name: str
    root: int | None = None  # a process and its children; or else
    find: Callable[[], list[int]] | None = None  # whatever this finds (e.g. database backends)

    def pids(self) -> list[int]:
        if self.root is not None:
            return tree(self.root)
        return self.find() if self.find is not None else []

    def cpu(self) -> dict[int, float]:
        return {pid: cpu_seconds(pid) for pid in self.pids()}

    def peak_mib(self) -> float:
        return max((peak_memory_mib(pid) for pid in self.pids()), default=float("nan"))

    def resident_mib(self) -> float:
        """The largest process's resident memory now (one worker, not their sum)."""
        return max((resident_mib(pid) for pid in self.pids()), default=float("nan"))


@dataclass
class ResidentSampler:
    """Resident memory of some groups every `interval` seconds while a run goes on, in a thread:
    a peak says how high memory went, a series says whether it kept growing."""

    groups: list[Group]
    interval: float
    series: dict[str, list[float]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> ResidentSampler:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            for group in self.groups:
                self.series.setdefault(group.name, []).append(group.resident_mib())


def cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU used between two snapshots, counting processes that appeared in between from zero."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())
