"""`python -m flowsvc.seed`: load the default templates idempotently (a re-run changes nothing)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from flowsvc.errors import FlowError
from flowsvc.service.templates import Imported, TemplateDefinition, Templates
from flowsvc.settings import Settings
from flowsvc.store.db import check_schema, create_db_engine, create_sessionmaker

DEFAULT_TEMPLATES = Path(__file__).parent / "default_templates"


def load_definitions(folder: Path = DEFAULT_TEMPLATES) -> list[TemplateDefinition]:
    """Every `*.json` template file in `folder`, by file name."""
    definitions = []
    for path in sorted(p for p in folder.glob("*.json") if not p.name.endswith(".test.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        definitions.append(
            TemplateDefinition(
                name=data["name"],
                trigger_keywords=tuple(data.get("trigger_keywords", ())),
                menu_structure=data["menu_structure"],
                is_active=data.get("is_active", True),
            )
        )
    return definitions


def seed(templates: Templates, folder: Path = DEFAULT_TEMPLATES) -> list[Imported]:
    return templates.import_(load_definitions(folder))


def main() -> int:
    settings = Settings.from_env()
    engine = create_db_engine(settings.database_url, pool_size=1)
    try:
        check_schema(engine)
        imported = seed(Templates(create_sessionmaker(engine)))
    except FlowError as error:
        print(f"seed: {error}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    for item in imported:
        print(f"seed: {item.name} v{item.version} {item.action}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
