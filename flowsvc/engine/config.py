"""The engine's settings: command words, the default template, expiry and its fixed texts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from flowsvc.engine.wording import BUILT_IN, OWN_TEXTS, TextSet, country_language


@dataclass(frozen=True)
class EngineConfig:
    """Everything advance() can be configured with; the service builds it from its Settings."""

    default_template: str | None = "main_menu"
    expiry: timedelta = timedelta(hours=24)
    cancel_words: frozenset[str] = frozenset({"cancel", "exit", "quit"})
    menu_words: frozenset[str] = frozenset({"menu", "restart"})
    back_words: frozenset[str] = frozenset({"back"})
    # Message types (as the gateway names them) that need no answer: a reaction or its removal,
    # an edit or deletion of an earlier message, a system notice (the customer changed number),
    # a reply to a call permission request.
    silent_types: frozenset[str] = frozenset(
        {"reaction", "edit", "revoke", "system", "call_permission_reply"}
    )
    max_input_chars: int = 1000
    max_history: int = 20
    # Steps of rules without a message pass the customer on at once; at most this many in one
    # turn (validation rejects a cycle of them in a template; this stops one across templates).
    max_rule_hops: int = 20
    recent_orders_limit: int = 5
    help_text: str = 'Hi! Send "hi" to see what I can do for you.'
    cancelled_text: str = 'Okay, cancelled. Send "menu" whenever you want to start again.'
    nothing_to_cancel_text: str = 'There is nothing to cancel. Send "menu" to see the options.'
    expired_text: str = "Your previous session expired, so let's start again."
    unsupported_text: str = "Sorry, I can only read text messages and taps on the menu buttons."
    start_hint: str = 'Send "hi" or "menu" to get started.'
    invalid_text: str = "Sorry, I didn't understand that. Please try again."
    not_available_text: str = "That option is not available right now."
    completed_text: str = "Thank you! All done."
    no_orders_text: str = "You have no orders yet."
    # Said when the customer writes while a step's call runs and the step has no message.
    call_wait_text: str = "One moment, please: I'm still checking."
    # A menu built from data (built.py): the rows that page it, the sections holding them, and
    # the list button of reply buttons that did not fit in three (Meta's row, section and list
    # button limits apply: wording.TEXT_LIMITS).
    more_title: str = "More ▸"
    previous_title: str = "◂ Previous"
    more_section_title: str = "More"
    previous_section_title: str = "Back"
    choose_label: str = "Choose"
    # Handing a customer to people: how long a handoff may stay idle before the bot takes the
    # customer back (None: never on its own), what it says then, the words with which a
    # customer may leave the queue themselves (none: they may not), the queue when none is given.
    handoff_idle: timedelta | None = timedelta(hours=4)
    handoff_resume_text: str = "Our team will get back to you; meanwhile, here is the menu."
    handoff_leave_words: frozenset[str] = frozenset()
    handoff_default_queue: str = "support"
    # The texts above are English; these are menuflow's words in other languages (Spanish built
    # in, more from FLOWSVC_TEXT_SETS), and the language a calling code suggests for a customer
    # who has not chosen one (FLOWSVC_LANGUAGES_BY_COUNTRY).
    text_sets: Mapping[str, TextSet] = field(default_factory=lambda: dict(BUILT_IN))
    languages_by_country: Mapping[str, str] = field(default_factory=dict)

    def text(self, language: object, key: str) -> str:
        """One of menuflow's own texts (a key of wording.OWN_TEXTS) in `language`, else in
        English."""
        found = self.text_sets.get(language) if isinstance(language, str) else None
        if found is not None and key in found.texts:
            return found.texts[key]
        text: str = getattr(self, OWN_TEXTS[key])
        return text

    def commands(self, language: object) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
        """The cancel, menu and back words for a customer speaking `language`: English's (the
        fields above, always understood) and that language's."""
        found = self.text_sets.get(language) if isinstance(language, str) else None
        if found is None:
            return self.cancel_words, self.menu_words, self.back_words
        return (
            self.cancel_words | found.cancel_words,
            self.menu_words | found.menu_words,
            self.back_words | found.back_words,
        )

    def leave_words(self, language: object) -> frozenset[str]:
        """The words with which a handed-off customer speaking `language` leaves the queue:
        none when the deployment lets no one leave (handoff_leave_words empty), else English's
        and that language's."""
        if not self.handoff_leave_words:
            return frozenset()
        found = self.text_sets.get(language) if isinstance(language, str) else None
        extra = found.handoff_leave_words if found is not None else frozenset()
        return self.handoff_leave_words | extra

    def language_of(self, number: str) -> str | None:
        """The language a customer's calling code suggests (FLOWSVC_LANGUAGES_BY_COUNTRY)."""
        if not self.languages_by_country:
            return None
        return country_language(number, self.languages_by_country)
