"""`python -m flowsvc`: run FlowService with settings from the environment."""

import sys

from flowsvc.server import serve
from flowsvc.settings import Settings, SettingsError
from flowsvc.store.db import SchemaBehindError
from menuflow.logs import configure_logging
from menuflow.runtime import tune_garbage_collector


def main() -> int:
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        print(f"flowsvc: bad setting: {error}", file=sys.stderr)
        return 2
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
