"""Clients (create, get, list, update(fn), delete) and the consents users gave them."""

import json
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy import exc

from ..errors import AlreadyExists
from ..errors import NotFound
from .client_cache import client_changed
from .records import Client
from .records import Consent
from .schema import clients
from .schema import consents
from .sql_base import check_record
from .sql_base import check_text
from .sql_base import is_foreign_key_error
from .sql_base import reading
from .sql_base import row_values
from .sql_base import to_record
from .sql_base import upsert
from .sql_base import writing

# Tuple fields of Client, kept as JSON arrays.
_LISTS = ("redirect_uris", "post_logout_redirect_uris", "grant_types", "audiences", "allowed_origins")


class ClientsMixin:
    _engine: sa.Engine

    def create_client(self, client: Client) -> Client:
        """Insert a client; AlreadyExists when its client_id is taken."""
        check_record(client)
        try:
            with writing(self._engine) as conn:
                conn.execute(sa.insert(clients).values(_values(client)))
        except exc.IntegrityError as error:
            raise AlreadyExists(f"client {client.client_id!r} exists already") from error
        return client

    def get_client(self, client_id: str) -> Client:
        """Return the client; NotFound otherwise."""
        check_text(client_id=client_id)
        with reading(self._engine) as conn:
            row = conn.execute(sa.select(clients).where(clients.c.client_id == client_id)).first()
        if row is None:
            raise NotFound("client not found")
        return _client(row)

    def list_clients(self) -> list[Client]:
        """Return every client, ordered by client_id."""
        with reading(self._engine) as conn:
            rows = conn.execute(sa.select(clients).order_by(clients.c.client_id)).all()
        return [_client(row) for row in rows]

    def update_client(self, client_id: str, fn: Callable[[Client], Client]) -> Client:
        """Replace a client by fn(client) while holding its row; NotFound when absent."""
        check_text(client_id=client_id)
        where = clients.c.client_id == client_id
        with writing(self._engine) as conn:
            row = conn.execute(sa.select(clients).where(where).with_for_update()).first()
            if row is None:
                raise NotFound("client not found")
            updated = fn(_client(row))
            if updated.client_id != client_id:
                raise ValueError("update_client cannot change client_id")
            check_record(updated)
            conn.execute(sa.update(clients).where(where).values(_values(updated)))
        client_changed(client_id)
        return updated

    def delete_client(self, client_id: str) -> None:
        """Delete a client with its codes, refresh tokens and consents; NotFound when absent."""
        check_text(client_id=client_id)
        # The rest goes by ON DELETE CASCADE, in this same statement.
        with writing(self._engine) as conn:
            result = conn.execute(sa.delete(clients).where(clients.c.client_id == client_id))
            if result.rowcount == 0:
                raise NotFound("client not found")
        client_changed(client_id)

    def get_consent(self, sub: str, client_id: str) -> Consent:
        """Return what this user granted this client; NotFound otherwise."""
        check_text(sub=sub, client_id=client_id)
        query = sa.select(consents).where(consents.c.sub == sub, consents.c.client_id == client_id)
        with reading(self._engine) as conn:
            row = conn.execute(query).first()
        if row is None:
            raise NotFound("consent not found")
        return to_record(Consent, row, redirect_uris=tuple(json.loads(row._mapping["redirect_uris"])))

    def save_consent(self, consent: Consent) -> None:
        """Insert or replace a consent; NotFound when the client does not exist."""
        check_record(consent)
        try:
            with writing(self._engine) as conn:
                values = row_values(consent)
                values["redirect_uris"] = json.dumps(list(consent.redirect_uris))
                insert = upsert(conn, consents).values(values)
                insert = insert.on_conflict_do_update(
                    index_elements=[consents.c.sub, consents.c.client_id],
                    set_={
                        "scope": insert.excluded.scope,
                        "granted_at": insert.excluded.granted_at,
                        "redirect_uris": insert.excluded.redirect_uris,
                    },
                )
                conn.execute(insert)
        except exc.IntegrityError as error:
            if is_foreign_key_error(error):
                raise NotFound("client not found") from error
            raise

    def list_consents_of(self, sub: str) -> list[tuple[Consent, Client]]:
        """Return what this user granted, each with its client, oldest grant first."""
        check_text(sub=sub)
        query = sa.select(consents).where(consents.c.sub == sub).order_by(consents.c.granted_at, consents.c.client_id)
        with reading(self._engine) as conn:
            rows = conn.execute(query).all()
            ids = [row.client_id for row in rows]
            found = {
                row.client_id: _client(row)
                for row in conn.execute(sa.select(clients).where(clients.c.client_id.in_(ids)))
            }
        return [
            (
                to_record(Consent, row, redirect_uris=tuple(json.loads(row._mapping["redirect_uris"]))),
                found[row.client_id],
            )
            for row in rows
            if row.client_id in found
        ]

    def delete_consent(self, sub: str, client_id: str) -> bool:
        """Forget what this user granted this client; False when there was nothing to forget."""
        check_text(sub=sub, client_id=client_id)
        where = sa.and_(consents.c.sub == sub, consents.c.client_id == client_id)
        with writing(self._engine) as conn:
            return conn.execute(sa.delete(consents).where(where)).rowcount == 1


def _values(client: Client) -> dict:
    values = row_values(client)
    for name in _LISTS:
        values[name] = json.dumps(list(values[name]))
    return values


def _client(row: sa.Row) -> Client:
    lists = {name: tuple(json.loads(row._mapping[name])) for name in _LISTS}
    return to_record(Client, row, **lists)
