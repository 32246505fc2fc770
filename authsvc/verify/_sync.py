"""Keeping the revocation snapshot current: polling is the truth, fan-out is a hint.

The poller asks ``revocation_list_uri?since=N`` with ``If-None-Match`` on every tick and
merges the delta (or replaces everything when the issuer answers with a full list); that
served state is kept apart from the hints. A fan-out message is applied the moment it
arrives, but only provisionally: the first poll sent after it arrived either lists the
entry (the issuer confirms it) or proves it unconfirmed, and the hint is dropped either
way. So after every successful poll ``snapshot`` is exactly what the issuer served, plus
the hints that arrived while that poll was on its way. Anyone who can publish on the
Redis channel can therefore revoke tokens only until the next poll, never for good.

A hint whose version is not the next one means messages were missed (or the hint is
made up), so the poller is woken at once: either way the next poll settles it.

Only writers take a lock; ``verify`` reads ``snapshot`` and ``last_success`` as plain
attributes, whose assignment is atomic.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from ._fetch import MAX_REVOCATION_LIST_BYTES
from ._fetch import FetchError
from ._fetch import get_json
from ._fetch import with_query
from ._log import RateLimitedLog
from ._revocations import EMPTY
from ._revocations import BadRevocationData
from ._revocations import Entry
from ._revocations import Snapshot
from ._revocations import parse_document
from ._revocations import parse_message

#: (arrival number, version, key, entry) of a fan-out message not yet settled by a poll.
_Hint = tuple[int, int, tuple[str, str], Entry]

#: Unsettled hints kept at most; a flood beyond it is left to the poll it wakes.
MAX_HINTS = 10_000


class RevocationSync:
    """The current revocation snapshot; ``url`` returns revocation_list_uri (may raise)."""

    def __init__(self, url: Callable[[], str], *, timeout: float, leeway: float, log: RateLimitedLog) -> None:
        self._url = url
        self._timeout = timeout
        self._leeway = leeway
        self._log = log
        #: What ``verify`` checks: the served list plus unsettled hints. None until the
        #: first successful poll: nothing can be called unrevoked before.
        self.snapshot: Snapshot | None = None
        #: time.monotonic() of the last poll that reached the issuer, 200 or 304.
        self.last_success: float | None = None
        self.wake = threading.Event()
        #: Exactly what the issuer served, never a hint.
        self._served: Snapshot | None = None
        self._etag: str | None = None
        self._full_needed = True
        self._hints: list[_Hint] = []
        self._arrivals = 0
        #: The highest version heard without a gap since the served one.
        self._heard = 0
        self._last_attempt: float | None = None
        self._poll_lock = threading.Lock()
        self._write_lock = threading.Lock()

    def ensure_loaded(self, retry_after: float = 1.0) -> None:
        """Poll now, unless a poll succeeded already or one failed less than ``retry_after`` ago."""
        if self.snapshot is not None:
            return
        with self._poll_lock:
            recent = self._last_attempt is not None and time.monotonic() - self._last_attempt < retry_after
            if self.snapshot is None and not recent:
                self._poll_locked()

    def poll(self) -> bool:
        """Fetch the list (or its delta) once; return whether the issuer answered usefully."""
        with self._poll_lock:
            return self._poll_locked()

    def apply_hint(self, message: dict[str, Any]) -> None:
        """Apply one fan-out message provisionally, until the next poll settles it."""
        version, (key, entry) = parse_message(message)
        if entry.exp + self._leeway < time.time():
            return
        with self._write_lock:
            served = self._served
            if served is not None and version <= served.version:
                return  # the served list already holds every entry up to its version
            if len(self._hints) >= MAX_HINTS:
                self.wake.set()
                self._log.warning("revocation-hints", "too many unconfirmed revocation hints; polling instead")
                return
            self._arrivals += 1
            self._hints.append((self._arrivals, version, key, entry))
            if served is None:
                self.wake.set()  # the first poll will settle this one too
                return
            if version == self._heard + 1:
                self._heard = version
            elif version > self._heard + 1:
                self.wake.set()
            self.snapshot = self.snapshot.merged(served.version, [(key, entry)], now=time.time(), leeway=self._leeway)

    def _poll_locked(self) -> bool:
        self._last_attempt = time.monotonic()
        # Hints that arrived until now are settled by this poll: had the issuer listed
        # them before this request was sent, its answer will hold them.
        settles = self._arrivals
        try:
            url = self._url()
            current = self._served
            requested = None if current is None or self._full_needed else current.version
            if requested is None:
                fetched = get_json(url, timeout=self._timeout, max_bytes=MAX_REVOCATION_LIST_BYTES)
            else:
                fetched = get_json(
                    with_query(url, since=requested),
                    timeout=self._timeout,
                    etag=self._etag,
                    max_bytes=MAX_REVOCATION_LIST_BYTES,
                )
            parsed = None if fetched.body is None else parse_document(fetched.body)
        except (FetchError, BadRevocationData) as exc:
            self._log.warning("revocation-poll", "revocation list poll failed: %s", exc)
            return False
        with self._write_lock:
            if not self._install(parsed, requested, settles):
                self._full_needed = True
                self.wake.set()
                self._log.warning("revocation-delta", "revocation delta does not follow our version; refetching all")
                return False
            self._etag = fetched.etag
            self._full_needed = False
        self.last_success = time.monotonic()
        return True

    def _install(self, parsed: tuple[int, int | None, list] | None, requested: int | None, settles: int) -> bool:
        now = time.time()
        current = self._served
        if parsed is None:  # 304: nothing new since our version, but entries may have expired
            served = current.pruned(now=now, leeway=self._leeway)
        else:
            version, since, entries = parsed
            if since is None:
                base = EMPTY
            elif since == requested:
                base = current
            else:
                return False
            served = base.merged(version, entries, now=now, leeway=self._leeway)
        # A hint this poll settles is listed in ``served`` if the issuer confirmed it, and
        # gone for good if not; a later one may be newer than this answer and waits.
        self._hints = [hint for hint in self._hints if hint[0] > settles and hint[1] > served.version]
        self._heard = served.version
        for _, version, _, _ in sorted(self._hints, key=lambda hint: hint[1]):
            if version == self._heard + 1:
                self._heard = version
            elif version > self._heard + 1:
                self.wake.set()  # still a gap after this answer: ask again
        self._served = served
        provisional = [(key, entry) for _, _, key, entry in self._hints]
        self.snapshot = (
            served.merged(served.version, provisional, now=now, leeway=self._leeway) if provisional else served
        )
        return True
