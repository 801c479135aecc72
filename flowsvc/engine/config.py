"""The engine's settings: command words, the default template, expiry and its fixed texts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


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
    # Handing a customer to people: how long a handoff may stay idle before the bot takes the
    # customer back (None: never on its own), what it says then, the words with which a
    # customer may leave the queue themselves (none: they may not), the queue when none is given.
    handoff_idle: timedelta | None = timedelta(hours=4)
    handoff_resume_text: str = "Our team will get back to you; meanwhile, here is the menu."
    handoff_leave_words: frozenset[str] = frozenset()
    handoff_default_queue: str = "support"
