"""`python -m flowsvc` with every SQL statement and commit counted, for `make bench`.

SQLAlchemy events on the Engine class see every engine flowsvc creates; on exit the counts go to
the JSON file named by BENCH_SQL_COUNTS (one file per process: `{pid}` in the name is replaced).
Costs about a microsecond per statement.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from flowsvc.__main__ import main

counts = {"statements": 0, "commits": 0}


def _statement(*_: Any) -> None:
    counts["statements"] += 1


def _commit(*_: Any) -> None:
    counts["commits"] += 1


def _write() -> None:
    target = os.environ.get("BENCH_SQL_COUNTS")
    if target:
        Path(target.replace("{pid}", str(os.getpid()))).write_text(json.dumps(counts))


if __name__ == "__main__":
    event.listen(Engine, "before_cursor_execute", _statement)
    event.listen(Engine, "commit", _commit)
    atexit.register(_write)
    sys.exit(main())
