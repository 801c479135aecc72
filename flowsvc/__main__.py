"""`python -m flowsvc`: run FlowService with settings from the environment."""

import sys

from flowsvc.server import serve
from flowsvc.settings import Settings, SettingsError
from flowsvc.store.db import SchemaBehindError
from menuflow.logs import configure_logging
from menuflow.ports import cannot_listen, split_address
from menuflow.runtime import tune_garbage_collector

BUSY = 4  # the exit status when FLOWSVC_LISTEN cannot be bound


def _listen_problem(listen: str) -> str | None:
    """Why flowsvc cannot listen on FLOWSVC_LISTEN, in one line; None when it can."""
    try:
        host, port = split_address(listen)
    except ValueError:
        return None  # grpc's own forms (unix:..., ...): grpc judges them
    reason = cannot_listen(host, port)
    if reason is None:
        return None
    return (
        f"flowsvc: cannot listen on {listen} (FLOWSVC_LISTEN): {reason}; another flowsvc may be "
        "running there: stop it, or set FLOWSVC_LISTEN to another address"
    )


def main() -> int:
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        print(f"flowsvc: bad setting: {error}", file=sys.stderr)
        return 2
    problem = _listen_problem(settings.listen)
    if problem is not None:
        print(problem, file=sys.stderr)
        return BUSY
    configure_logging("flowsvc", settings.log_level)
    tune_garbage_collector()
    try:
        serve(settings)
    except SettingsError as error:  # e.g. a TLS file that cannot be read
        print(f"flowsvc: bad setting: {error}", file=sys.stderr)
        return 2
    except SchemaBehindError as error:
        print(f"flowsvc: {error}", file=sys.stderr)
        return 3
    except RuntimeError as error:  # taken between the check above and grpc's own bind
        if "Failed to bind" not in str(error):
            raise
        print(_listen_problem(settings.listen) or f"flowsvc: {error}", file=sys.stderr)
        return BUSY
    return 0


if __name__ == "__main__":
    sys.exit(main())
