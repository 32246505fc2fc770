"""Users: create, get (by sub or username), list and update(fn)."""

import unicodedata
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy import exc

from ..errors import AlreadyExists
from ..errors import NotFound
from .records import User
from .schema import users
from .sql_base import check_record
from .sql_base import check_text
from .sql_base import reading
from .sql_base import row_values
from .sql_base import to_record
from .sql_base import writing


def username_key(username: str) -> str:
    """Fold a username so that look-alikes ("Admin", "ａdmin") are one key."""
    return unicodedata.normalize("NFKC", username).casefold()


class UsersMixin:
    _engine: sa.Engine

    def create_user(self, user: User) -> User:
        """Insert a user; AlreadyExists when its sub or folded username is taken."""
        check_record(user)
        try:
            with writing(self._engine) as conn:
                conn.execute(sa.insert(users).values(_values(user)))
        except exc.IntegrityError as error:
            raise AlreadyExists("user exists already (sub or username taken)") from error
        return user

    def get_user(self, sub: str) -> User:
        """Return the user with this sub; NotFound otherwise."""
        check_text(sub=sub)
        return self._one_user(users.c.sub == sub)

    def get_user_by_username(self, username: str) -> User:
        """Return the user whose folded username matches; NotFound otherwise."""
        check_text(username=username)
        return self._one_user(users.c.username_key == username_key(username))

    def list_users(self) -> list[User]:
        """Return every user, ordered by folded username."""
        with reading(self._engine) as conn:
            rows = conn.execute(sa.select(users).order_by(users.c.username_key)).all()
        return [to_record(User, row) for row in rows]

    def update_user(self, sub: str, fn: Callable[[User], User]) -> User:
        """Replace a user by fn(user) while holding its row; NotFound when absent.

        fn runs inside the transaction and blocks other writers meanwhile:
        do slow work (password hashing) before calling, not inside fn.
        """
        check_text(sub=sub)
        try:
            with writing(self._engine) as conn:
                query = sa.select(users).where(users.c.sub == sub).with_for_update()
                row = conn.execute(query).first()
                if row is None:
                    raise NotFound(f"user {sub!r} not found")
                updated = fn(to_record(User, row))
                if updated.sub != sub:
                    raise ValueError("update_user cannot change sub")
                check_record(updated)
                conn.execute(sa.update(users).where(users.c.sub == sub).values(_values(updated)))
        except exc.IntegrityError as error:
            raise AlreadyExists("username taken") from error
        return updated

    def _one_user(self, where: sa.ColumnElement[bool]) -> User:
        with reading(self._engine) as conn:
            row = conn.execute(sa.select(users).where(where)).first()
        if row is None:
            raise NotFound("user not found")
        return to_record(User, row)


def _values(user: User) -> dict:
    return {**row_values(user), "username_key": username_key(user.username)}
