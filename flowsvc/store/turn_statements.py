"""The SQL of a turn: what opening (reading) and closing (writing) one customer's turn runs.

One turn: SQLite runs the statements one by one; PostgreSQL reads in one round trip and writes
with one statement, each write a data-modifying CTE (`close_one`). Several turns (HandleMessages
on PostgreSQL): one statement each to read and to write them all, the turns as arrays.
"""

from __future__ import annotations

from functools import lru_cache

from flowsvc.store.events import NO_OUTBOX, TURN_CTES, TURN_OUTBOX

READ = """
SELECT p.outcome, p.outbox_ids,
       c.conversation_flow, c.template_version, c.current_step, c.context, c.history,
       c.last_interaction, c.expires_at, c.created_at, k.expired_at,
       c.revision, k.turns, k.last_inbound_at, c.handoff, c.silence_due_at, c.reminders, k.language,
       EXISTS (SELECT 1 FROM outbox o WHERE o.phone_number_id = :phone_number_id
               AND o.phone_number = :phone_number AND o.state = 'pending'
               AND NOT COALESCE(o.lease_owner = :lease_owner AND o.lease_expires_at > :now,
                                FALSE)) AS pending
FROM (SELECT 1 AS here) AS here
LEFT JOIN processed_messages p ON p.message_id = :message_id
LEFT JOIN conversation_state c
       ON c.phone_number_id = :phone_number_id AND c.phone_number = :phone_number
LEFT JOIN customers k
       ON k.phone_number_id = :phone_number_id AND k.phone_number = :phone_number
"""
SAVE = """
INSERT INTO conversation_state (phone_number_id, phone_number, conversation_flow, template_version,
    current_step, context, history, last_interaction, expires_at, revision, silence_due_at,
    reminders)
VALUES (:phone_number_id, :phone_number, :flow, :version, :step, :context, :history,
    :last_interaction, :expires_at, :revision, :silence_due_at, :reminders)
ON CONFLICT (phone_number_id, phone_number) DO UPDATE SET
    conversation_flow = excluded.conversation_flow, template_version = excluded.template_version,
    current_step = excluded.current_step, context = excluded.context, history = excluded.history,
    last_interaction = excluded.last_interaction, expires_at = excluded.expires_at,
    revision = excluded.revision, silence_due_at = excluded.silence_due_at,
    reminders = excluded.reminders
"""
REMOVE = """
DELETE FROM conversation_state
WHERE phone_number_id = :phone_number_id AND phone_number = :phone_number
"""
RESULT = """
INSERT INTO flow_results (reference, template_name, template_version, phone_number_id,
    phone_number, context, created_at)
VALUES (:reference, :result_template, :result_version, :phone_number_id, :phone_number,
    :result_context, :now)
"""
OUTBOX = """
INSERT INTO outbox (phone_number_id, phone_number, source_id, body_json, state, attempts,
    next_attempt_at, lease_owner, lease_expires_at, created_at, updated_at)
VALUES {rows}
RETURNING id
"""
OUTBOX_ROW = (
    "(:phone_number_id, :phone_number, :source_id, :body_{n}, 'pending', 0, :now, :lease_owner,"
    " :lease_expires_at, :now, :now)"
)
PROCESSED = """
INSERT INTO processed_messages (message_id, phone_number_id, phone_number, outcome, outbox_ids,
    processed_at)
VALUES (:message_id, :phone_number_id, :phone_number, :outcome, :outbox_ids, :now)
"""
LANGUAGE = """
UPDATE customers SET language = :language
WHERE phone_number_id = :phone_number_id AND phone_number = :phone_number
"""
PROCESSED_FROM_OUTBOX = """
INSERT INTO processed_messages (message_id, phone_number_id, phone_number, outcome, outbox_ids,
    processed_at)
SELECT :message_id, :phone_number_id, :phone_number, :outcome,
       COALESCE(jsonb_agg(id ORDER BY id), '[]'::jsonb), :now
FROM queued
"""
# PostgreSQL, several turns: each statement runs once for all of them, the turns as arrays. (A
# single turn keeps the statements above: they cost PostgreSQL less to plan.) READ_MANY looks up
# each turn's rows by key, one index probe each (LATERAL ... LIMIT 1 is never flattened into a
# join, and message ids and customers are unique, so it returns the same rows): a hash join
# scanned all of processed_messages whenever the statistics were stale (a growing table), and
# a hashed `pending` check read every pending index entry of the outbox, dead ones included
# (a bitmap scan never marks them dead), about half of this statement's CPU.
READ_MANY = """
SELECT p.outcome, p.outbox_ids,
       c.conversation_flow, c.template_version, c.current_step, c.context, c.history,
       c.last_interaction, c.expires_at, c.created_at, k.expired_at,
       c.revision, k.turns, k.last_inbound_at, c.handoff, c.silence_due_at, c.reminders, k.language,
       o.pending IS NOT NULL AS pending
FROM unnest(:phone_number_ids::text[], :phone_numbers::text[], :message_ids::text[])
     WITH ORDINALITY AS t(phone_number_id, phone_number, message_id, n)
LEFT JOIN LATERAL (SELECT outcome, outbox_ids FROM processed_messages
                   WHERE message_id = t.message_id LIMIT 1) AS p ON TRUE
LEFT JOIN LATERAL (SELECT * FROM conversation_state
                   WHERE phone_number_id = t.phone_number_id
                   AND phone_number = t.phone_number LIMIT 1) AS c ON TRUE
LEFT JOIN LATERAL (SELECT * FROM customers
                   WHERE phone_number_id = t.phone_number_id
                   AND phone_number = t.phone_number LIMIT 1) AS k ON TRUE
LEFT JOIN LATERAL (SELECT TRUE AS pending FROM outbox o
                   WHERE o.phone_number_id = t.phone_number_id
                   AND o.phone_number = t.phone_number AND o.state = 'pending'
                   AND NOT COALESCE(o.lease_owner = :lease_owner AND o.lease_expires_at > :now,
                                    FALSE)
                   LIMIT 1) AS o ON TRUE
ORDER BY t.n
"""
CLOSE_MANY = """
WITH saved AS (
    INSERT INTO conversation_state (phone_number_id, phone_number, conversation_flow,
        template_version, current_step, context, history, last_interaction, expires_at,
        revision, silence_due_at, reminders)
    SELECT s.phone_number_id, s.phone_number, s.flow, s.version, s.step, s.context::jsonb,
           s.history::jsonb, s.last_interaction, s.expires_at, s.revision, s.silence_due_at,
           s.reminders
    FROM unnest(:save_phone_number_ids::text[], :save_phone_numbers::text[], :flows::text[],
                :versions::int[], :steps::text[], :contexts::text[], :histories::text[],
                :last_interactions::timestamptz[], :expires::timestamptz[],
                :revisions::bigint[], :silence_due_times::timestamptz[], :reminders::int[])
         AS s(phone_number_id, phone_number, flow, version, step, context, history,
              last_interaction, expires_at, revision, silence_due_at, reminders)
    ON CONFLICT (phone_number_id, phone_number) DO UPDATE SET
        conversation_flow = excluded.conversation_flow,
        template_version = excluded.template_version, current_step = excluded.current_step,
        context = excluded.context, history = excluded.history,
        last_interaction = excluded.last_interaction, expires_at = excluded.expires_at,
        revision = excluded.revision, silence_due_at = excluded.silence_due_at,
        reminders = excluded.reminders
), removed AS (
    DELETE FROM conversation_state c
    USING unnest(:remove_phone_number_ids::text[], :remove_phone_numbers::text[])
          AS r(phone_number_id, phone_number)
    WHERE c.phone_number_id = r.phone_number_id AND c.phone_number = r.phone_number
), stored AS (
    INSERT INTO flow_results (reference, template_name, template_version, phone_number_id,
        phone_number, context, created_at)
    SELECT r.reference, r.template_name, r.version, r.phone_number_id, r.phone_number,
           r.context::jsonb, :now
    FROM unnest(:references::text[], :result_templates::text[], :result_versions::int[],
                :result_phone_number_ids::text[], :result_phone_numbers::text[],
                :result_contexts::text[])
         AS r(reference, template_name, version, phone_number_id, phone_number, context)
), queued AS (
    INSERT INTO outbox (phone_number_id, phone_number, source_id, body_json, state, attempts,
        next_attempt_at, lease_owner, lease_expires_at, created_at, updated_at)
    SELECT q.phone_number_id, q.phone_number, q.source_id, q.body, 'pending', 0, :now,
           q.lease_owner, q.lease_expires_at, :now, :now
    FROM unnest(:outbox_phone_number_ids::text[], :outbox_phone_numbers::text[],
                :source_ids::text[], :bodies::text[], :lease_owners::text[],
                :lease_expiries::timestamptz[]) WITH ORDINALITY
         AS q(phone_number_id, phone_number, source_id, body, lease_owner, lease_expires_at, n)
    ORDER BY q.n
    RETURNING id, source_id
), spoken AS (
    UPDATE customers k SET language = l.language
    FROM unnest(:language_phone_number_ids::text[], :language_phone_numbers::text[],
                :languages::text[]) AS l(phone_number_id, phone_number, language)
    WHERE k.phone_number_id = l.phone_number_id AND k.phone_number = l.phone_number
), processed AS (
    INSERT INTO processed_messages (message_id, phone_number_id, phone_number, outcome,
        outbox_ids, processed_at)
    SELECT p.message_id, p.phone_number_id, p.phone_number, p.outcome,
           COALESCE((SELECT jsonb_agg(q.id ORDER BY q.id) FROM queued q
                     WHERE q.source_id = p.message_id), '[]'::jsonb), :now
    FROM unnest(:processed_ids::text[], :processed_phone_number_ids::text[],
                :processed_phone_numbers::text[], :outcomes::text[])
         AS p(message_id, phone_number_id, phone_number, outcome)
)
SELECT id, source_id FROM queued ORDER BY id
"""
# A turn's statement that writes its events too (store.events.TURN_CTES): the outbox ids, each
# with the last event id, or one row of the last event id alone when it queued nothing. The
# NOTIFY is here because a CTE that only SELECTs runs only if read.
_EVENTS_MAIN = """
SELECT {columns}, c.last_id, c.notified
FROM (SELECT last_id, pg_notify('menuflow_events', last_id::text) AS notified
      FROM counter) AS c
{outbox}"""
CLOSE_MANY_EVENTS = (
    CLOSE_MANY[: CLOSE_MANY.rindex("SELECT id, source_id FROM queued")].rstrip()
    + ", "
    + TURN_CTES.format(outbox=TURN_OUTBOX).strip()
    + _EVENTS_MAIN.format(
        columns="q.id, q.source_id", outbox="LEFT JOIN queued AS q ON TRUE\nORDER BY q.id"
    )
)


@lru_cache(maxsize=64)
def outbox_insert(messages: int) -> str:
    """OUTBOX with a row for each of `messages` replies (bodies as :body_0, :body_1, ...)."""
    return OUTBOX.format(rows=",\n    ".join(OUTBOX_ROW.format(n=n) for n in range(messages)))


@lru_cache(maxsize=128)
def close_one(
    conversation: str,
    has_result: bool,
    messages: int,
    record: bool,
    events: bool = False,
    language: bool = False,
) -> str:
    """One turn's writes as one statement: each write a CTE; the new outbox ids its rows.
    `conversation` is "save", "remove" or "keep" (a send that leaves the conversation alone).
    With `events`, the turn's events too, each row then (outbox id, last event id);
    `language`: the customer chose a language, stored on their row (rare)."""
    writes = [("conversation", SAVE if conversation == "save" else REMOVE)]
    if conversation == "keep":
        writes.clear()
    if language:
        writes.append(("spoken", LANGUAGE))
    if has_result:
        writes.append(("result", RESULT))
    if messages:
        writes.append(("queued", outbox_insert(messages)))
        if record:
            writes.append(("processed", PROCESSED_FROM_OUTBOX))
        main = "SELECT id FROM queued ORDER BY id"
        if events:
            writes.append(("", TURN_CTES.format(outbox=TURN_OUTBOX).strip()))
            main = _EVENTS_MAIN.format(
                columns="q.id", outbox="LEFT JOIN queued AS q ON TRUE\nORDER BY q.id"
            )
    elif events:
        if record:
            writes.append(("processed", PROCESSED.replace(":outbox_ids", "'[]'")))
        writes.append(("", TURN_CTES.format(outbox=NO_OUTBOX).strip()))
        main = _EVENTS_MAIN.format(columns="NULL::bigint AS id", outbox="")
    else:
        if record:
            writes.append(("processed", PROCESSED.replace(":outbox_ids", "'[]'")))
        main = writes.pop()[1] if writes else "SELECT NULL WHERE FALSE"
    ctes = ", ".join(f"{name} AS ({sql})" if name else sql for name, sql in writes)
    return (f"WITH {ctes}\n" if ctes else "") + main
