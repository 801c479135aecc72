"""The typed template model: a validated menu_structure dict parsed into frozen dataclasses.

Parsing never fails: validation (flowsvc/validation/) rejects bad templates when they are
written, and anything missing here falls back to an empty value rather than raising.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from flowsvc.engine.built import RowsFrom, parse_rows_from
from flowsvc.engine.calls import CallSpec, parse_call
from flowsvc.engine.expressions import holds
from flowsvc.engine.inputs import InputRule, parse_input_rule
from flowsvc.engine.keywords import contains_phrase, phrase, words
from flowsvc.engine.state import HandoffSpec
from flowsvc.engine.timers import TimeoutSpec, parse_timeout
from flowsvc.engine.translations import translated

INITIAL = "initial"
FLOW_PREFIX = "flow:"
GUIDE_FLOW_SUFFIX = "_flow"
MEDIA_TYPES = ("image", "document", "video", "audio", "sticker")
"""Message types that send one media asset (Meta's media messages)."""
HEADER_MEDIA_TYPES = ("image", "video", "document")
"""Media a reply-button message may show as its header (lists take text headers only)."""
CTA_URL = "cta_url"
LOCATION_REQUEST = "location_request_message"
FLOW = "flow"
"""A WhatsApp Flow message (interactive type "flow"); its reply (nfm_reply) is an inbound kind
of the same name, which a step sending a Flow always takes."""
INTERACTIVE_TYPES = ("button", "list", CTA_URL, LOCATION_REQUEST, FLOW)
"""Meta's interactive message types a template writes (a step's own; the first message is a
button, list or text message)."""
ACCEPTABLE = ("text", "image", "document", "audio", "video", "sticker", "location", "contacts")
"""What a step may accept (its `accept` field); without `accept`, text and taps."""


@dataclass(frozen=True)
class Option:
    """A reply button or a list row; `set` is applied to the context when it is tapped."""

    id: str
    title: str
    description: str | None = None
    set: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Section:
    """A list section."""

    title: str | None
    rows: tuple[Option, ...]


@dataclass(frozen=True)
class Media:
    """A media asset by Meta's media id or by a public link; caption and filename as allowed."""

    type: str  # one of MEDIA_TYPES
    id: str | None = None
    link: str | None = None
    caption: str | None = None  # may hold placeholders
    filename: str | None = None  # documents only


@dataclass(frozen=True)
class FlowSpec:
    """The WhatsApp Flow a `flow` message opens (Meta's action.parameters, less the token, which
    the engine makes for each time the step is entered)."""

    cta: str  # the button's label (flow_cta)
    flow_id: str | None = None
    flow_name: str | None = None  # instead of flow_id
    action: str = "navigate"  # or "data_exchange": the Flow's endpoint gives the first screen
    screen: str | None = None  # navigate: the first screen's id
    data: Mapping[str, Any] | None = None  # navigate: the first screen's data; placeholders
    mode: str | None = None  # "draft" sends a Flow not yet published


@dataclass(frozen=True)
class Message:
    """A message as the template writes it, before placeholders are filled.

    `type` is "button", "list", "text" or one of MEDIA_TYPES (then `media` is set); `body` is
    None when the template leaves it to the step's prompt. A header is a text or, on a button
    message, a media asset (`header_media`).
    """

    type: str
    body: str | None = None
    header: str | None = None
    header_media: Media | None = None
    media: Media | None = None
    cta_text: str = ""  # cta_url: the button's label
    cta_url: str = ""  # cta_url: the URL it opens; placeholders are filled URL-encoded
    footer: str | None = None
    buttons: tuple[Option, ...] = ()
    list_button: str = ""
    sections: tuple[Section, ...] = ()
    flow: FlowSpec | None = None  # type "flow"
    built: RowsFrom | None = None  # rows_from (list) or buttons_from (button): see built.py

    @property
    def options(self) -> tuple[Option, ...]:
        """Every button or row the customer can tap."""
        if self.type == "button":
            return self.buttons
        if self.type == "list":
            return tuple(row for section in self.sections for row in section.rows)
        return ()

    def option(self, option_id: str) -> Option | None:
        """The button or row with this id, if the message offers it."""
        return next((opt for opt in self.options if opt.id == option_id), None)


@dataclass(frozen=True)
class Rule:
    """One of a step's `rules`: when the expression holds over the context, go to the target."""

    when: str
    go: str


@dataclass(frozen=True)
class Step:
    """One step of a template; every field is optional in the template (docs/templates.md)."""

    name: str
    prompt: str | None = None
    message: Message | None = None
    next_steps: Mapping[str, str] = field(default_factory=dict)
    next_step: str | None = None
    validation: InputRule | None = None
    context_key: str | None = None
    error_message: str | None = None
    set: Mapping[str, Any] = field(default_factory=dict)
    compute: Mapping[str, str] = field(default_factory=dict)
    lookup: str | None = None
    end_conversation: bool = False
    save_result: bool = True
    handoff: HandoffSpec | None = None
    accept: frozenset[str] = frozenset()  # kinds of ACCEPTABLE; empty: text and taps only
    rules: tuple[Rule, ...] = ()
    timeout: TimeoutSpec | None = None  # what the customer's silence in this step does
    flow_fields: tuple[str, ...] = ()  # fields of a Flow's response also kept under their names

    @property
    def accepted(self) -> frozenset[str]:
        """The kinds of message the step takes besides taps and text: its `accept`, and the
        Flow's reply when it sends a Flow."""
        if self.message is not None and self.message.type == FLOW:
            return self.accept | {FLOW}
        return self.accept

    call: CallSpec | None = None  # the business's HTTP API this step calls on entry

    @property
    def routes_at_once(self) -> bool:
        """A step of rules that sends nothing: entering it moves on at once (docs/templates.md)."""
        quiet = self.message is None and self.prompt is None and self.handoff is None
        quiet = quiet and self.call is None
        return bool(self.rules) and quiet and self.name != INITIAL and not self.end_conversation

    def ruled_target(self, context: Mapping[str, Any]) -> str | None:
        """The target of the first rule whose condition holds over `context`, if any."""
        return next((rule.go for rule in self.rules if holds(rule.when, context)), None)


@dataclass(frozen=True)
class Template:
    """One immutable version of a workflow template."""

    name: str
    version: int
    first: Message
    steps: Mapping[str, Step]
    trigger_keywords: tuple[str, ...] = ()
    is_active: bool = True
    currency: str = "$"
    expiry_hours: float | None = None
    orders: bool = False  # its saved results are the customer's orders (for order lookups)
    language: str = ""  # the language its own texts are written in
    translations: Mapping[str, Template] = field(default_factory=dict)  # by language
    # menuflow's own words (wording.OWN_TEXTS: cancelled, expired, invalid, ...) by language
    texts: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    keyword_languages: Mapping[str, str] = field(default_factory=dict)  # phrase -> language

    def speaking(self, language: object) -> Template:
        """This template in `language` (a context value), or as written when not translated."""
        if isinstance(language, str) and language in self.translations:
            return self.translations[language]
        return self

    def own_text(self, language: object, key: str, default: str) -> str:
        """One of menuflow's own texts in `language` (None: the template's own), as this
        template words it, or `default` (the deployment's words in that language)."""
        wanted = language if isinstance(language, str) and language else self.language
        return self.texts.get(wanted, {}).get(key, default)

    def language_of(self, text: str | None) -> str | None:
        """The language of the trigger keyword `text` contains (the longest, if several), if
        the template says which language it speaks."""
        if not self.keyword_languages or not text:
            return None
        said = words(text)
        found = [
            (len(keyword), language)
            for keyword, language in self.keyword_languages.items()
            if contains_phrase(said, tuple(keyword.split()))
        ]
        return max(found)[1] if found else None

    def has_step(self, name: str) -> bool:
        """True for every defined step, and for `initial`, which always exists."""
        return name == INITIAL or name in self.steps

    def step(self, name: str) -> Step:
        """The named step, or an empty one (a guide template may define no steps at all)."""
        return self.steps.get(name) or Step(name)

    def step_order(self) -> list[str]:
        """Every step, in the order a customer meets them: initial, then breadth-first along
        each step's options (in the order shown), other selections (by id) and next_step; steps
        no path reaches last, by name. Stable however the JSON object's keys were ordered."""
        order = [INITIAL]
        for name in order:
            step = self.step(name)
            answering = self.answering(name)
            shown = [o.id for o in answering.options] if answering is not None else []
            ids = [*shown, *sorted(set(step.next_steps) - set(shown))]
            targets: list[str | None] = [rule.go for rule in step.rules]
            targets += [step.next_steps.get(i) for i in ids] + [step.next_step]
            targets.append(step.timeout.go if step.timeout is not None else None)
            if answering is not None and answering.built is not None:
                targets.append(answering.built.empty)
            if step.call is not None:  # after its success: the failure paths
                targets += [step.call.on_error, step.call.on_timeout]
            for target in targets:
                if target and target in self.steps and target not in order:
                    order.append(target)
        return order + sorted(set(self.steps) - set(order))

    def answering(self, step_name: str) -> Message | None:
        """The message a customer in `step_name` is answering: whose buttons or rows they tap."""
        if step_name == INITIAL:
            return self.first
        return self.step(step_name).message


def load_template(
    name: str,
    version: int,
    menu_structure: Mapping[str, Any],
    *,
    trigger_keywords: Sequence[str] = (),
    is_active: bool = True,
) -> Template:
    """Parse an already-validated menu_structure (a JSON object) into a Template."""
    raw_steps = _mapping(menu_structure.get("steps"))
    steps = {
        str(step_name): _step(str(step_name), _mapping(raw)) for step_name, raw in raw_steps.items()
    }
    expiry = menu_structure.get("expiry_hours")
    raw_translations = _mapping(menu_structure.get("translations"))
    translations = {
        str(language): load_template(
            name,
            version,
            {
                **translated(menu_structure, _mapping(texts)),
                "translations": {},
                "language": str(language),
            },
            trigger_keywords=trigger_keywords,
            is_active=is_active,
        )
        for language, texts in raw_translations.items()
    }
    own_texts = {
        str(language): {str(k): v for k, v in _mapping(texts).items() if isinstance(v, str)}
        for language, texts in _mapping(menu_structure.get("texts")).items()
    }
    keyword_languages = {
        phrase(str(word)): str(language)
        for language, words in _mapping(menu_structure.get("language_keywords")).items()
        for word in _sequence(words)
    }
    template = Template(
        name=name,
        version=version,
        first=_message(menu_structure, default_type="text") or Message("text", body=""),
        steps=steps,
        trigger_keywords=tuple(str(k) for k in trigger_keywords),
        is_active=is_active,
        currency=_text(menu_structure.get("currency")) or "$",
        expiry_hours=float(expiry)
        if isinstance(expiry, int | float) and not isinstance(expiry, bool) and expiry > 0
        else None,
        orders=menu_structure.get("orders") is True,
        language=_text(menu_structure.get("language")) or "",
        texts=own_texts,
        keyword_languages=keyword_languages,
    )
    if not translations:
        return template
    return replace(
        template,
        translations={
            language: replace(
                translated_template, texts=own_texts, keyword_languages=keyword_languages
            )
            for language, translated_template in translations.items()
        },
    )


def _step(name: str, raw: Mapping[str, Any]) -> Step:
    save_result = raw.get("save_result")
    lookup = raw.get("lookup")
    return Step(
        name=name,
        prompt=_text(raw.get("prompt")),
        message=_message(raw, default_type=None),
        next_steps={str(k): str(v) for k, v in _mapping(raw.get("next_steps")).items()},
        next_step=_text(raw.get("next_step")),
        validation=parse_input_rule(raw.get("validation")),
        context_key=_text(raw.get("context_key")),
        error_message=_text(raw.get("error_message")),
        set=dict(_mapping(raw.get("set"))),
        compute={str(k): str(v) for k, v in _mapping(raw.get("compute")).items()},
        lookup=lookup if isinstance(lookup, str) else None,
        end_conversation=raw.get("end_conversation") is True,
        save_result=save_result is not False,
        handoff=_handoff(raw.get("handoff")),
        timeout=parse_timeout(raw.get("timeout")),
        accept=_accept(raw.get("accept")),
        rules=tuple(
            Rule(when=rule["when"], go=rule["go"])
            for rule in (_mapping(r) for r in _sequence(raw.get("rules")))
            if isinstance(rule.get("when"), str) and isinstance(rule.get("go"), str)
        ),
        flow_fields=tuple(f for f in _sequence(raw.get("flow_fields")) if isinstance(f, str)),
        call=parse_call(raw.get("call")),
    )


def _accept(raw: Any) -> frozenset[str]:
    kinds = [raw] if isinstance(raw, str) else _sequence(raw)
    return frozenset(kind for kind in kinds if kind in ACCEPTABLE)


def _handoff(raw: Any) -> HandoffSpec | None:
    if not isinstance(raw, Mapping):
        return None
    priority = raw.get("priority")
    return HandoffSpec(
        queue=_text(raw.get("queue")) or "",
        priority=priority if isinstance(priority, int) and not isinstance(priority, bool) else 0,
        reason=_text(raw.get("reason")) or "",
        resume_text=_text(raw.get("resume_message")),
    )


def _message(raw: Mapping[str, Any], *, default_type: str | None) -> Message | None:
    kind = raw.get("type")
    if kind in MEDIA_TYPES:
        return Message(type=kind, media=_media(kind, raw.get(kind)))
    if kind not in (*INTERACTIVE_TYPES, "text"):
        if default_type is None:
            return None
        kind = default_type
    action = _mapping(raw.get("action"))
    header = _mapping(raw.get("header"))
    header_type = header.get("type", "text")
    return Message(
        type=kind,
        body=_body(raw.get("body")),
        header=_text(header.get("text")) if header_type == "text" else None,
        header_media=_media(header_type, header.get(header_type))
        if header_type in HEADER_MEDIA_TYPES
        else None,
        footer=_body(raw.get("footer")),
        buttons=tuple(_button(_mapping(b)) for b in _sequence(action.get("buttons"))),
        list_button=_text(action.get("button")) or "",
        cta_text=_text(_mapping(action.get("parameters")).get("display_text")) or "",
        cta_url=_text(_mapping(action.get("parameters")).get("url")) or "",
        built=parse_rows_from(
            action.get("rows_from") if kind == "list" else action.get("buttons_from")
        )
        if kind in ("list", "button")
        else None,
        sections=tuple(
            Section(
                title=_text(_mapping(s).get("title")),
                rows=tuple(_row(_mapping(r)) for r in _sequence(_mapping(s).get("rows"))),
            )
            for s in _sequence(action.get("sections"))
        ),
        flow=_flow(_mapping(action.get("parameters"))) if kind == FLOW else None,
    )


def _flow(parameters: Mapping[str, Any]) -> FlowSpec:
    payload = _mapping(parameters.get("flow_action_payload"))
    data = payload.get("data")
    return FlowSpec(
        cta=_text(parameters.get("flow_cta")) or "",
        flow_id=_text(parameters.get("flow_id")),
        flow_name=_text(parameters.get("flow_name")),
        action=_text(parameters.get("flow_action")) or "navigate",
        screen=_text(payload.get("screen")),
        data=dict(data) if isinstance(data, Mapping) else None,
        mode=_text(parameters.get("mode")),
    )


def _media(kind: str, raw: Any) -> Media:
    fields = _mapping(raw)
    return Media(
        type=kind,
        id=_text(fields.get("id")),
        link=_text(fields.get("link")),
        caption=_text(fields.get("caption")),
        filename=_text(fields.get("filename")),
    )


def _button(raw: Mapping[str, Any]) -> Option:
    reply = _mapping(raw.get("reply"))
    values = {**_mapping(reply.get("set")), **_mapping(raw.get("set"))}
    return Option(
        id=_text(reply.get("id")) or "", title=_text(reply.get("title")) or "", set=values
    )


def _row(raw: Mapping[str, Any]) -> Option:
    return Option(
        id=_text(raw.get("id")) or "",
        title=_text(raw.get("title")) or "",
        description=_text(raw.get("description")),
        set=dict(_mapping(raw.get("set"))),
    )


def _body(raw: Any) -> str | None:
    """`{"text": ...}` as Meta writes it; a bare string is accepted too."""
    return _text(raw) if isinstance(raw, str) else _text(_mapping(raw).get("text"))


def _text(raw: Any) -> str | None:
    return raw if isinstance(raw, str) else None


def _mapping(raw: Any) -> Mapping[str, Any]:
    return raw if isinstance(raw, Mapping) else {}


def _sequence(raw: Any) -> Sequence[Any]:
    return raw if isinstance(raw, list | tuple) else ()
