"""The default templates load, validate, and a second seed changes nothing."""

from __future__ import annotations

from flowsvc.seed import load_definitions, seed
from flowsvc.service.templates import ImportAction, Templates
from flowsvc.store.db import create_db_engine, create_sessionmaker


def test_seed_loads_the_five_defaults_and_is_idempotent(database_url: str) -> None:
    engine = create_db_engine(database_url, pool_size=1)
    templates = Templates(create_sessionmaker(engine))
    try:
        first = seed(templates)
        second = seed(templates)
        stored = [item.name for item in templates.list_heads(None, 0, "").items]
    finally:
        engine.dispose()

    names = ["account", "booking", "main_menu", "new_order", "support"]
    assert sorted(item.name for item in load_definitions()) == names
    assert {item.action for item in first} == {ImportAction.CREATED}
    assert [(i.name, i.version, i.action) for i in second] == [
        (i.name, 1, ImportAction.UNCHANGED) for i in first
    ]
    assert stored == names
