"""Every SQL statement about incidents, alerts, cards, decisions, audit, silences, topics
and chat migrations: one module per table.

Functions take an open connection so a caller can group several of them in
one `db.write()` transaction. Rows come back as the domain models of bot.models.
"""

from storage.repo.alerts import alert_owner, alerts_of, firing_labels, firing_start, upsert_alert
from storage.repo.audit_log import audit, audit_rows
from storage.repo.cards import (
    CardRow,
    card_by_message,
    cards_of,
    cards_with_silence,
    get_card,
    plan_card,
    save_card,
    set_card_silence,
    set_card_thread,
)
from storage.repo.chat_migrations import migrations, move_chat, record_migration
from storage.repo.decisions import (
    add_approval,
    approvals_of,
    current_decision,
    decision_extras,
    decision_state_counts,
    decisions_in_state,
    get_decision,
    insert_decision,
    pending_older_than,
    set_reason,
)
from storage.repo.incidents import (
    get_incident,
    history_page,
    incident_truncated,
    incidents_without_card,
    insert_incident,
    open_incident_for_group,
    open_incidents,
    open_incidents_by_severity,
    recent_incidents_for_target,
    update_incident_counts,
)
from storage.repo.meta import get_meta, set_meta
from storage.repo.oncall import (
    DueReminder,
    advance_reminder,
    clear_ack,
    due_reminders,
    reminder_cards,
    reschedule_reminder,
    set_ack,
)
from storage.repo.silences import (
    active_silences,
    ended_unannounced,
    expire_silence,
    get_silence,
    insert_silence,
    known_am_ids,
    mark_announced,
    set_silence_am_id,
    silence_extras,
)
from storage.repo.sql import Conn, parse_ts, req_ts, ts
from storage.repo.topics import get_topic, save_topic

__all__ = [
    "CardRow", "Conn", "DueReminder", "active_silences", "add_approval", "advance_reminder",
    "alert_owner", "alerts_of", "approvals_of", "audit", "audit_rows", "card_by_message",
    "cards_of", "cards_with_silence", "clear_ack", "current_decision", "decision_extras",
    "decision_state_counts",
    "decisions_in_state", "due_reminders", "ended_unannounced",
    "expire_silence", "firing_labels", "firing_start", "get_card", "get_decision",
    "get_incident", "get_meta",
    "get_silence", "get_topic", "history_page", "incident_truncated",
    "incidents_without_card", "insert_decision", "insert_incident",
    "insert_silence", "known_am_ids", "mark_announced", "migrations", "move_chat",
    "open_incident_for_group", "open_incidents", "open_incidents_by_severity", "parse_ts",
    "pending_older_than", "plan_card", "recent_incidents_for_target", "record_migration",
    "reminder_cards", "req_ts", "reschedule_reminder", "save_card", "save_topic", "set_ack",
    "set_card_silence", "set_card_thread", "set_meta", "set_reason", "set_silence_am_id",
    "silence_extras", "ts", "update_incident_counts", "upsert_alert",
]
