"""tests/pg.py's queries from outside the app: one kept connection per database."""

from __future__ import annotations

from pg import change, pg_schema, query, rows, rows_async


async def test_one_connection_serves_every_query_on_a_database() -> None:
    async with pg_schema() as url:
        backends = {rows(url, "SELECT pg_backend_pid()")[0][0] for _ in range(20)}
        backends |= {(await rows_async(url, "SELECT pg_backend_pid()"))[0][0]
                     for _ in range(5)}
        assert len(backends) == 1
        change(url, "CREATE TABLE t (x BIGINT)")
        change(url, "INSERT INTO t (x) VALUES (?)", (7,))
        assert query(url, "SELECT * FROM t") == [(7,)]
        # The same statement after the table changed answers with the new shape.
        change(url, "ALTER TABLE t ADD COLUMN y BIGINT DEFAULT 8")
        assert query(url, "SELECT * FROM t") == [(7, 8)]
