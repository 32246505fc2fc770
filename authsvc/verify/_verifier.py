"""TokenVerifier: offline verification of authsvc access tokens in a resource server.

On the hot path ``verify`` does no I/O and takes no lock once warm: structural checks,
a dict lookup for the key, one PyJWT call with exactly one algorithm, and a read of the
current revocation snapshot. Everything that talks to the issuer runs in daemon threads
(the revocation poller, and the Redis subscriber when configured) or, for a kid never
seen before, in a refetch that is rate-limited across all threads.
"""

from __future__ import annotations

import math
import os
import random
import threading
import time
import weakref
from collections.abc import Iterable
from typing import Any

import jwt

from ._claims import REQUIRED
from ._claims import as_scopes
from ._claims import check_claims
from ._claims import check_header
from ._claims import check_scopes
from ._claims import translate
from ._compact import DEFAULT_MAX_TOKEN_BYTES
from ._compact import decode_header
from ._compact import parse_payload
from ._compact import split_compact
from ._dpop import DEFAULT_MAX_AGE as DEFAULT_DPOP_MAX_AGE
from ._dpop import DEFAULT_REPLAY_CACHE_SIZE
from ._dpop import ProofChecker
from ._exceptions import InvalidSignature
from ._exceptions import VerifierUnavailable
from ._fanout import FanoutSubscriber
from ._fanout import channel_for
from ._fetch import Discovery
from ._fetch import discover
from ._fetch import get_json
from ._jwks import KeyCache
from ._log import RateLimitedLog
from ._log import logger
from ._sync import RevocationSync

#: RFC 7519 allows "a few minutes"; more than this hides a broken clock or a replay.
MAX_LEEWAY = 60
#: Even without an unknown kid, refetch the JWKS this often so a removed key stops working.
_JWKS_MAX_AGE = 300.0
#: Headers of tokens that verified, kept per verifier: a key signs every token with the same
#: header bytes, so reading and checking them once is enough. Only a valid signature gets a
#: header in, so the bound is only ever reached by the issuer's own key rotations.
_MAX_KNOWN_HEADERS = 16
_VERIFIERS: weakref.WeakSet[TokenVerifier] = weakref.WeakSet()
#: Our own generator: jitter must not draw from (or disturb) the application's global one.
_JITTER = random.Random()


class _StrictPyJWT(jwt.PyJWT):
    """PyJWT, reading the payload once, with this library's strict JSON rules and claim types.

    ``_decode_payload`` is PyJWT's hook for subclasses (its own tests decompress payloads
    through it). It runs after the signature check and before PyJWT's claim validation,
    so ``exp``/``nbf``/``iat`` reach PyJWT only once known to be finite numbers.
    """

    def _decode_payload(self, decoded: dict[str, Any]) -> dict[str, Any]:
        payload = parse_payload(decoded["payload"])
        check_claims(payload)
        return payload


_PYJWT = _StrictPyJWT(options={"require": list(REQUIRED)})


class TokenVerifier:
    """Verify access tokens issued by ``issuer`` for ``audience``, without calling the issuer.

    ``with TokenVerifier(...) as v:`` closes the background threads on exit.
    """

    def __init__(
        self,
        issuer: str,
        audience: str,
        *,
        leeway: float = 30,
        jwks_refetch_interval: float = 5.0,
        revocation_poll_interval: float = 5.0,
        max_revocation_staleness: float = 60.0,
        fail_open: bool = False,
        redis_url: str | None = None,
        http_timeout: float = 5.0,
        max_token_bytes: int = DEFAULT_MAX_TOKEN_BYTES,
        dpop_max_age: float = DEFAULT_DPOP_MAX_AGE,
        dpop_replay_cache_size: int = DEFAULT_REPLAY_CACHE_SIZE,
        start: bool = True,
    ) -> None:
        if not isinstance(issuer, str) or not issuer or not isinstance(audience, str) or not audience:
            raise ValueError("issuer and audience must be non-empty strings")
        if not 0 <= leeway <= MAX_LEEWAY:
            raise ValueError(f"leeway must be between 0 and {MAX_LEEWAY} seconds")
        for name, value in (
            ("jwks_refetch_interval", jwks_refetch_interval),
            ("revocation_poll_interval", revocation_poll_interval),
            ("http_timeout", http_timeout),
        ):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of seconds")
        if not max_revocation_staleness > revocation_poll_interval:
            raise ValueError("max_revocation_staleness must exceed revocation_poll_interval")
        if audience.rstrip("/") == issuer.rstrip("/"):
            # Such tokens are for the issuer's own endpoints. Once per verifier, at start-up:
            # a misconfiguration to fix, not something to repeat on every request.
            logger.warning(
                "TokenVerifier audience is the issuer (%s): it accepts every token issued without an "
                "audience of its own, for any client. Register this service's own identifier "
                "(clients create --audience URI) and pass that as audience.",
                issuer,
            )
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self.fail_open = fail_open
        self._poll_interval = revocation_poll_interval
        self._max_staleness = max_revocation_staleness
        self._timeout = http_timeout
        self._max_token_bytes = max_token_bytes
        if not (math.isfinite(dpop_max_age) and 0 < dpop_max_age <= 300):
            raise ValueError("dpop_max_age must be between 0 and 300 seconds")
        if type(dpop_replay_cache_size) is not int or dpop_replay_cache_size < 1:
            raise ValueError("dpop_replay_cache_size must be a positive whole number")
        self._dpop_options = (dpop_max_age, dpop_replay_cache_size)
        self._redis_url = redis_url
        self._refetch_interval = jwks_refetch_interval
        self._known_headers: dict[str, tuple[str, str]] = {}
        self._init_runtime()
        _VERIFIERS.add(self)
        if start:
            self._start()

    def _init_runtime(self) -> None:
        # Everything that holds a lock or a thread, so a forked child can build it afresh.
        self._log = RateLimitedLog()
        self._dpop = ProofChecker(*self._dpop_options)
        self._discovery: Discovery | None = None
        self._discovery_lock = threading.Lock()
        self._keys = KeyCache(self._fetch_jwks, self._refetch_interval, self._log)
        self._revocations = RevocationSync(
            lambda: self._discover().revocation_list_uri, timeout=self._timeout, leeway=self.leeway, log=self._log
        )
        self._stop = threading.Event()
        self._fanout: FanoutSubscriber | None = None
        if self._redis_url is not None:
            self._fanout = FanoutSubscriber(
                self._redis_url, channel_for(self.issuer), self._revocations, self._stop, self._log
            )
        self._threads: list[threading.Thread] = []
        self._started = False
        self._start_lock = threading.Lock()

    def verify(
        self,
        token: str,
        *,
        scopes: str | Iterable[str] = (),
        dpop_proof: str | None = None,
        method: str | None = None,
        url: str | None = None,
    ) -> dict[str, Any]:
        """Return the claims of a valid access token, or raise an ``InvalidToken`` subclass.

        A DPoP-bound token (``cnf.jkt``, RFC 9449) needs ``dpop_proof`` (the request's
        ``DPoP`` header) with the request's ``method`` and full ``url``; the proof must be
        signed by the bound key, for this token (``ath``), method and URL, and be fresh and
        unused. A bound token without a proof is refused, and so is a proof with an unbound token.
        """
        required = as_scopes(scopes)
        header_b64, _, _ = split_compact(token, self._max_token_bytes)
        known = self._known_headers.get(header_b64)
        alg, kid = known or check_header(decode_header(header_b64))
        if not self._started:
            self._start()
        key = self._keys.get(kid)
        if key.algorithm_name != alg:
            raise InvalidSignature("the access token algorithm does not match its key")
        try:
            claims = _PYJWT.decode(
                token,
                key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
            )
        except jwt.PyJWTError as exc:
            raise translate(exc) from exc
        if known is None:
            self._remember_header(header_b64, alg, kid)
        self._check_revocation(claims)
        # One dict lookup for a Bearer token: proof work only for bound tokens or proofs.
        if dpop_proof is not None or "cnf" in claims:
            self._dpop.check(token, claims, dpop_proof, method, url)
        check_scopes(claims, required)
        return claims

    def _remember_header(self, segment: str, alg: str, kid: str) -> None:
        known = self._known_headers
        if len(known) >= _MAX_KNOWN_HEADERS:
            known.clear()  # a rotation or several: start over rather than track age
        known[segment] = (alg, kid)

    def close(self) -> None:
        """Stop the background threads.

        ``verify`` still answers from what it has, until the revocation list it holds is
        older than ``max_revocation_staleness``.
        """
        self._stop.set()
        self._revocations.wake.set()
        for thread in self._threads:
            thread.join(timeout=2.0)
        if self._fanout is not None:
            self._fanout.close()

    def __enter__(self) -> TokenVerifier:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _check_revocation(self, claims: dict[str, Any]) -> None:
        self._revocations.ensure_loaded()
        snapshot, last = self._revocations.snapshot, self._revocations.last_success
        age = math.inf if last is None else time.monotonic() - last
        if age > self._max_staleness:
            if not self.fail_open:
                self._log.error("stale", "revocation list is %.0fs old; rejecting tokens (fail closed)", age)
                raise VerifierUnavailable("the revocation list cannot be refreshed")
            self._log.warning("stale", "revocation list is %.0fs old; accepting tokens (fail_open)", age)
        if snapshot is not None:
            snapshot.check(claims)

    def _discover(self) -> Discovery:
        # Once, then kept: the endpoints of an issuer do not move under a running service.
        if self._discovery is None:
            with self._discovery_lock:
                if self._discovery is None:
                    self._discovery = discover(self.issuer, timeout=self._timeout)
        return self._discovery

    def _fetch_jwks(self) -> dict[str, Any]:
        return get_json(self._discover().jwks_uri, timeout=self._timeout).body or {}

    def _start(self) -> None:
        with self._start_lock:
            if self._started or self._stop.is_set():
                return
            self._threads = [threading.Thread(target=self._poll_forever, name="authsvc-verify-poll", daemon=True)]
            if self._fanout is not None:
                fanout = threading.Thread(target=self._fanout.run, name="authsvc-verify-redis", daemon=True)
                self._threads.append(fanout)
            for thread in self._threads:
                thread.start()
            self._started = True

    def _poll_forever(self) -> None:
        while not self._stop.is_set():
            # Cleared before the poll, so a wake-up that arrives during it is not lost.
            self._revocations.wake.clear()
            try:
                self._revocations.poll()
                self._keys.refresh_if_older_than(_JWKS_MAX_AGE)
            except Exception:
                # A dead poller would turn into a fail-closed outage a minute later.
                logger.exception("revocation poller error")
            self._revocations.wake.wait(self._next_poll_delay())

    def _next_poll_delay(self) -> float:
        interval = self._poll_interval
        if self._fanout is not None and self._fanout.subscribed.is_set():
            # Hints arrive within a second, so the poll only has to catch what they miss.
            interval = max(interval, min(interval * 4, self._max_staleness / 2))
        # Jitter keeps a fleet of resource servers from polling in lockstep. It only shortens the
        # wait: the interval is the promise of how late a revocation can arrive.
        return interval * _JITTER.uniform(0.8, 1.0)

    def _after_fork(self) -> None:
        # Threads do not survive fork (gunicorn --preload) and a lock held by one of them
        # at that instant would stay held: start over, the threads on first use.
        stopped = self._stop.is_set()
        self._init_runtime()
        if stopped:
            self._stop.set()


def _reset_after_fork() -> None:
    for verifier in list(_VERIFIERS):
        verifier._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)
