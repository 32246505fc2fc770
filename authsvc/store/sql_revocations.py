"""The revocation list: add entries, read what changed since a version, look one up.

Versions come from the ``revocation_version`` row of store_meta, bumped by
UPDATE at the start of add_revocations. That row lock serialises writers, so
versions commit in the order they are handed out: a poller that has seen
version N can never later find a version below N appear. (A database
sequence would not promise that: a lower number may commit after a higher one.)
"""

import sqlalchemy as sa

from .records import Revocation
from .records import RevocationPage
from .schema import revocations
from .schema import store_meta
from .sql_base import check_text
from .sql_base import reading
from .sql_base import snapshot
from .sql_base import to_record
from .sql_base import upsert
from .sql_base import writing

KINDS = ("jti", "sid", "sub", "client_id")

_VERSION = "revocation_version"
_PURGED = "revocation_purged"


class RevocationsMixin:
    _engine: sa.Engine

    def add_revocations(self, entries: list[tuple[str, str, float, float | None]], now: float) -> list[Revocation]:
        """List entries of (kind, value, exp, before) in one transaction; return them versioned.

        Listing a (kind, value) again keeps its single row, raises exp and
        before to the larger value and gives it a new version, so pollers
        asking ?since=N see the change.
        """
        for kind, value, _exp, _before in entries:
            _check_kind(kind)
            check_text(value=value)
        if not entries:
            return []
        bump = (
            sa.update(store_meta)
            .where(store_meta.c.key == _VERSION)
            .values(value=store_meta.c.value + len(entries))
            .returning(store_meta.c.value)
        )
        stored = []
        with writing(self._engine) as conn:
            version = conn.execute(bump).scalar_one() - len(entries)
            for kind, value, exp, before in entries:
                version += 1
                insert = upsert(conn, revocations).values(
                    version=version,
                    kind=kind,
                    value=value,
                    exp=float(exp),
                    before=None if before is None else float(before),
                )
                insert = insert.on_conflict_do_update(
                    index_elements=[revocations.c.kind, revocations.c.value],
                    set_={
                        "version": insert.excluded.version,
                        "exp": _larger(revocations.c.exp, insert.excluded.exp),
                        "before": _larger(revocations.c.before, insert.excluded.before),
                    },
                ).returning(*revocations.c)
                stored.append(to_record(Revocation, conn.execute(insert).one()))
        return stored

    def revocations_since(self, version: int, now: float) -> RevocationPage:
        """Return the live entries newer than version, or all of them when a delta cannot be trusted."""
        # One snapshot: the meta row and the entries must agree, or a full
        # list could miss an entry re-versioned between the two reads.
        with snapshot(self._engine) as conn:
            meta = dict(conn.execute(sa.select(store_meta.c.key, store_meta.c.value)).all())
            current, purged = meta[_VERSION], meta[_PURGED]
            # 0 is a first poll, a future version comes from another database,
            # and below the purge watermark a deleted row may have been missed.
            full = version <= 0 or version > current or version < purged
            query = sa.select(revocations).where(revocations.c.exp > now)
            if not full:
                query = query.where(revocations.c.version > version)
            rows = conn.execute(query.order_by(revocations.c.version)).all()
        return RevocationPage(version=current, entries=[to_record(Revocation, row) for row in rows], full=full)

    def revocation_versions(self) -> tuple[int, int]:
        """Return (highest version assigned, highest version purged): one small read, no entries."""
        query = sa.select(store_meta.c.key, store_meta.c.value).where(store_meta.c.key.in_((_VERSION, _PURGED)))
        with reading(self._engine) as conn:
            meta = dict(conn.execute(query).all())
        return meta[_VERSION], meta[_PURGED]

    def is_listed(self, kind: str, value: str, now: float) -> bool:
        """Tell whether a live entry lists this (kind, value)."""
        return self._live(kind, value, now) is not None

    def listed_before(self, kind: str, value: str, now: float) -> float | None:
        """Return ``before`` of the live entry for this (kind, value), None when unlisted."""
        row = self._live(kind, value, now)
        return None if row is None else row.before

    def _live(self, kind: str, value: str, now: float) -> sa.Row | None:
        _check_kind(kind)
        check_text(value=value)
        query = sa.select(revocations.c.before).where(
            revocations.c.kind == kind, revocations.c.value == value, revocations.c.exp > now
        )
        with reading(self._engine) as conn:
            return conn.execute(query).first()


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"revocation kind must be one of {', '.join(KINDS)}")


def _larger(current: sa.ColumnElement, new: sa.ColumnElement) -> sa.ColumnElement:
    # NULL-aware max: SQLite's max() returns NULL when either side is NULL.
    return sa.case(
        (new.is_(None), current),
        (current.is_(None), new),
        (new > current, new),
        else_=current,
    )
