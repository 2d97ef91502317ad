"""config.db.Prepared: on PostgreSQL a prepared statement run on the psycopg2 cursor, elsewhere
the statement as it is; either way the values read as SQLAlchemy reads them, and errors raised as
SQLAlchemy raises them."""

from __future__ import annotations

import datetime as dt
import secrets

import pytest
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from campaigns.shared.models import Organization, OrganizationType
from config.db import Prepared, table_of, utcnow

_organizations = table_of(Organization)


def _named(kind: str) -> str:
    return f"test_{kind}_{secrets.token_hex(4)}"  # prepared names are per connection: unique


@pytest.fixture
def organization_id(db_session) -> int:
    row = Organization(name="Collège Préparé", type=OrganizationType.SCO, uai="0990001A")
    db_session.add(row)
    db_session.flush()
    return row.id


def test_a_prepared_read_gives_the_values_sqlalchemy_gives(db_session, organization_id):
    statement = select(
        _organizations.c.id,
        _organizations.c.name,
        _organizations.c.type,
        _organizations.c.created_at,
        _organizations.c.archived_at,
        _organizations.c.uses_gar,
    ).where(
        _organizations.c.id == bindparam("id"),
        _organizations.c.type == OrganizationType.SCO,  # a value the statement holds
        _organizations.c.created_at < bindparam("now", type_=_organizations.c.created_at.type),
    )
    prepared = Prepared(_named("read"), statement)
    connection = db_session.connection()
    parameters = {"id": organization_id, "now": utcnow() + dt.timedelta(minutes=1)}
    expected = [tuple(row) for row in connection.execute(statement, parameters)]
    first = prepared.rows(connection, parameters)  # prepares, then executes
    again = prepared.rows(connection, parameters)  # executes
    assert first == again == expected
    _, name, kind, created_at, archived_at, uses_gar = first[0]
    assert name == "Collège Préparé" and kind is OrganizationType.SCO
    assert created_at.tzinfo == dt.UTC and archived_at is None and uses_gar is False
    assert prepared.rows(connection, {**parameters, "id": -1}) == []


def test_a_prepared_write_returns_nothing_or_what_it_returns(db_session, organization_id):
    archived = utcnow()
    archive = Prepared(
        _named("write"),
        update(_organizations)
        .where(_organizations.c.id == bindparam("organization_id"))
        .values(archived_at=bindparam("at", type_=_organizations.c.archived_at.type), uai=None),
    )
    connection = db_session.connection()
    assert archive.rows(connection, {"organization_id": organization_id, "at": archived}) == []
    read = select(_organizations.c.archived_at, _organizations.c.uai)
    assert connection.execute(read.where(_organizations.c.id == organization_id)).one() == (
        archived,
        None,
    )
    create = Prepared(
        _named("insert"),
        insert(_organizations)
        .values(
            name=bindparam("new_name"),
            type=OrganizationType.SCO,
            created_at=archived,
            uses_gar=False,
        )
        .returning(_organizations.c.id),
    )
    [(new_id,)] = create.rows(connection, {"new_name": "Lycée Préparé"})
    assert isinstance(new_id, int) and new_id != organization_id


def test_a_failed_prepared_statement_raises_as_sqlalchemy_raises(db_session, organization_id):
    duplicate = Prepared(
        _named("duplicate"),
        insert(_organizations).values(
            name="Doublon",
            type=OrganizationType.SCO,
            uai=bindparam("code"),
            created_at=utcnow(),
            uses_gar=False,
        ),
    )
    with pytest.raises(IntegrityError):
        duplicate.rows(db_session.connection(), {"code": "0990001A"})


def test_a_statement_that_leaves_a_python_default_to_sqlalchemy_is_refused(db_session):
    """SQLAlchemy computes a column's Python default at each execution: an EXECUTE sent straight
    to the cursor would store NULL instead, so such a statement is refused, not run."""
    forgetful = Prepared(
        _named("default"),
        insert(_organizations).values(name="Oubli", type=OrganizationType.SCO),  # no created_at
    )
    connection = db_session.connection()
    if connection.dialect.name != "postgresql":
        pytest.skip("elsewhere the statement runs through SQLAlchemy, defaults included")
    with pytest.raises(ValueError, match="created_at"):
        forgetful.rows(connection, {})
