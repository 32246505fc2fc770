"""Store: one SQL database (SQLite or PostgreSQL) behind the dex-style vocabulary.

The methods live in one module per noun (sql_users.py, sql_clients.py, …);
this class joins them and owns the engine's life: upgrade, ping, close and
the housekeeping that spans every table.
"""

import pathlib
import time
from collections.abc import Callable

import sqlalchemy as sa

from ..errors import StoreUnavailable
from . import migrate
from .schema import authorization_codes
from .schema import counters
from .schema import refresh_tokens
from .schema import revocations
from .schema import store_meta
from .sql_base import UPGRADE_HINT
from .sql_base import create_engine
from .sql_base import reading
from .sql_base import writing
from .sql_clients import ClientsMixin
from .sql_codes import CodesMixin
from .sql_counters import CountersMixin
from .sql_device_codes import DeviceCodesMixin
from .sql_logout_outbox import LogoutOutboxMixin
from .sql_pushed_requests import PushedRequestsMixin
from .sql_refresh_tokens import RefreshTokensMixin
from .sql_revocations import RevocationsMixin
from .sql_sessions import SessionsMixin
from .sql_used_jtis import UsedJtisMixin
from .sql_users import UsersMixin

# A used code is kept this long after expiry, so a late replay is still
# recognised as a replay (and revokes what the code issued) rather than unknown.
CODE_RETENTION = 3600


def open_store(url: str, *, clock: Callable[[], float] = time.time) -> "Store":
    """Open the store at a SQLAlchemy URL; no connection is made until first use."""
    return Store(create_engine(url), clock=clock)


class Store(
    UsersMixin,
    ClientsMixin,
    CodesMixin,
    RefreshTokensMixin,
    RevocationsMixin,
    CountersMixin,
    UsedJtisMixin,
    PushedRequestsMixin,
    DeviceCodesMixin,
    SessionsMixin,
    LogoutOutboxMixin,
):
    """Every record authsvc keeps, in one SQL database shared by all instances."""

    def __init__(self, engine: sa.Engine, *, clock: Callable[[], float] = time.time) -> None:
        self._engine = engine
        self._clock = clock
        self.url_display = engine.url.render_as_string(hide_password=True)

    def __repr__(self) -> str:
        return f"<Store {self.url_display}>"

    def upgrade(self) -> list[str]:
        """Create or migrate the schema; return the names of the steps applied."""
        return migrate.upgrade(self._engine, clock=self._clock)

    def schema_version(self) -> int:
        """Return the number of the last migration step applied (0: empty database)."""
        with reading(self._engine) as conn:
            return migrate.current_version(conn)

    def ping(self) -> None:
        """Raise StoreUnavailable unless the database answers and holds the current schema."""
        url = self._engine.url
        database = url.database or ""
        if url.get_backend_name() == "sqlite" and database not in ("", ":memory:") and not database.startswith("file:"):
            # Connecting would silently create an empty file where the real one was.
            if not pathlib.Path(database).exists():
                raise StoreUnavailable(f"database unavailable: {database} does not exist")
        with reading(self._engine) as conn:
            if migrate.current_version(conn) < migrate.STEPS[-1][0]:
                raise StoreUnavailable(f"database unavailable: {UPGRADE_HINT}")

    def close(self) -> None:
        """Close every pooled connection."""
        self._engine.dispose()

    def purge_expired(self, now: float) -> int:
        """Delete rows nothing can need any more; return how many went."""
        codes = authorization_codes
        with writing(self._engine) as conn:
            deleted = conn.execute(sa.delete(codes).where(codes.c.expires_at < now - CODE_RETENTION)).rowcount
            deleted += conn.execute(sa.delete(refresh_tokens).where(refresh_tokens.c.expires_at < now)).rowcount
            deleted += conn.execute(sa.delete(counters).where(counters.c.expires_at <= now)).rowcount
            deleted += self.purge_used_jtis(conn, now)
            deleted += self.purge_pushed_requests(conn, now)
            deleted += self.purge_device_codes(conn, now)
            deleted += self.purge_sessions(conn, now)
            deleted += self.purge_logout_outbox(conn, now)
            purged = (
                conn.execute(sa.delete(revocations).where(revocations.c.exp <= now).returning(revocations.c.version))
                .scalars()
                .all()
            )
            if purged:
                # Raise the watermark: a poller behind it may have missed a deleted row.
                watermark = store_meta.c.value
                conn.execute(
                    sa.update(store_meta)
                    .where(store_meta.c.key == "revocation_purged", watermark < max(purged))
                    .values(value=max(purged))
                )
        return deleted + len(purged)
