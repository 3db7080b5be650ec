"""The lookups every stat, open and upload makes find one document through an index on its name, on SQLite and on
PostgreSQL, however many documents the folder holds (a plan that reads the whole folder makes each ``stat`` in a
10,000-document folder read 10,000 rows)."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from storage.db import create_engine
from storage.repository import Repository

CENTRE = "0212345668"


@pytest.fixture(params=["sqlite", "postgresql"])
def repo(request, tmp_path):
    url = f"sqlite:///{tmp_path}/plans.db" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    r = Repository(create_engine(url))
    r.initialize()
    yield r
    r.engine.dispose()


def _statements(repo, call) -> list[tuple[str, object]]:
    seen: list[tuple[str, object]] = []

    def listen(conn, cursor, statement, parameters, context, executemany):
        seen.append((statement, parameters))

    sa.event.listen(repo.engine, "before_cursor_execute", listen)
    try:
        with repo.read() as c:
            call(c)
    finally:
        sa.event.remove(repo.engine, "before_cursor_execute", listen)
    return seen


def _plan(repo, statement: str, parameters) -> str:
    explain = "EXPLAIN QUERY PLAN " if repo.engine.dialect.name == "sqlite" else "EXPLAIN "
    with repo.engine.connect() as c:
        if repo.engine.dialect.name == "postgresql":
            c.exec_driver_sql("SET enable_seqscan = off")  # an empty table: judge the indexes the planner can use
        rows = c.exec_driver_sql(explain + statement, parameters).all()
    return " ".join(str(col) for row in rows for col in row)


def _by_name(plan: str) -> bool:
    """The plan goes through an index on the name (the partial unique one, or 0008's), not the folder's listing."""
    assert "ix_documents_listing" not in plan, plan
    assert "uq_documents_visible_name" in plan or "ix_documents_name" in plan, plan
    return True


def test_a_document_is_looked_up_by_name_through_a_name_index(repo):
    seen = [s for s in _statements(repo, lambda c: repo.visible_document(c, CENTRE, "2026-11", "report.pdf"))
            if "FROM documents" in s[0]]
    assert len(seen) == 1
    assert _by_name(_plan(repo, *seen[0]))


def test_the_rows_read_ahead_in_name_order_come_from_a_name_index(repo):
    seen = [s for s in _statements(repo, lambda c: repo.visible_documents_from(c, CENTRE, "2026-11", "a.pdf", 128))
            if "FROM documents" in s[0]]
    assert len(seen) == 1
    assert _by_name(_plan(repo, *seen[0]))
