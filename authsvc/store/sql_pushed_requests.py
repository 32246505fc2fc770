"""Pushed authorization requests (RFC 9126): store, read, consume once.

A request is keyed by a SHA-256 hash of its ``request_uri``, so the table
never holds a value a browser could present. It is read as often as the
login and consent pages need (each returns to ``/authorize`` with the same
``request_uri``) and consumed once, when the authorization response is made.
"""

import json
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy import exc

from ..errors import AlreadyExists
from ..errors import NotFound
from .schema import pushed_requests
from .sql_base import check_text
from .sql_base import is_foreign_key_error
from .sql_base import reading
from .sql_base import writing


@dataclass(frozen=True)
class PushedRequest:
    request_uri_hash: str
    client_id: str
    # The authorization parameters, each a string.
    params: dict
    expires_at: float
    used_at: float | None = None


class PushedRequestsMixin:
    _engine: sa.Engine

    def create_pushed_request(self, pushed: PushedRequest) -> None:
        """Insert a pushed request; NotFound for an unknown client, AlreadyExists for a reused hash."""
        params = {str(k): str(v) for k, v in pushed.params.items()}
        check_text(request_uri_hash=pushed.request_uri_hash, client_id=pushed.client_id)
        check_text(**{f"param {i}": item for i, pair in enumerate(params.items()) for item in pair})
        values = {
            "request_uri_hash": pushed.request_uri_hash,
            "client_id": pushed.client_id,
            "params": json.dumps(params),
            "expires_at": pushed.expires_at,
            "used_at": None,
        }
        try:
            with writing(self._engine) as conn:
                conn.execute(sa.insert(pushed_requests).values(values))
        except exc.IntegrityError as error:
            if is_foreign_key_error(error):
                raise NotFound("client not found") from error
            raise AlreadyExists("pushed request exists already") from error

    def get_pushed_request(self, request_uri_hash: str, now: float) -> PushedRequest:
        """Return an unused, unexpired pushed request; NotFound otherwise."""
        check_text(request_uri_hash=request_uri_hash)
        table = pushed_requests
        query = sa.select(table).where(
            table.c.request_uri_hash == request_uri_hash, table.c.used_at.is_(None), table.c.expires_at > now
        )
        with reading(self._engine) as conn:
            row = conn.execute(query).first()
        if row is None:
            raise NotFound("pushed request not found, used or expired")
        return _pushed(row)

    def consume_pushed_request(self, request_uri_hash: str, client_id: str, now: float) -> bool:
        """Mark the request used; True for the one caller that wins while it is unused and unexpired."""
        check_text(request_uri_hash=request_uri_hash, client_id=client_id)
        table = pushed_requests
        # One conditional UPDATE: two tabs (or two instances) racing to finish the same request
        # are ordered by the row lock (PostgreSQL) or the write lock (SQLite).
        won = (
            sa.update(table)
            .where(
                table.c.request_uri_hash == request_uri_hash,
                table.c.client_id == client_id,
                table.c.used_at.is_(None),
                table.c.expires_at > now,
            )
            .values(used_at=now)
        )
        with writing(self._engine) as conn:
            return conn.execute(won).rowcount == 1

    def purge_pushed_requests(self, conn: sa.Connection, now: float) -> int:
        """Delete expired pushed requests, used or not (called inside ``purge_expired``)."""
        return conn.execute(sa.delete(pushed_requests).where(pushed_requests.c.expires_at <= now)).rowcount


def _pushed(row) -> PushedRequest:
    mapping = row._mapping
    return PushedRequest(
        request_uri_hash=mapping["request_uri_hash"],
        client_id=mapping["client_id"],
        params=json.loads(mapping["params"]),
        expires_at=float(mapping["expires_at"]),
        used_at=None if mapping["used_at"] is None else float(mapping["used_at"]),
    )
