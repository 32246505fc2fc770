"""The revocation list as immutable snapshots, and the rules for changing it.

The issuer publishes (CONTRACT.md, "Revocation list")::

    {"version": N,
     "jti": [{"jti", "exp"}], "sid": [{"sid", "exp"}],
     "sub": [{"sub", "before", "exp"}], "client_id": [{"client_id", "before", "exp"}]}

and, with ``?since=N``, the same shape holding only newer entries plus ``"since": N``.
Redis carries single entries ``{"version", "kind", "value", "before", "exp"}``.

All of them become one mapping ``(kind, value) -> Entry``. A snapshot is never changed in
place: writers build a new one and swap the reference, so ``verify`` reads it without a
lock. Nothing here does I/O.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from collections.abc import Mapping
from typing import Any

from ._exceptions import RevokedToken

KINDS = ("jti", "sid", "sub", "client_id")
#: Kinds that revoke every token issued before ``before`` rather than one token.
_BEFORE_KINDS = frozenset({"sub", "client_id"})


class BadRevocationData(ValueError):
    """A revocation document or message does not have the contract's shape."""


@dataclasses.dataclass(frozen=True)
class Entry:
    before: float | None
    exp: float

    def merge(self, other: Entry) -> Entry:
        """Combine two entries for the same key; the wider revocation wins."""
        # Both entries have the same kind, so either both carry "before" or neither does.
        before = None if self.before is None else max(self.before, other.before)
        return Entry(before, max(self.exp, other.exp))


@dataclasses.dataclass(frozen=True)
class Snapshot:
    version: int
    entries: Mapping[tuple[str, str], Entry]

    def check(self, claims: Mapping[str, Any]) -> None:
        """Raise RevokedToken when the (already validated) claims match an entry."""
        entries = self.entries
        if ("jti", claims["jti"]) in entries:
            raise RevokedToken()
        sid = claims.get("sid")
        if sid is not None and ("sid", sid) in entries:
            raise RevokedToken()
        iat = claims["iat"]
        for kind in _BEFORE_KINDS:
            entry = entries.get((kind, claims[kind]))
            # "before later than the token's iat": a token issued at that very second
            # came after the revocation and stays valid.
            if entry is not None and entry.before is not None and entry.before > iat:
                raise RevokedToken()

    def merged(
        self, version: int, added: Iterable[tuple[tuple[str, str], Entry]], *, now: float, leeway: float
    ) -> Snapshot:
        """Return a snapshot with ``added`` merged in and expired entries dropped."""
        entries = dict(self.entries)
        for key, entry in added:
            old = entries.get(key)
            entries[key] = entry if old is None else old.merge(entry)
        return Snapshot(version, _unexpired(entries, now, leeway))

    def pruned(self, *, now: float, leeway: float) -> Snapshot:
        """Return a snapshot without the entries no live token can match any more."""
        return Snapshot(self.version, _unexpired(self.entries, now, leeway))


EMPTY = Snapshot(0, {})


def parse_document(doc: Mapping[str, Any]) -> tuple[int, int | None, list[tuple[tuple[str, str], Entry]]]:
    """Return ``(version, since, entries)`` of a list document; ``since`` None for a full list."""
    version = _int(doc.get("version"), "version")
    since = doc.get("since")
    if since is not None:
        since = _int(since, "since")
    entries = []
    for kind in KINDS:
        items = doc.get(kind, [])
        if not isinstance(items, list):
            raise BadRevocationData(f"{kind} is not a list")
        for item in items:
            if not isinstance(item, dict):
                raise BadRevocationData(f"{kind} entry is not an object")
            entries.append(_entry(kind, item.get(kind), item.get("before"), item.get("exp")))
    return version, since, entries


def parse_message(msg: Mapping[str, Any]) -> tuple[int, tuple[tuple[str, str], Entry]]:
    """Return ``(version, entry)`` of one fan-out message."""
    kind = msg.get("kind")
    if kind not in KINDS:
        raise BadRevocationData("unknown kind")
    return _int(msg.get("version"), "version"), _entry(kind, msg.get("value"), msg.get("before"), msg.get("exp"))


def _entry(kind: str, value: object, before: object, exp: object) -> tuple[tuple[str, str], Entry]:
    if not isinstance(value, str):
        raise BadRevocationData(f"{kind} value is not a string")
    if kind in _BEFORE_KINDS:
        before = _number(before, "before")
    else:
        before = None
    return (kind, value), Entry(before, _number(exp, "exp"))


def _unexpired(entries: Mapping[tuple[str, str], Entry], now: float, leeway: float) -> dict:
    # A token is rejected once exp + leeway has passed, so its entry can go then too.
    return {key: entry for key, entry in entries.items() if entry.exp + leeway >= now}


def _int(value: object, name: str) -> int:
    if type(value) is not int or value < 0:
        raise BadRevocationData(f"{name} is not a non-negative integer")
    return value


def _number(value: object, name: str) -> float:
    if type(value) not in (int, float) or not math.isfinite(value):
        raise BadRevocationData(f"{name} is not a number")
    return float(value)
