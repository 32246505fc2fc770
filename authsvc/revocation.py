"""The revocation list: revoked token ids, ended sessions, and "everything
before" entries for subjects and clients.

The shared store is the truth; Redis, when configured, only fans each new
entry out so verifiers hear it at once. A published entry lives until every token
it can match has expired, so the list stays as small as revocations per
second times the access-token lifetime. Session and subject entries are kept
longer in the store (until a browser-session cookie signed before them has
expired, so such a cookie cannot sign in again) but are published only for
the token lifetime: after that no token can match them.
"""

import json
import logging

from .backchannel import logout_claims

log = logging.getLogger(__name__)

CHANNEL_PREFIX = "authsvc:revocations:"


def channel_for(issuer: str) -> str:
    """One channel per issuer, so issuers sharing a Redis never wake each other's verifiers."""
    return CHANNEL_PREFIX + issuer


class NullNotifier:
    def publish(self, entries) -> None:
        pass


class RedisNotifier:
    """Publish each entry on a Redis channel; a lost message only delays a verifier until its next poll."""

    def __init__(self, url: str, settings):
        import redis

        self._settings = settings
        self._channel = channel_for(settings.issuer)
        self._redis = redis.Redis.from_url(url, socket_timeout=0.1, socket_connect_timeout=0.1)

    def publish(self, entries) -> None:
        try:
            with self._redis.pipeline(transaction=False) as pipe:
                for entry in entries:
                    pipe.publish(self._channel, json.dumps(entry_to_message(entry, self._settings)))
                pipe.execute()
        except Exception as exc:  # noqa: BLE001 - fan-out is best effort; the DB holds the truth
            log.warning("revocation fan-out to Redis failed: %s", type(exc).__name__)


def entry_to_message(entry, settings) -> dict:
    return {
        "version": entry.version,
        "kind": entry.kind,
        "value": entry.value,
        "before": entry.before if entry.kind in ("sub", "client_id") else None,
        "exp": published_exp(entry, settings),
    }


def published_exp(entry, settings) -> float:
    """When verifiers may drop an entry: once no token it can match is still live."""
    if entry.kind in ("sid", "sub") and entry.before is not None:
        return min(entry.exp, entry.before + settings.longest_token_ttl)
    return entry.exp


def open_revocations(settings, store, clock) -> "Revocations":
    """The revocation list over ``store``, fanned out through Redis when configured.

    Needs no key ring: an admin command that only revokes (a password change)
    works on a host without signing keys.
    """
    notifier = RedisNotifier(settings.redis_url, settings) if settings.redis_url else NullNotifier()
    return Revocations(settings, store, clock, notifier)


class Revocations:
    def __init__(self, settings, store, clock, notifier=None, on_logouts_queued=None):
        self.settings = settings
        self.store = store
        self.clock = clock
        self.notifier = notifier or NullNotifier()
        # Wakes this process's back-channel logout sender; other instances find the rows when they poll.
        self.on_logouts_queued = on_logouts_queued

    def _horizon(self) -> float:
        # Any token issued up to now has expired by then, leeway included.
        return self.clock() + self.settings.longest_token_ttl

    def _session_horizon(self) -> float:
        # A browser-session cookie signed up to now has expired by then. Until
        # it has, the entry is all that keeps a logged-out (or revoked user's)
        # cookie from signing in again and minting tokens the list no longer names.
        return self.clock() + max(self.settings.longest_token_ttl, self.settings.session_ttl)

    def _add(self, entries) -> list:
        if not entries:
            return []
        stored = self.store.add_revocations(entries, self.clock())
        self.notifier.publish(stored)
        return stored

    def revoke_jtis(self, pairs) -> list:
        """List access tokens by ``(jti, exp)`` until exp + leeway; tokens past that need no entry."""
        # Verifiers accept a token up to `leeway` past its exp, so it is live until then.
        now = self.clock() - self.settings.leeway
        return self._add([("jti", jti, exp + self.settings.leeway, None) for jti, exp in pairs if exp > now])

    def revoke_family(self, family_id: str) -> list:
        """Revoke a refresh-token family and every live access token it produced."""
        now = self.clock()
        return self.revoke_jtis(self.store.revoke_family(family_id, now, live_after=now - self.settings.leeway))

    def end_session(self, sid: str) -> list:
        """Revoke a browser session: its tokens and its refresh tokens, everywhere."""
        now = self.clock()
        live = self.store.revoke_refresh_tokens(now, sid=sid, live_after=now - self.settings.leeway)
        entry = ("sid", sid, self._session_horizon(), now)
        listed = self._add([entry]) + self.revoke_jtis(live)
        self._queue_logouts(sid=sid)
        return listed

    def revoke_subject(self, sub: str) -> list:
        now = self.clock()
        self.store.revoke_refresh_tokens(now, sub=sub)
        listed = self._add([("sub", sub, self._session_horizon(), now)])
        self._queue_logouts(sub=sub)
        return listed

    def revoke_grant(self, sub: str, client_id: str) -> list:
        """Revoke what one user's grant to one client holds: its refresh tokens and their live access tokens."""
        now = self.clock()
        live = self.store.revoke_refresh_tokens(
            now, sub=sub, client_id=client_id, live_after=now - self.settings.leeway
        )
        return self.revoke_jtis(live)

    def _queue_logouts(self, **which) -> None:
        # After the list entry, not before: revoking is what protects the user; the
        # back-channel tokens tell the apps, and are queued in one transaction of their own.
        if self.store.end_sessions(self.clock(), logout_claims, **which) and self.on_logouts_queued:
            self.on_logouts_queued()

    def revoke_client(self, client_id: str) -> list:
        now = self.clock()
        self.store.revoke_refresh_tokens(now, client_id=client_id)
        return self._add([("client_id", client_id, self._horizon(), now)])

    def is_session_ended(self, sid: str, sub: str | None = None, started: float | None = None) -> bool:
        """Tell whether a browser session was ended, or its user revoked after it ``started``."""
        now = self.clock()
        if self.store.is_listed("sid", sid, now):
            return True
        if sub is None or started is None:
            return False
        before = self.store.listed_before("sub", sub, now)
        return before is not None and before > started

    def is_token_revoked(self, claims: dict) -> bool:
        """Apply the list to an access token's claims (same rules as authsvc.verify)."""
        now = self.clock()
        iat = claims.get("iat", 0)
        if self.store.is_listed("jti", claims.get("jti", ""), now):
            return True
        if claims.get("sid") and self.store.is_listed("sid", claims["sid"], now):
            return True
        for kind in ("sub", "client_id"):
            before = self.store.listed_before(kind, claims.get(kind, ""), now)
            if before is not None and before > iat:
                return True
        return False

    def document(self, since: int = 0) -> dict:
        """The revocation list as served at ``revocation_list_uri``."""
        page = self.store.revocations_since(since, self.clock())
        doc = {"version": page.version, "jti": [], "sid": [], "sub": [], "client_id": []}
        if not page.full:
            doc["since"] = since
        now = self.clock()
        for entry in page.entries:
            exp = published_exp(entry, self.settings)
            if exp <= now:
                continue
            item = {entry.kind: entry.value, "exp": exp}
            if entry.kind in ("sub", "client_id"):
                item["before"] = entry.before
            doc[entry.kind].append(item)
        return doc
