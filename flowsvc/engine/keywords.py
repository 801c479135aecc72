"""Keyword and command matching: whole words, case- and accent-insensitive, deterministic ties."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from flowsvc.engine.config import EngineConfig

Command = Literal["cancel", "menu", "back"]
_WORD = re.compile(r"\w+")


def normalize(text: str) -> str:
    """Fold case and accents so "Café", "CAFE" and "cafe" compare equal."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return stripped.casefold()


def words(text: str) -> tuple[str, ...]:
    """The normalized words of a text; punctuation, emoji and spaces are boundaries."""
    return tuple(_WORD.findall(normalize(text)))


def phrase(text: str) -> str:
    """A text reduced to its normalized words, for "is this exactly that word?" comparisons."""
    return " ".join(words(text))


def command(text: str | None, config: EngineConfig, language: object = None) -> Command | None:
    """The command `text` is: exactly one of that command's words (English's or those of the
    customer's `language`), compared as phrase() does."""
    if text is None:
        return None
    said = phrase(text)
    if not said:
        return None
    cancel, menu, back = config.commands(language)
    commands: tuple[tuple[Command, frozenset[str]], ...] = (
        ("cancel", cancel),
        ("menu", menu),
        ("back", back),
    )
    for name, command_words in commands:
        if said in {phrase(word) for word in command_words}:
            return name
    return None


def contains_phrase(haystack: tuple[str, ...], needle: tuple[str, ...]) -> bool:
    """True when `needle` occurs in `haystack` as a run of whole words."""
    size = len(needle)
    if size == 0 or size > len(haystack):
        return False
    return any(haystack[i : i + size] == needle for i in range(len(haystack) - size + 1))


@dataclass(frozen=True)
class _Entry:
    rank: int
    keyword: tuple[str, ...]
    template: str


class KeywordIndex:
    """Keywords of several templates, precomputed once and matched against many messages.

    The best match is the longest keyword (in words, then in characters), then the template
    name in alphabetical order, so the same text always starts the same template.
    """

    def __init__(self, keywords: Iterable[tuple[str, str]]) -> None:
        """Build from (template name, keyword) pairs; keywords without words are ignored."""
        folded = [(words(keyword), template) for template, keyword in keywords]
        ordered = sorted(
            ((kw, template) for kw, template in folded if kw),
            key=lambda item: (-len(item[0]), -len(" ".join(item[0])), item[1]),
        )
        self._by_first_word: dict[str, list[_Entry]] = {}
        for rank, (keyword, template) in enumerate(ordered):
            self._by_first_word.setdefault(keyword[0], []).append(_Entry(rank, keyword, template))

    def match(self, text: str) -> str | None:
        """The template name whose keyword best matches `text`, or None."""
        message = words(text)
        best: _Entry | None = None
        for word in set(message):
            for entry in self._by_first_word.get(word, ()):
                if best is not None and entry.rank >= best.rank:
                    break
                if contains_phrase(message, entry.keyword):
                    best = entry
                    break
        return None if best is None else best.template
