"""The one signing path: RFC 9068 access tokens and OpenID Connect ID tokens.

Every token is signed with the single active key of its algorithm and names
that key's ``kid``, so verifiers never have to guess among published keys.
"""

import base64
import hashlib
import json
import secrets

import jwt
from jwt.algorithms import get_default_algorithms

ACCESS_TOKEN_TYP = "at+jwt"
LOGOUT_TOKEN_TYP = "logout+jwt"
BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
# Short, as Back-Channel Logout §2.4 recommends: each delivery attempt signs a fresh one.
LOGOUT_TOKEN_TTL = 120
# Far above any token we sign; refuses oversized input before any parsing.
MAX_TOKEN_CHARS = 8192


class TokenMinter:
    def __init__(self, settings, keyring, clock):
        self.settings = settings
        self.keyring = keyring
        self.clock = clock
        # (kid, typ) -> _Signer: each key's header segment is encoded once, not per token.
        self._signers = {}

    def _sign(self, claims: dict, alg: str, typ: str) -> str:
        # A no-op when the ring is watched (the server): reloads never run on a request.
        self.keyring.reload_if_changed()
        # One read of the ring's current snapshot: kid and private key always belong together.
        key = self.keyring.active(alg)
        signer = self._signers.get((key.kid, typ))
        if signer is None or signer.key is not key:
            if len(self._signers) > 16:
                self._signers.clear()  # keys rotated away: keep only what signs now
            signer = self._signers[(key.kid, typ)] = _Signer(key, typ)
        return signer.sign(claims)

    def mint_access_token(
        self,
        *,
        client_id: str,
        sub: str,
        scope: str,
        audience: str,
        sid: str | None = None,
        jti: str | None = None,
        cnf: dict | None = None,
    ) -> tuple[str, dict]:
        """Sign an access token per RFC 9068 §2 and return it with its claims.

        ``jti`` is chosen by the caller when it had to record it before signing;
        ``cnf`` binds the token to a key (RFC 9449 §6.1: ``{"jkt": thumbprint}``).
        """
        now = int(self.clock())
        claims = {
            "iss": self.settings.issuer,
            "sub": sub,
            "aud": audience,
            "exp": now + self.settings.access_token_ttl,
            "iat": now,
            "jti": jti or new_jti(),
            "client_id": client_id,
            "scope": scope,
        }
        if sid:
            claims["sid"] = sid
        if cnf:
            claims["cnf"] = cnf
        return self._sign(claims, self.settings.signing_alg, ACCESS_TOKEN_TYP), claims

    def mint_id_token(
        self,
        *,
        client_id: str,
        alg: str,
        sub: str,
        auth_time: float,
        sid: str | None,
        nonce: str | None,
        access_token: str | None,
        extra: dict,
    ) -> str:
        """Sign an ID token per OpenID Connect Core 1.0 §2 and §3.1.3.6."""
        now = int(self.clock())
        claims = dict(extra)
        claims.update(
            iss=self.settings.issuer,
            sub=sub,
            aud=client_id,
            exp=now + self.settings.id_token_ttl,
            iat=now,
            auth_time=int(auth_time),
        )
        if sid:
            claims["sid"] = sid
        if nonce:
            claims["nonce"] = nonce
        if access_token:
            claims["at_hash"] = half_hash(access_token, alg)
        return self._sign(claims, alg, "JWT")

    def mint_logout_token(self, *, client_id: str, alg: str, jti: str, sid: str | None, sub: str | None) -> str:
        """Sign a logout token per OpenID Connect Back-Channel Logout 1.0 §2.4 (never a nonce).

        https://openid.net/specs/openid-connect-backchannel-1_0.html#LogoutToken
        """
        if not sid and not sub:
            raise ValueError("a logout token names a sid, a sub or both")
        now = int(self.clock())
        claims = {
            "iss": self.settings.issuer,
            "aud": client_id,
            "iat": now,
            "exp": now + LOGOUT_TOKEN_TTL,
            "jti": jti,
            "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
        }
        if sub:
            claims["sub"] = sub
        if sid:
            claims["sid"] = sid
        return self._sign(claims, alg, LOGOUT_TOKEN_TYP)

    def decode_access_token(self, token: str) -> dict | None:
        """Return the claims of a valid, unexpired access token this issuer signed; None otherwise.

        Revocation is the caller's question: it needs the store.
        """
        claims = self._decode(token, ACCESS_TOKEN_TYP, verify_exp=True)
        if claims is None or not isinstance(claims.get("jti"), str) or not isinstance(claims.get("client_id"), str):
            return None
        return claims

    def _decode(self, token: str, typ: str, *, verify_exp: bool) -> dict | None:
        if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or token.count(".") != 2:
            return None
        try:
            header = jwt.get_unverified_header(token)
        except (jwt.PyJWTError, ValueError, TypeError):
            return None
        # Only headers we put there: never a key or URL from the token itself (RFC 8725 §3.10).
        if header.get("typ") != typ or set(header) - {"alg", "kid", "typ"}:
            return None
        self.keyring.reload_if_changed()
        key = next((k for k in self.keyring.published() if k.kid == header.get("kid")), None)
        if key is None or header.get("alg") != key.alg:
            return None
        try:
            claims = jwt.decode(
                token,
                # From the published JWK: retired and next keys hold no private half in memory.
                key.public_key,
                algorithms=[key.alg],
                issuer=self.settings.issuer,
                options={
                    # Time is checked below against the injected clock, not PyJWT's own.
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "verify_aud": False,
                    "require": ["iss", "sub", "aud", "exp", "iat"],
                },
            )
        except (jwt.PyJWTError, ValueError, TypeError):
            return None
        now, leeway = self.clock(), self.settings.leeway
        if not all(_is_time(claims[name]) for name in ("exp", "iat")) or claims["iat"] > now + leeway:
            return None
        if verify_exp and claims["exp"] + leeway <= now:
            return None
        return claims

    def decode_id_token_hint(self, token: str, client_id: str | None = None) -> dict | None:
        """Return the claims of an ID token this issuer signed, expired or not; None otherwise."""
        # RP-Initiated Logout §2: an expired hint still identifies the session.
        claims = self._decode(token, "JWT", verify_exp=False)
        if claims is None:
            return None
        aud = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if client_id and client_id not in aud:
            return None
        return claims


class _Signer:
    """Signs JWS compact tokens with one key and one ``typ``: what PyJWT's ``jwt.encode`` makes, minus the per-token
    work that depends only on the key (the header's JSON and base64, the algorithm's lookup)."""

    def __init__(self, key, typ: str):
        self.key = key
        # PyJWT's header, byte for byte: sorted keys, compact separators.
        header = json.dumps({"alg": key.alg, "kid": key.kid, "typ": typ}, separators=(",", ":"), sort_keys=True)
        self._header_segment = _b64url(header.encode("ascii")) + b"."
        self._algorithm = _ALGORITHMS[key.alg]

    def sign(self, claims: dict) -> str:
        signing_input = self._header_segment + _b64url(_compact_json(claims))
        signature = self._algorithm.sign(signing_input, self.key.private_key)
        return (signing_input + b"." + _b64url(signature)).decode("ascii")


_ALGORITHMS = get_default_algorithms()
# One encoder for every token: json.dumps builds a new one on each call that passes options.
_ENCODER = json.JSONEncoder(separators=(",", ":"))


def _compact_json(value: dict) -> bytes:
    return _ENCODER.encode(value).encode("ascii")


def _b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _is_time(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def new_jti() -> str:
    """Return a fresh, unguessable token id."""
    return secrets.token_urlsafe(16)


def half_hash(value: str, alg: str) -> str:
    """at_hash per OIDC Core §3.1.3.6: left half of the alg's hash, base64url.

    Ed25519 signs with SHA-512, so EdDSA tokens use SHA-512 (OIDC Core errata).
    """
    digest = {"RS256": hashlib.sha256, "ES256": hashlib.sha256, "EdDSA": hashlib.sha512}[alg]
    raw = digest(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(raw[: len(raw) // 2]).rstrip(b"=").decode("ascii")
