"""DPoP (RFC 9449) at the token endpoint: proofs checked, tokens bound to the client's key.

A client signs a short JWT (the proof) with a key pair of its own for every request and
sends it in the ``DPoP`` header. The issuer checks it (§4.3) before the grant runs, so a
refused proof, or a nonce the client must fetch first, spends no authorization code. A
valid proof binds the access token to the key: ``cnf.jkt`` is the key's RFC 7638
thumbprint, and the response says ``token_type: DPoP`` (§5, §6.1). A public client's
refresh token is bound to the same key, so only the holder of that key can refresh (§5).

- Each proof's ``jti`` is accepted once, on every instance: the shared store records it
  until the proof's ``iat`` window is over (§11.1).
- Server nonces (§8), when ``dpop_nonce_required`` is set, need no shared state: a nonce
  is an HMAC of the current minute under the key ring's session secret, which every
  instance holds, and the current and previous minute's nonces are accepted.
- A code can be bound to a key before it exists (§10): ``dpop_jkt`` in the authorization
  request, or a proof sent to ``/par`` (§10.1, checked as here but without a nonce). It is
  then exchanged only with a proof by that key; another key, or none, gets ``invalid_grant``
  and leaves the code to its holder.
"""

import base64
import binascii
import hashlib
import hmac
import json
import logging
import math
import re
from dataclasses import dataclass

import jwt
from authlib.oauth2.base import OAuth2Error
from authlib.oauth2.rfc6749.errors import InvalidGrantError
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from ..events import security_event
from ..verify._canonical import THUMBPRINT_MEMBERS
from ..verify._canonical import access_token_hash
from ..verify._canonical import b64
from ..verify._canonical import normalize_url
from ..verify._canonical import thumbprint

PROOF_TYP = "dpop+jwt"
#: Asymmetric algorithms only (§4.2): never "none", never an HMAC. Each is bound to one key type.
ALGORITHMS = {
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "EdDSA": ("OKP", "Ed25519"),
    "PS256": ("RSA", None),
    "RS256": ("RSA", None),
}
#: A proof is accepted this many seconds either side of its ``iat`` (§4.3 step 11, §11.1).
PROOF_WINDOW = 60
#: Nonces change this often; the current and the previous one are accepted (§8).
NONCE_PERIOD = 60
MAX_PROOF_CHARS = 8192
MAX_CLAIM_CHARS = 2048
MIN_RSA_BITS = 2048
#: RFC 7638 §3.2: the members a thumbprint covers, per key type.
#: Private members: a proof carries a public key only (§4.3 step 7).
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
#: Header parameters that would bring another key or processing rule into play.
FORBIDDEN_HEADERS = frozenset({"jku", "x5u", "x5c", "crit", "b64", "zip", "enc"})

_COMPACT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


class InvalidDPoPProofError(OAuth2Error):
    """The DPoP proof is missing where required, malformed, or fails a check (§5, §7.1)."""

    error = "invalid_dpop_proof"


class UseDPoPNonceError(OAuth2Error):
    """The proof lacks the current server nonce: the answer carries one to use (§8)."""

    error = "use_dpop_nonce"

    def __init__(self, nonce: str):
        super().__init__("Send the request again with a DPoP proof carrying the nonce from the DPoP-Nonce header.")
        self.nonce = nonce

    def get_headers(self):
        return super().get_headers() + [("DPoP-Nonce", self.nonce)]


class ProofError(ValueError):
    """A proof failed a check; the message says which, without echoing the proof."""


@dataclass(frozen=True)
class Proof:
    """A DPoP proof that passed every check of §4.3."""

    jkt: str
    jti: str
    iat: float
    claims: dict


def read_proof(value, *, method: str, url: str, now: float, window: float = PROOF_WINDOW) -> Proof:
    """Check one proof against the request it came with (§4.3 steps 2 to 9 and 11).

    ``url`` is the endpoint as the client addresses it; query and fragment are ignored
    on both sides. The nonce (step 10) and the one-time ``jti`` are the caller's.
    """
    if not isinstance(value, str) or not 0 < len(value) <= MAX_PROOF_CHARS or not _COMPACT.fullmatch(value):
        raise ProofError("The DPoP proof is not a compact JWS.")
    header = _json_object(value.split(".", 1)[0], "header")
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() not in (PROOF_TYP, "application/" + PROOF_TYP):
        raise ProofError("The DPoP proof typ must be dpop+jwt.")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ALGORITHMS:
        raise ProofError(f"The DPoP proof alg must be one of {', '.join(ALGORITHMS)}.")
    if FORBIDDEN_HEADERS & header.keys():
        raise ProofError("The DPoP proof header carries a parameter that is not accepted.")
    jwk = header.get("jwk")
    key = public_key(jwk, alg)
    try:
        signed = jwt.PyJWS().decode_complete(value, key, algorithms=[alg])
    except (jwt.PyJWTError, ValueError, TypeError):
        raise ProofError("The DPoP proof signature does not verify with its jwk.") from None
    claims = _json_object(signed["payload"], "payload", encoded=False)
    jti, htm, htu, iat = (claims.get(name) for name in ("jti", "htm", "htu", "iat"))
    for name, claim in (("jti", jti), ("htm", htm), ("htu", htu)):
        if not isinstance(claim, str) or not 0 < len(claim) <= MAX_CLAIM_CHARS:
            raise ProofError(f"The DPoP proof has no usable {name} claim.")
    if type(iat) not in (int, float) or not math.isfinite(iat):
        raise ProofError("The DPoP proof has no usable iat claim.")
    if htm != method:
        raise ProofError("The DPoP proof htm does not match the request method.")
    expected = normalize_url(url)
    if expected is None or normalize_url(htu) != expected:
        raise ProofError("The DPoP proof htu does not match the request URL.")
    if not now - window <= iat <= now + window:
        raise ProofError("The DPoP proof iat is too old or in the future.")
    return Proof(jkt=thumbprint(jwk), jti=jti, iat=float(iat), claims=claims)


def public_key(jwk, alg: str):
    """Return the public key of a proof's ``jwk`` header, matching ``alg``'s key type (§4.3 steps 5, 7)."""
    if not isinstance(jwk, dict):
        raise ProofError("The DPoP proof header has no jwk.")
    if PRIVATE_MEMBERS & jwk.keys():
        raise ProofError("The DPoP proof jwk must not contain a private key.")
    kty, crv = ALGORITHMS[alg]
    if jwk.get("kty") != kty or (crv is not None and jwk.get("crv") != crv):
        raise ProofError("The DPoP proof jwk is not a key for its alg.")
    if not all(isinstance(jwk.get(name), str) and jwk[name].isascii() for name in THUMBPRINT_MEMBERS[kty]):
        raise ProofError("The DPoP proof jwk is incomplete.")
    try:
        key = jwt.PyJWK(jwk, alg).key
    except (jwt.PyJWTError, ValueError, TypeError, binascii.Error):
        raise ProofError("The DPoP proof jwk is not a valid public key.") from None
    if isinstance(key, RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        raise ProofError(f"The DPoP proof RSA key must have at least {MIN_RSA_BITS} bits.")
    return key


def _json_object(raw, part: str, *, encoded: bool = True) -> dict:
    try:
        data = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)) if encoded else raw
        value = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except (ValueError, binascii.Error, RecursionError):
        raise ProofError(f"The DPoP proof {part} is not a JSON object.") from None
    if not isinstance(value, dict):
        raise ProofError(f"The DPoP proof {part} is not a JSON object.")
    return value


def _no_duplicates(pairs):
    value = dict(pairs)
    if len(value) != len(pairs):
        raise ValueError("duplicate member")
    return value


def _no_constant(name):
    raise ValueError(f"{name} is not JSON")


class Nonces:
    """Server nonces any instance can issue and check: an HMAC of the time period (§8)."""

    def __init__(self, secret: bytes, clock, period: int = NONCE_PERIOD):
        self._key = hmac.new(secret, b"authsvc.dpop-nonce", hashlib.sha256).digest()
        self._clock = clock
        self._period = period

    def current(self) -> str:
        return self._for(self._period_of(self._clock()))

    def is_valid(self, nonce) -> bool:
        if not isinstance(nonce, str) or not nonce.isascii():
            return False
        period = self._period_of(self._clock())
        # Both compared, always: the time taken says nothing about which one matched.
        matches = [hmac.compare_digest(nonce, self._for(p)) for p in (period, period - 1)]
        return any(matches)

    def _period_of(self, now: float) -> int:
        return int(now // self._period)

    def _for(self, period: int) -> str:
        return b64(hmac.new(self._key, period.to_bytes(8, "big", signed=True), hashlib.sha256).digest()[:18])


class DPoP:
    """The token endpoint's side of DPoP, for ``AuthorizationServer``."""

    def __init__(self, services):
        self.services = services
        self.token_url = services.settings.issuer + "/token"
        self.par_url = services.settings.issuer + "/par"
        self.nonces = Nonces(services.keyring.session_secret(), services.clock)

    @property
    def nonce_required(self) -> bool:
        return self.services.settings.dpop_nonce_required

    def check_token_request(self, request) -> Proof | None:
        """Return the request's valid proof, None without a ``DPoP`` header, or raise an OAuth error.

        The URL is the configured issuer's token endpoint, never one built from the
        Host header (SECURITY.md B.35).
        """
        return self._check_request(request, self.token_url, nonce=self.nonce_required)

    def check_par_request(self, request, client) -> Proof | None:
        """§10.1: a proof sent to the PAR endpoint is checked as at the token endpoint (§4.3).

        Without a server nonce (§8): the proof only names the key the code is bound to,
        and that key must still sign a proof with a current nonce at the token endpoint.
        """
        return self._check_request(request, self.par_url, client, nonce=False)

    def _check_request(self, request, url: str, client=None, *, nonce: bool) -> Proof | None:
        values = _header_values(request.headers, "DPoP")
        if not values:
            return None
        if len(values) > 1 or "," in values[0]:
            raise self._refused("several", "Send one DPoP header, not several.", client)
        now = self.services.clock()
        try:
            proof = read_proof(values[0].strip(), method=request.method, url=url, now=now)
        except ProofError as error:
            raise self._refused("invalid", str(error), client) from None
        if nonce and not self.nonces.is_valid(proof.claims.get("nonce")):
            raise UseDPoPNonceError(self.nonces.current())
        # Last, once everything else holds: a refused proof does not use up its jti.
        if not self.services.store.use_once(_jti_key(proof), proof.iat + PROOF_WINDOW, now):
            client_id = client.get_client_id() if client else None
            security_event("dpop.proof_replayed", logging.WARNING, jkt=proof.jkt, client_id=client_id)
            raise InvalidDPoPProofError("This DPoP proof was used already: make a new one for every request.")
        return proof

    def require_for(self, client, request) -> None:
        """§5.2 (``dpop_bound_access_tokens``): a client registered with --dpop-bound must send a proof."""
        if client is not None and client.record.dpop_bound and proof_of(request) is None:
            raise self._refused("missing", "This client must send a DPoP proof with every token request.", client)

    def response_headers(self) -> list[tuple[str, str]]:
        """A fresh nonce on every token response while nonces are required (§8)."""
        return [("DPoP-Nonce", self.nonces.current())] if self.nonce_required else []

    def check_resource_request(self, headers, method: str, url: str, scheme: str, token: str, claims: dict):
        """Return ``(error, description)`` when a token's key binding and the request disagree, else None.

        For the issuer's own protected resource (userinfo), per §7: a bound token needs
        the ``DPoP`` scheme and a proof by its key for this request and token (``ath``),
        used once; an unbound token needs the ``Bearer`` scheme. While nonces are required,
        the proof must carry a current one too (§9): ``use_dpop_nonce`` otherwise, checked
        before the proof's ``jti`` is used up.
        """
        cnf = claims.get("cnf")
        if scheme == "bearer":
            return None if cnf is None else ("invalid_token", "The access token is DPoP-bound: send it as DPoP.")
        jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
        if not isinstance(jkt, str):
            return "invalid_token", "The access token is not DPoP-bound: send it as Bearer."
        values = _header_values(headers, "DPoP")
        if len(values) != 1 or "," in values[0]:
            return "invalid_dpop_proof", "Send exactly one DPoP proof with the DPoP scheme."
        now = self.services.clock()
        try:
            proof = read_proof(values[0].strip(), method=method, url=url, now=now)
        except ProofError as error:
            return "invalid_dpop_proof", str(error)
        ath = proof.claims.get("ath")
        if not isinstance(ath, str) or not hmac.compare_digest(ath, access_token_hash(token)):
            return "invalid_dpop_proof", "The DPoP proof ath does not match the access token."
        if not hmac.compare_digest(proof.jkt, jkt):
            return "invalid_dpop_proof", "The DPoP proof is signed by another key than the token is bound to."
        if self.nonce_required and not self.nonces.is_valid(proof.claims.get("nonce")):
            return "use_dpop_nonce", "Make a new DPoP proof with the nonce in the DPoP-Nonce header."
        if not self.services.store.use_once(_jti_key(proof), proof.iat + PROOF_WINDOW, now):
            security_event("dpop.proof_replayed", logging.WARNING, jkt=proof.jkt, client_id=claims.get("client_id"))
            return "invalid_dpop_proof", "This DPoP proof was used already."
        return None

    @staticmethod
    def _refused(reason: str, description: str, client=None) -> InvalidDPoPProofError:
        security_event("dpop.proof_rejected", reason=reason, client_id=client.get_client_id() if client else None)
        return InvalidDPoPProofError(description)


def proof_of(request) -> Proof | None:
    """The proof ``DPoP.check_token_request`` accepted for this request, if any."""
    return getattr(request, "dpop", None)


def check_refresh_binding(record, request) -> None:
    """§5: a refresh token bound to a key is used only with a proof signed by that key."""
    if record.dpop_jkt is None:
        return
    proof = proof_of(request)
    if proof is None or not hmac.compare_digest(proof.jkt, record.dpop_jkt):
        security_event(
            "refresh.dpop_key_mismatch",
            logging.WARNING,
            client_id=record.client_id,
            sub=record.sub,
            family_id=record.family_id,
            proof=proof is not None,
        )
        raise InvalidGrantError("This refresh token is bound to a DPoP key: send a proof signed with that key.")


def bind_pushed_request(params: dict, proof: Proof | None, client) -> None:
    """§10.1: a proof sent with a pushed request binds its code to the proof's key.

    The key goes into the pushed parameters as ``dpop_jkt``, as if the client had sent
    it; a ``dpop_jkt`` the client did send must name the same key.
    """
    if proof is None:
        return
    sent = params.get("dpop_jkt")
    if sent is not None and not hmac.compare_digest(sent.encode(), proof.jkt.encode()):
        raise DPoP._refused(
            "dpop_jkt_mismatch", "The dpop_jkt parameter does not match the key of the DPoP proof.", client
        )
    params["dpop_jkt"] = proof.jkt


def code_bound_to_another_key(record, request, client) -> InvalidGrantError:
    """§10: the error for a code bound to a DPoP key, exchanged without a proof by that key.

    ``record`` is the code as ``consume_code`` left it: unused, so that its holder can
    still exchange it (an intercepted code tried with another key spends nothing).
    """
    security_event(
        "code.dpop_key_mismatch",
        logging.WARNING,
        client_id=client.get_client_id(),
        sub=record.sub,
        proof=proof_of(request) is not None,
    )
    return InvalidGrantError("This authorization code is bound to a DPoP key: send a proof signed with that key.")


def _header_values(headers, name: str) -> list[str]:
    get_all = getattr(headers, "getlist", None) or getattr(headers, "get_all", None)
    if get_all is not None:
        return list(get_all(name))
    value = headers.get(name)
    return [] if value is None else [value]


def _jti_key(proof: Proof) -> str:
    # Scoped to the key: one client's jti never blocks another's.
    return "dpop:" + hashlib.sha256(f"{proof.jkt}:{proof.jti}".encode("utf-8", "surrogatepass")).hexdigest()
