"""What the schema holds, read from the database itself in either dialect: the tables and
their columns, and the foreign keys. Retention follows foreign keys with it; copy-db and the
schema tests compare the two backends with it."""

from __future__ import annotations

from storage.db import dialect
from storage.repo.sql import Conn, fetch_all

# Tables of the backends' own machinery, not of the data: the schema version of
# PostgreSQL, SQLite's FTS5 shadow tables and sequence table.
_INTERNAL_PREFIXES = ("sqlite_", "knowledge_fts_", "knowledge_recent_fts_")
FULL_TEXT = ("knowledge_fts", "knowledge_recent_fts")  # FTS5 tables in SQLite
INTERNAL = {"opsgate_schema"}


async def table_columns(conn: Conn) -> dict[str, list[str]]:
    """Every data table and its columns, in the order the schema declares them."""
    if dialect(conn) == "postgresql":
        rows = await fetch_all(
            conn,
            """SELECT table_name, column_name FROM information_schema.columns
               WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position""")
        found: dict[str, list[str]] = {}
        for table, column in rows:
            if table not in INTERNAL:
                found.setdefault(table, []).append(column)
        return found
    tables = await fetch_all(
        conn, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
    found = {}
    for (table,) in tables:
        if table.startswith(_INTERNAL_PREFIXES) or table in INTERNAL:
            continue
        if table in FULL_TEXT:
            # FTS5's columns are not in table_info's usual form; its key is the rowid.
            found[table] = ["rowid", "title", "body"]
            continue
        cols = await fetch_all(conn, "SELECT name FROM pragma_table_info(?) ORDER BY cid",
                               (table,))
        found[table] = [c[0] for c in cols]
    return found


async def references_to(conn: Conn, parent: str) -> list[tuple[str, str, str]]:
    """(table, column, parent column) of every foreign key that references `parent`."""
    if dialect(conn) == "postgresql":
        rows = await fetch_all(
            conn,
            """SELECT kcu.table_name, kcu.column_name, ccu.column_name
               FROM information_schema.referential_constraints rc
               JOIN information_schema.key_column_usage kcu
                 ON kcu.constraint_name = rc.constraint_name
                AND kcu.constraint_schema = rc.constraint_schema
               JOIN information_schema.constraint_column_usage ccu
                 ON ccu.constraint_name = rc.unique_constraint_name
                AND ccu.constraint_schema = rc.unique_constraint_schema
               WHERE rc.constraint_schema = current_schema() AND ccu.table_name = ?
               ORDER BY kcu.table_name, kcu.column_name""",
            (parent,))
        return [(r[0], r[1], r[2]) for r in rows]
    found = []
    for table in await table_columns(conn):
        if table in FULL_TEXT:
            continue
        for key in await fetch_all(conn, "SELECT * FROM pragma_foreign_key_list(?)", (table,)):
            if key["table"] == parent:
                found.append((table, key["from"], key["to"] or await _primary_key(conn, parent)))
    return found


async def _primary_key(conn: Conn, table: str) -> str:
    # A foreign key written without a column refers to the parent's primary key.
    rows = await fetch_all(conn, "SELECT name FROM pragma_table_info(?) WHERE pk = 1", (table,))
    return rows[0][0] if rows else "rowid"
