"""Checks on a template's languages: its default language, translations of its texts by field
path (same placeholders, same limits, the language named in the path), its own-text sets and
the keywords that set a customer's language."""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from flowsvc.engine import wording
from flowsvc.engine.render import placeholder_names
from flowsvc.engine.translations import text_at, translated
from flowsvc.engine.wording import LANGUAGE
from flowsvc.validation.violation import Violation, clip, kind, quote, suggest

OWN_TEXTS = tuple(wording.OWN_TEXTS)
"""menuflow's own words a template may word per language (the deployment's otherwise)."""
LANGUAGE_KEYS = ("language", "translations", "texts", "language_keywords")
Review = Callable[[Mapping[str, Any]], list[Violation]]


def check_languages(
    menu: Mapping[Any, Any],
    keywords: Sequence[str],
    out: list[Violation],
    review: Review,
) -> None:
    """`review` validates a translated copy of the menu (without its translations)."""
    root = "menu_structure"
    if "language" in menu and not _is_language(menu["language"]):
        out.append(Violation(f"{root}.language", _language_hint(menu["language"])))
    translations = _object(menu, "translations", out)
    for language, texts in translations.items():
        path = f"{root}.translations.{clip(language)}"
        if not _is_language(language):
            out.append(Violation(path, _language_hint(language)))
            continue
        if not isinstance(texts, Mapping):
            out.append(Violation(path, f"must map field paths to texts, not {kind(texts)}"))
            continue
        _check_translation(menu, language, texts, path, out, review)
    for language, texts in _object(menu, "texts", out).items():
        path = f"{root}.texts.{clip(language)}"
        if not _is_language(language):
            out.append(Violation(path, _language_hint(language)))
        elif not isinstance(texts, Mapping):
            out.append(Violation(path, f"must map {', '.join(OWN_TEXTS)} to texts"))
        else:
            for key, text in texts.items():
                if key not in OWN_TEXTS:
                    out.append(
                        Violation(
                            f"{path}.{clip(key)}",
                            f"is not one of menuflow's own texts ({', '.join(OWN_TEXTS)})"
                            f"{suggest(key, OWN_TEXTS)}",
                        )
                    )
                elif not isinstance(text, str) or not text.strip():
                    out.append(Violation(f"{path}.{key}", "must be a non-empty text"))
                elif len(text) > wording.text_limit(key):
                    limit = wording.text_limit(key)
                    out.append(Violation(f"{path}.{key}", f"is longer than {limit}"))
    folded = {word.casefold() for word in keywords if isinstance(word, str)}
    for language, words in _object(menu, "language_keywords", out).items():
        path = f"{root}.language_keywords.{clip(language)}"
        if not _is_language(language):
            out.append(Violation(path, _language_hint(language)))
        elif not isinstance(words, list):
            out.append(Violation(path, f"must be a list of trigger keywords, not {kind(words)}"))
        else:
            for index, word in enumerate(words):
                if not isinstance(word, str):
                    out.append(Violation(f"{path}[{index}]", "must be a trigger keyword"))
                elif word.casefold() not in folded:
                    # Inert rather than wrong (a copy of a template under other keywords keeps
                    # its language keywords): said, but it does not stop the save.
                    out.append(
                        Violation(
                            f"{path}[{index}]",
                            f"{quote(word)} is not one of the template's trigger keywords, so it "
                            "starts nothing and sets no language",
                            warning=True,
                        )
                    )


def _check_translation(
    menu: Mapping[Any, Any],
    language: str,
    texts: Mapping[Any, Any],
    path: str,
    out: list[Violation],
    review: Review,
) -> None:
    good: dict[str, str] = {}
    for field, text in texts.items():
        where = f"{path}.{clip(field, 200)}"
        original = text_at(menu, field) if isinstance(field, str) else None
        if original is None:
            out.append(
                Violation(
                    where,
                    "names no text of this template: write a path such as 'body.text', "
                    "'steps.<step>.prompt' or 'action.buttons[0].reply.title'",
                )
            )
            continue
        if not isinstance(text, str):
            out.append(Violation(where, f"must be a text, not {kind(text)}"))
            continue
        missing = placeholder_names(original) - placeholder_names(text)
        extra = placeholder_names(text) - placeholder_names(original)
        if missing or extra:
            out.append(
                Violation(
                    where,
                    f"must keep the placeholders of the {language} text's original: "
                    + "; ".join(
                        part
                        for part in (
                            f"missing {', '.join(sorted(missing))}" if missing else "",
                            f"unknown {', '.join(sorted(extra))}" if extra else "",
                        )
                        if part
                    ),
                )
            )
            continue
        good[field] = text
    copy = {**translated(menu, good), "translations": {}, "texts": {}}
    prefix = "menu_structure."
    for violation in review(copy):
        relative = violation.field.removeprefix(prefix)
        if any(relative == field or relative.startswith(f"{field}.") for field in good):
            out.append(
                Violation(f"{path}.{relative}", violation.description, warning=violation.warning)
            )


def _object(menu: Mapping[Any, Any], key: str, out: list[Violation]) -> Mapping[Any, Any]:
    value = menu.get(key, {})
    if isinstance(value, Mapping):
        return value
    out.append(
        Violation(f"menu_structure.{key}", f"must be an object by language, not {kind(value)}")
    )
    return {}


def _is_language(value: object) -> bool:
    return isinstance(value, str) and LANGUAGE.match(value) is not None


def _language_hint(value: object) -> str:
    return f"{quote(value)} is not a language code: write one like 'en', 'es' or 'pt_BR'"
