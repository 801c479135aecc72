"""menuflow's own words in each language: the texts it says itself (cancel and expiry notices,
help, re-asks, ...) and the command words it listens for (cancel, menu, back), and which
language a phone number's country code suggests.

English is EngineConfig's own fields (FLOWSVC_CANCEL_WORDS and friends set them); every other
language is a TextSet: Spanish is built in, a deployment adds or rewords sets with
FLOWSVC_TEXT_SETS (a JSON file, see read_text_sets), and a template may reword the texts for its
own customers (its `texts`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flowsvc.engine import limits

OWN_TEXTS: Mapping[str, str] = {
    "help": "help_text",
    "cancelled": "cancelled_text",
    "nothing_to_cancel": "nothing_to_cancel_text",
    "expired": "expired_text",
    "unsupported": "unsupported_text",
    "start_hint": "start_hint",
    "invalid": "invalid_text",
    "not_available": "not_available_text",
    "completed": "completed_text",
    "no_orders": "no_orders_text",
    "handoff_resume": "handoff_resume_text",
    "call_wait": "call_wait_text",
    # A menu built from data (built.py): its paging rows, the sections holding them, and the
    # list button of reply buttons that did not fit in three.
    "more": "more_title",
    "previous": "previous_title",
    "more_section": "more_section_title",
    "previous_section": "previous_section_title",
    "choose": "choose_label",
}
"""Each of menuflow's own texts by key, and the EngineConfig field holding its English words."""
TEXT_LIMITS: Mapping[str, int] = {
    "more": limits.MAX_ROW_TITLE,
    "previous": limits.MAX_ROW_TITLE,
    "more_section": limits.MAX_SECTION_TITLE,
    "previous_section": limits.MAX_SECTION_TITLE,
    "choose": limits.MAX_LIST_BUTTON,
}
"""The keys shown where Meta allows less than a text message's body: their limit (code points)."""
COMMANDS = ("cancel_words", "menu_words", "back_words", "handoff_leave_words")
"""A text set's command words, by the EngineConfig field they add to. Leave words count only
where the deployment lets a handed-off customer leave at all (FLOWSVC_HANDOFF_LEAVE_WORDS)."""
LANGUAGE = re.compile(r"^[a-z]{2,3}(_[A-Z]{2})?\Z")
"""A language code as templates, text sets and SetLanguage write it: 'es', 'pt_BR'."""
MAX_OWN_TEXT = limits.MAX_TEXT_BODY  # a text message's body


def text_limit(key: str) -> int:
    """The most code points own text `key` may have where it is shown."""
    return TEXT_LIMITS.get(key, MAX_OWN_TEXT)


@dataclass(frozen=True)
class TextSet:
    """menuflow's words in one language: texts by key (OWN_TEXTS; missing ones fall back to
    English) and the command words that work for a customer speaking it (beside English's)."""

    texts: Mapping[str, str] = field(default_factory=dict)
    cancel_words: frozenset[str] = frozenset()
    menu_words: frozenset[str] = frozenset()
    back_words: frozenset[str] = frozenset()
    handoff_leave_words: frozenset[str] = frozenset()


SPANISH = TextSet(
    texts={
        "help": '¡Hola! Envía "hola" para ver en qué puedo ayudarte.',
        "cancelled": 'Vale, cancelado. Envía "menú" cuando quieras empezar de nuevo.',
        "nothing_to_cancel": 'No hay nada que cancelar. Envía "menú" para ver las opciones.',
        "expired": "Tu sesión anterior caducó, así que empecemos de nuevo.",
        "unsupported": "Lo siento, solo puedo leer mensajes de texto y toques en los botones.",
        "start_hint": 'Envía "hola" o "menú" para empezar.',
        "invalid": "Lo siento, no te he entendido. Inténtalo de nuevo.",
        "not_available": "Esa opción no está disponible ahora mismo.",
        "completed": "¡Gracias! Todo listo.",
        "no_orders": "Todavía no tienes pedidos.",
        "handoff_resume": (
            "Nuestro equipo te responderá pronto; mientras tanto, aquí tienes el menú."
        ),
        "call_wait": "Un momento, por favor: todavía lo estoy comprobando.",
        "more": "Más ▸",
        "previous": "◂ Anterior",
        "more_section": "Más",
        "previous_section": "Atrás",
        "choose": "Elegir",
    },
    cancel_words=frozenset({"cancelar", "salir"}),
    menu_words=frozenset({"menú", "inicio"}),
    back_words=frozenset({"atrás", "volver"}),
    handoff_leave_words=frozenset({"menú", "inicio"}),
)
BUILT_IN: Mapping[str, TextSet] = {"es": SPANISH}
"""The text sets every deployment has; English is EngineConfig's fields."""


def read_text_sets(raw: Any, built_in: Mapping[str, TextSet] = BUILT_IN) -> dict[str, TextSet]:
    """The text sets of a FLOWSVC_TEXT_SETS file's JSON over `built_in`: an object by language
    code, each with texts by key and lists of command words, e.g.
    {"fr": {"cancelled": "D'accord, annulé.", "cancel_words": ["annuler"]}}. A language given
    keeps the built-in words it does not reword. Raises ValueError naming what is wrong."""
    if not isinstance(raw, Mapping):
        raise ValueError('must be a JSON object by language code, e.g. {"fr": {...}}')
    sets = dict(built_in)
    for language, entries in raw.items():
        if not isinstance(language, str) or not _is_language(language):
            raise ValueError(f"{language!r} is not a language code such as 'es' or 'pt_BR'")
        if not isinstance(entries, Mapping):
            raise ValueError(f"{language}: must be an object of texts and command words")
        base = sets.get(language, TextSet())
        texts = dict(base.texts)
        commands = {name: getattr(base, name) for name in COMMANDS}
        for key, value in entries.items():
            if key in COMMANDS:
                if not isinstance(value, list) or not all(
                    isinstance(w, str) and w.strip() for w in value
                ):
                    raise ValueError(f"{language}.{key}: must be a list of words")
                commands[key] = frozenset(w.strip().casefold() for w in value)
            elif key in OWN_TEXTS:
                limit = text_limit(key)
                if not isinstance(value, str) or not value.strip() or len(value) > limit:
                    raise ValueError(f"{language}.{key}: must be a text of 1 to {limit} characters")
                texts[key] = value
            else:
                known = ", ".join([*OWN_TEXTS, *COMMANDS])
                raise ValueError(f"{language}.{key}: is not one of {known}")
        sets[language] = TextSet(texts=texts, **commands)
    return sets


def read_country_rules(raw: Any) -> dict[str, str]:
    """FLOWSVC_LANGUAGES_BY_COUNTRY: "34:es,52:es,55:pt_BR", calling code (or a longer prefix
    of the number) to language. Raises ValueError naming the bad entry."""
    rules = {}
    for item in str(raw).split(","):
        if not item.strip():
            continue
        prefix, colon, language = (part.strip() for part in item.partition(":"))
        if not colon or not prefix.isdigit() or len(prefix) > 6 or not _is_language(language):
            raise ValueError(
                f"FLOWSVC_LANGUAGES_BY_COUNTRY: {item.strip()!r} is not 'code:language' "
                "such as 34:es"
            )
        rules[prefix] = language
    return rules


def country_language(number: str, rules: Mapping[str, str]) -> str | None:
    """The language the longest prefix of `number` (digits, country code first, as WhatsApp
    writes it) has a rule for, if any."""
    digits = number.lstrip("+")
    for size in range(min(6, len(digits)), 0, -1):
        language = rules.get(digits[:size])
        if language is not None:
            return language
    return None


def _is_language(value: str) -> bool:
    return LANGUAGE.match(value) is not None
