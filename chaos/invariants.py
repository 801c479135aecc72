"""The invariants, checked against the database and the stand-in's record of what it received.

Replies: each customer's outbox rows (id order) are matched to the messages the stand-in accepted
(answered 200) for that customer, in arrival order: first by the wa_message_id the stand-in issued
and the gateway acked, then by identical body. An unmatched row is lost; an accepted message left
over after matching is sent twice, or "ambiguous twice" when the gateway's at-least-once policy
allows it: a gateway logged that send as ambiguous, or the copy was accepted just before its
gateway was SIGKILLed and no gateway ever learned its wa_message_id (the sender died between
Meta's 200 and its ack). A row that arrived before an earlier row is out of order.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, text

Key = tuple[str, str]
TIMER_PREFIX = "timer:"  # the dedupe ids of step timers' turns (service.turns.SilenceTurn)
CALL_PREFIX = "call:"  # the dedupe ids of call results' turns (service.turns.call_source_id)


@dataclass
class Findings:
    inbound_missing: int = 0  # driven, never recorded as processed
    inbound_unexpected: int = 0  # processed, never driven
    double_effects: int = 0  # outbox rows of a message that its dedupe record does not list
    pending: int = 0  # replies still unsent when the scenario ended
    failed: int = 0  # replies the gateway gave up on
    lost: int = 0  # committed replies the stand-in never accepted (includes pending, failed)
    sent_twice: int = 0
    ambiguous_twice: int = 0
    phantom: int = 0  # accepted by the stand-in, never committed by FlowService
    out_of_order: int = 0
    wrong_results: int = 0  # customers whose stored orders differ from what their walk made
    bot_answered_handed_off: int = 0  # a handed-off customer's message the bot replied to
    handed_off_unseen: int = 0  # ... not emitted once as a customer_message event
    handed_off: int = 0  # messages of handed-off customers checked
    events_missing: int = 0  # committed completions a watcher never got (per watcher)
    events_extra: int = 0  # completions a watcher got that were never committed
    event_deliveries: int = 0  # flow_completed events the watchers got, repeats included
    hook_missing: int = 0  # committed completions the webhook endpoint never got
    hook_extra: int = 0  # completions posted to it that were never committed
    hook_deliveries: int = 0  # completions posted to it, repeats included
    bad_signatures: int = 0  # event POSTs whose signature did not verify
    timers_fired: int = 0  # timer turns (processed timer:... records) of the scenario's customers
    timers_wrong: int = 0  # silent walks whose timers did not fire once each (reminder, end)
    calls_continued: int = 0  # call results that continued their flow (processed call:... records)
    calls_wrong: int = 0  # call walks whose one call did not continue the flow exactly once
    stuck: list[str] = field(default_factory=list)
    conversations: int = 0  # open conversations checked for a way on
    notes: list[str] = field(default_factory=list)

    @property
    def failures(self) -> int:
        return (
            self.inbound_missing
            + self.inbound_unexpected
            + self.double_effects
            + self.lost
            + self.sent_twice
            + self.phantom
            + self.out_of_order
            + self.wrong_results
            + self.bot_answered_handed_off
            + self.handed_off_unseen
            + self.events_missing
            + self.events_extra
            + self.hook_missing
            + self.hook_extra
            + self.bad_signatures
            + self.timers_wrong
            + self.calls_wrong
            + len(self.stuck)
        )


def armed_timers(engine: Engine, customers: set[Key], within: float = 60.0) -> int:
    """Timers of these customers due within `within` seconds (still to fire: the scenario waits
    for them as for pending replies; the order flow's half-hour ones are not waited for)."""
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT phone_number_id, phone_number FROM conversation_state "
                "WHERE silence_due_at IS NOT NULL AND handoff IS NULL "
                "AND silence_due_at < now() + make_interval(secs => :within) "
                "AND expires_at > now()"
            ),
            {"within": within},
        ).all()
    return sum(1 for row in rows if (row[0], row[1]) in customers)


def pending_calls(engine: Engine, customers: set[Key]) -> int:
    """Calls of these customers not yet answered (the scenario waits for them as for replies)."""
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT phone_number_id, phone_number FROM calls WHERE state = 'pending'")
        ).all()
    return sum(1 for row in rows if (row[0], row[1]) in customers)


def pending_replies(engine: Engine, customers: set[Key]) -> int:
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT phone_number_id, phone_number FROM outbox WHERE state = 'pending'")
        ).all()
    return sum(1 for row in rows if (row[0], row[1]) in customers)


# A send accepted this long before its gateway's SIGKILL (or a little after: the request was
# already in the sockets) may have died with its gateway before the ack.
KILLED_SENDER_BEFORE, KILLED_SENDER_AFTER = 15.0, 5.0


@dataclass(frozen=True)
class Ambiguity:
    """What the gateways' logs and the fault windows say about sends nobody could be sure of."""

    outbox_ids: set[int]  # sends a gateway logged as ambiguous
    known_wa_ids: set[str]  # Meta message ids some gateway received
    gateway_kills: list[float]  # wall times of gateway SIGKILLs

    def allows(self, outbox_id: int, record: dict[str, Any]) -> bool:
        if outbox_id in self.outbox_ids:
            return True
        return record["wa_message_id"] not in self.known_wa_ids and any(
            kill - KILLED_SENDER_BEFORE <= record["at"] <= kill + KILLED_SENDER_AFTER
            for kill in self.gateway_kills
        )


def check(
    engine: Engine,
    customers: dict[Key, int | None],
    driven: set[str],
    accepted: list[dict[str, Any]],
    ambiguity: Ambiguity,
    timers: dict[Key, dict[str, int]] | None = None,
    calls: set[Key] | None = None,
) -> Findings:
    """`customers` maps each customer to the results its walk must leave (None: not checked);
    `accepted` is the stand-in's record; `timers` the timer turns (by outcome) the customers
    whose walk ends in silence must leave; `calls` the customers whose walk queues one call."""
    found = Findings()
    keys = set(customers)
    with engine.connect() as connection:
        processed = [
            row
            for row in connection.execute(
                text(
                    "SELECT message_id, phone_number_id, phone_number, outbox_ids, outcome "
                    "FROM processed_messages"
                )
            )
            if (row[1], row[2]) in keys
        ]
        outbox = [
            row
            for row in connection.execute(
                text(
                    "SELECT id, phone_number_id, phone_number, source_id, body_json, state, "
                    "wa_message_id, error_code FROM outbox ORDER BY id"
                )
            )
            if (row[1], row[2]) in keys
        ]
        results: dict[Key, int] = defaultdict(int)
        for row in connection.execute(
            text("SELECT phone_number_id, phone_number FROM flow_results")
        ):
            results[(row[0], row[1])] += 1
        queued = [
            row
            for row in connection.execute(
                text("SELECT id, phone_number_id, phone_number, state FROM calls")
            )
            if (row[1], row[2]) in keys
        ]
        finished: dict[str, int] = defaultdict(int)
        for (payload,) in connection.execute(
            text("SELECT payload FROM events WHERE type IN ('call_completed', 'call_failed')")
        ):
            finished[f"{CALL_PREFIX}{_obj(payload).get('call_id', '')}"] += 1
        seen: dict[str, int] = defaultdict(int)
        for (payload,) in connection.execute(
            text("SELECT payload FROM events WHERE type = 'customer_message'")
        ):
            seen[str(_obj(payload).get("message_id", ""))] += 1
    _inbound(found, processed, outbox, driven)
    _timers(found, processed, timers or {})
    _calls(found, processed, queued, finished, calls or set())
    _handed_off(found, processed, seen)
    _replies(found, outbox, accepted, keys, ambiguity)
    for key, expected in customers.items():
        if expected is not None and results[key] != expected:
            found.wrong_results += 1
            found.notes.append(f"customer ***{key[1][-4:]}: {results[key]} results, not {expected}")
    found.conversations, found.stuck = stuck_conversations(engine)
    return found


def _handed_off(found: Findings, processed: list[Any], seen: dict[str, int]) -> None:
    """A handed-off customer's message: answered by no bot reply, and seen by the agents once
    (a customer_message event), however often it was delivered."""
    for row in processed:
        if row[4] != "handed_off":
            continue
        found.handed_off += 1
        if _json(row[3]):
            found.bot_answered_handed_off += 1
            found.notes.append(f"handed-off message {row[0]}: bot replies {row[3]}")
        if seen.get(row[0], 0) != 1:
            found.handed_off_unseen += 1
            found.notes.append(f"handed-off message {row[0]}: {seen.get(row[0], 0)} events")


def _timers(found: Findings, processed: list[Any], expected: dict[Key, dict[str, int]]) -> None:
    """Each silent walk's timers fired once each: one reminder, one end (a timer's dedupe record
    is its id, so a second firing of the same timer cannot be recorded; a second reminder or end
    would be another timer, armed by a firing counted twice)."""
    fired: dict[Key, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in processed:
        if str(row[0]).startswith(TIMER_PREFIX) and row[4] != "ignored":
            found.timers_fired += 1
            fired[(row[1], row[2])][row[4]] += 1
    for key, stages in expected.items():
        got = dict(fired.get(key, {}))
        if got != stages:
            found.timers_wrong += 1
            found.notes.append(f"customer ***{key[1][-4:]}: timer turns {got}, not {stages}")


def _calls(
    found: Findings,
    processed: list[Any],
    queued: list[Any],
    finished: dict[str, int],
    expected: set[Key],
) -> None:
    """Each call walk queued one call, and its result continued the flow exactly once: the
    call is done, its result's turn is recorded (dedupe id call:<id>) and emitted one
    call_completed or call_failed event. A call of another customer (a burst typing "book")
    must be done or superseded, and continued at most once."""
    recorded = {str(row[0]) for row in processed if str(row[0]).startswith(CALL_PREFIX)}
    found.calls_continued = len(recorded)
    by_customer: dict[Key, list[Any]] = defaultdict(list)
    for row in queued:
        by_customer[(row[1], row[2])].append(row)
    for key in expected:
        rows = by_customer.get(key, [])
        source = f"{CALL_PREFIX}{rows[0][0]}" if len(rows) == 1 else ""
        if not (source and rows[0][3] == "done" and source in recorded and finished[source] == 1):
            found.calls_wrong += 1
            got = [(r[0], r[3], finished[f"{CALL_PREFIX}{r[0]}"]) for r in rows]
            found.notes.append(f"customer ***{key[1][-4:]}: calls (id, state, results) {got}")
    for key, rows in by_customer.items():
        for row in rows:
            source = f"{CALL_PREFIX}{row[0]}"
            if key not in expected and (row[3] == "pending" or finished[source] > 1):
                found.calls_wrong += 1
                found.notes.append(f"call {row[0]}: {row[3]}, {finished[source]} results")


def _inbound(found: Findings, processed: list[Any], outbox: list[Any], driven: set[str]) -> None:
    # A timer's or a call result's turn is recorded like a message's (its id: timer:... or
    # call:...); it was not driven.
    internal = (TIMER_PREFIX, CALL_PREFIX)
    ids = {row[0] for row in processed if not str(row[0]).startswith(internal)}
    found.inbound_missing = len(driven - ids)
    found.inbound_unexpected = len(ids - driven)
    listed = {int(i) for row in processed for i in _json(row[3])}
    by_source: dict[str, set[int]] = defaultdict(set)
    for row in outbox:
        by_source[row[3]].add(row[0])
    for row in processed:
        made = by_source.get(row[0], set())
        if made != {int(i) for i in _json(row[3])}:
            found.double_effects += 1
            found.notes.append(f"message {row[0]}: outbox rows {sorted(made)} vs dedupe {row[3]}")
    strays = {row[0] for row in outbox if row[0] not in listed}
    if strays:
        found.double_effects += len(strays)
        found.notes.append(f"outbox rows no processed message lists: {sorted(strays)[:10]}")


def _replies(
    found: Findings,
    outbox: list[Any],
    accepted: list[dict[str, Any]],
    keys: set[Key],
    ambiguity: Ambiguity,
) -> None:
    arrivals: dict[str, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
    numbers = {number for _, number in keys}
    for position, record in enumerate(accepted):
        if record["kind"] != "message" or record["status"] != 200:
            continue
        to = record["body"].get("to", "")
        if to in numbers:
            arrivals[f"{record['phone_number_id']}/{to}"].append((position, record))
    rows_by_lane: dict[str, list[Any]] = defaultdict(list)
    for row in outbox:
        rows_by_lane[f"{row[1]}/{row[2]}"].append(row)
    for lane in set(rows_by_lane) | set(arrivals):
        _lane(found, rows_by_lane.get(lane, []), arrivals.get(lane, []), ambiguity)


def _lane(
    found: Findings,
    rows: list[Any],
    arrivals: list[tuple[int, dict[str, Any]]],
    ambiguity: Ambiguity,
) -> None:
    unmatched = dict(arrivals)
    by_wa = {record["wa_message_id"]: position for position, record in arrivals}
    matched: list[tuple[int, int]] = []  # (outbox id, arrival position)
    for row in rows:
        outbox_id, body, state, wa_id = row[0], json.loads(row[4]), row[5], row[6]
        if state == "pending":
            found.pending += 1
        elif state == "failed":
            found.failed += 1
            found.notes.append(f"outbox {outbox_id} failed with code {row[7]}")
        position = by_wa.get(wa_id) if wa_id else None
        if position is None or position not in unmatched or unmatched[position]["body"] != body:
            position = next((p for p, r in unmatched.items() if r["body"] == body), None)
        if position is None:
            found.lost += 1
            found.notes.append(f"outbox {outbox_id} ({state}) never reached the Graph API")
            continue
        del unmatched[position]
        matched.append((outbox_id, position))
    for record in unmatched.values():
        twin = next((oid for oid, _ in matched if _body_of(rows, oid) == record["body"]), None)
        if twin is None:
            found.phantom += 1
            found.notes.append(f"accepted {record['wa_message_id']} matches no outbox row")
        elif ambiguity.allows(twin, record):
            found.ambiguous_twice += 1
            found.notes.append(f"outbox {twin} sent twice, ambiguously ({record['wa_message_id']})")
        else:
            found.sent_twice += 1
            found.notes.append(f"outbox {twin} sent twice (second: {record['wa_message_id']})")
    latest = -1
    for outbox_id, position in matched:
        if position < latest:
            found.out_of_order += 1
            found.notes.append(f"outbox {outbox_id} arrived before an earlier reply")
        latest = max(latest, position)


def _body_of(rows: list[Any], outbox_id: int) -> Any:
    return next(json.loads(row[4]) for row in rows if row[0] == outbox_id)


def _json(value: Any) -> list[Any]:
    return json.loads(value) if isinstance(value, str) else list(value or [])


def stuck_conversations(engine: Engine) -> tuple[int, list[str]]:
    """Conversations resting where no input leads on: a step missing from their template version,
    or one that is an end, or whose every target is missing: (conversations checked, stuck)."""
    with engine.connect() as connection:
        versions = {
            (row[0], row[1]): _obj(row[2])
            for row in connection.execute(
                text(
                    "SELECT template_name, version, menu_structure FROM workflow_template_versions"
                )
            )
        }
        conversations = connection.execute(
            text(
                "SELECT phone_number, conversation_flow, template_version, current_step, "
                "expires_at FROM conversation_state"
            )
        ).all()
    names = {name for name, _ in versions}
    now = datetime.now(UTC)
    stuck = []
    for number, flow, version, step_name, expires_at in conversations:
        where = f"***{number[-4:]} in {flow} v{version} at {step_name!r}"
        if expires_at is not None and _aware(expires_at) <= now:
            continue  # expired: the next message starts over
        structure = versions.get((flow, version))
        if structure is None:
            stuck.append(f"{where}: template version missing")
            continue
        steps = structure.get("steps", {})
        step = steps.get(step_name)
        if step is None:
            stuck.append(f"{where}: no such step")
            continue
        if step.get("end_conversation"):
            stuck.append(f"{where}: resting on an end step")
            continue
        if "handoff" in step:
            continue  # with people, who say where the bot takes over
        targets = list((step.get("next_steps") or {}).values())
        if step.get("next_step"):
            targets.append(step["next_step"])
        if not any(_leads(t, steps, names) for t in targets):
            stuck.append(f"{where}: no target leads anywhere ({targets})")
    return len(conversations), stuck


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _leads(target: str, steps: dict[str, Any], names: set[str]) -> bool:
    if target.startswith("flow:"):
        return target.removeprefix("flow:") in names
    return target in steps


def _obj(value: Any) -> dict[str, Any]:
    return json.loads(value) if isinstance(value, str) else dict(value)


def committed_completions(engine: Engine, keys: set[Key]) -> dict[Key, set[str]]:
    """The references of the results (completed flows) committed for `keys`."""
    found: dict[Key, set[str]] = defaultdict(set)
    with engine.connect() as connection:
        for business, customer, reference in connection.execute(
            text("SELECT phone_number_id, phone_number, reference FROM flow_results")
        ):
            if (business, customer) in keys:
                found[(business, customer)].add(reference)
    return found
