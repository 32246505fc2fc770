"""Keeping the revocation snapshot current: polling is the truth, fan-out is a hint.

The poller asks ``revocation_list_uri?since=N`` with ``If-None-Match`` on every tick and
merges the delta (or replaces everything when the issuer answers with a full list).
Fan-out messages are merged the moment they arrive; a message whose version is not the
next one means some were missed, so the poller is woken at once. A hint newer than a full
list that raced it is merged again on top, so it is not lost for a whole interval.

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

_Hint = tuple[int, tuple[str, str], Entry]


class RevocationSync:
    """The current revocation snapshot; ``url`` returns revocation_list_uri (may raise)."""

    def __init__(self, url: Callable[[], str], *, timeout: float, leeway: float, log: RateLimitedLog) -> None:
        self._url = url
        self._timeout = timeout
        self._leeway = leeway
        self._log = log
        #: None until the first successful poll: nothing can be called unrevoked before.
        self.snapshot: Snapshot | None = None
        #: time.monotonic() of the last poll that reached the issuer, 200 or 304.
        self.last_success: float | None = None
        self.wake = threading.Event()
        self._etag: str | None = None
        self._full_needed = True
        self._hints: list[_Hint] = []
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
        """Merge one fan-out message now; wake the poller on a version gap."""
        version, (key, entry) = parse_message(message)
        if entry.exp + self._leeway < time.time():
            return
        with self._write_lock:
            current = self.snapshot
            if current is None:
                self.wake.set()  # the first poll will bring this entry along
                return
            if version > current.version:
                self._hints.append((version, key, entry))
            # Advance the version only when contiguous, so the next ?since= asks for the gap.
            contiguous = version == current.version + 1
            if version > current.version + 1:
                self.wake.set()
            self.snapshot = current.merged(
                version if contiguous else current.version,
                [(key, entry)],
                now=time.time(),
                leeway=self._leeway,
            )

    def _poll_locked(self) -> bool:
        self._last_attempt = time.monotonic()
        try:
            url = self._url()
            current = self.snapshot
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
            if not self._install(parsed, requested):
                self._full_needed = True
                self.wake.set()
                self._log.warning("revocation-delta", "revocation delta does not follow our version; refetching all")
                return False
            self._etag = fetched.etag
            self._full_needed = False
        self.last_success = time.monotonic()
        return True

    def _install(self, parsed: tuple[int, int | None, list] | None, requested: int | None) -> bool:
        now = time.time()
        current = self.snapshot
        if parsed is None:  # 304: nothing new, but entries may have expired
            self.snapshot = current.pruned(now=now, leeway=self._leeway)
            return True
        version, since, entries = parsed
        if since is None:
            base = EMPTY
        elif since == requested:
            base = current  # which may hold hints newer than the request: merging is idempotent
        else:
            return False
        self._hints = [hint for hint in self._hints if hint[0] > version]
        replayed = [(key, entry) for _, key, entry in self._hints]
        self.snapshot = base.merged(version, entries + replayed, now=now, leeway=self._leeway)
        return True
