"""What both services' settings share: reading the environment with starlette's Config, the casts
it needs beyond int/float/bool, and the error that stops a service on a bad value."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from starlette.config import Config

N = TypeVar("N", int, float)


class SettingsError(ValueError):
    """An environment variable is missing or malformed; the message names it."""


def config(environ: Mapping[str, str] | None = None) -> Config:
    """A Config over `environ` (the process environment by default)."""
    return Config(environ=os.environ if environ is None else environ)


def _bounded(kind: type[N], name: str, valid: Callable[[N], bool]) -> Callable[[Any], N]:
    def cast(raw: Any) -> N:
        value = kind(raw)
        if not valid(value):
            raise ValueError(raw)
        return value

    cast.__name__ = name  # Config's error message: "Not a valid <name>."
    return cast


def non_negative(kind: type[N]) -> Callable[[Any], N]:
    return _bounded(kind, f"non-negative {kind.__name__}", lambda value: value >= 0)


def positive(kind: type[N]) -> Callable[[Any], N]:
    return _bounded(kind, f"positive {kind.__name__}", lambda value: value > 0)


def words(raw: Any) -> frozenset[str]:
    """A comma-separated list of words, case-folded: "cancel, Exit" -> {"cancel", "exit"}."""
    return frozenset(word.strip().casefold() for word in str(raw).split(",") if word.strip())


def optional(raw: Any) -> str | None:
    """An empty value means "not set"."""
    return str(raw) or None
