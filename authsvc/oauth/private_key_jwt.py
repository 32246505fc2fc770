"""``private_key_jwt`` client authentication (RFC 7523 §2.2 and §3, OIDC Core §9).

The client proves itself with a JWT it signed with a private key whose public
half it registered (inline JWK Set or ``jwks_uri``). Built on Authlib's
``JWTBearerClientAssertion`` (its assertion parsing, the joserfc signature
check, the registered-method check); ``__call__`` and the claim checks are
ours because the rules depend on the request (which endpoint is called) and
on the issuer's clock and store:

- ``client_assertion_type`` is ``urn:ietf:params:oauth:client-assertion-type:jwt-bearer``;
  no other credential may come with it (RFC 6749 §2.3).
- Header: ``alg`` one of ``accounts.CLIENT_ASSERTION_ALGS`` and matching the
  key's type (never HS* or ``none``); no ``jku``, ``x5u``, ``jwk``, ``x5c``
  or ``crit``: keys come from the registration only.
- ``iss`` = ``sub`` = client_id; ``aud`` names this issuer: its identifier, its
  token endpoint URL, or the URL of the endpoint being called (revocation,
  introspection, PAR: RFC 9126 §2 requires the last).
- ``exp`` present and at most ``MAX_LIFETIME`` ahead; ``nbf`` and ``iat``, when
  present, not in the future; ``CLOCK_SKEW`` allowed each way.
- ``jti`` present, and accepted once across every instance (the store's
  ``use_once``) until the assertion has expired (the replay Hydra missed,
  CVE-2020-5300).

Every failure is ``invalid_client`` (401); nothing the client sends can raise.
"""

import hashlib
import logging
import math

from authlib.oauth2.rfc6749.errors import InvalidClientError
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from joserfc import jwt
from joserfc.errors import JoseError

from .client_keys import ALGORITHMS
from .client_keys import ClientKeysUnavailable
from .client_keys import NoMatchingKey
from .client_keys import select_key

log = logging.getLogger(__name__)

METHOD = "private_key_jwt"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# How far ahead an assertion may expire: it is made for one request.
MAX_LIFETIME = 300
CLOCK_SKEW = 30
MAX_ASSERTION_CHARS = 8192
MAX_JTI_CHARS = 256
FORBIDDEN_HEADERS = ("jku", "x5u", "jwk", "x5c", "crit")
# RFC 7523 names none; "JWT" is customary and rfc7523bis registers client-authentication+jwt.
ACCEPTED_TYPES = (None, "jwt", "client-authentication+jwt")
# Endpoints whose own URL may be the assertion's audience, besides the issuer and token endpoint.
OWN_AUDIENCE_PATHS = ("/token", "/revoke", "/introspect", "/par")


class PrivateKeyJWT(JWTBearerClientAssertion):
    CLIENT_AUTH_METHOD = METHOD
    CLIENT_ASSERTION_TYPE = ASSERTION_TYPE

    def __init__(self, server):
        super().__init__(validate_jti=True, leeway=CLOCK_SKEW)
        self.server = server

    def __call__(self, query_client, request):
        form = request.form
        assertion_type = form.get("client_assertion_type")
        assertion = form.get("client_assertion")
        if assertion_type is None and assertion is None:
            return None  # another method's request
        if form.get("client_secret") or request.headers.get("Authorization", "").strip().lower().startswith("basic"):
            raise InvalidRequestError("Use one client authentication method, not two.")
        if assertion_type != ASSERTION_TYPE:
            raise InvalidClientError(description=f"client_assertion_type must be {ASSERTION_TYPE}.")
        if not assertion or len(assertion) > MAX_ASSERTION_CHARS:
            raise InvalidClientError(description="Missing or over-long client_assertion.")
        headers, claims = self.extract_assertion(assertion)
        alg = _check_header(headers)
        client_id = claims.get("sub")
        if not isinstance(client_id, str) or not client_id or claims.get("iss") != client_id:
            raise InvalidClientError(description="The assertion's iss and sub must both be the client_id.")
        if form.get("client_id") not in (None, client_id):
            raise InvalidClientError(description="client_id does not match the assertion's sub.")
        client = query_client(client_id)
        if client is None:
            raise InvalidClientError(description="The client does not exist on this server.")
        if client.record.token_endpoint_auth_method != METHOD:
            raise InvalidClientError(description=f"The client is not registered for {METHOD}.")
        key = self._key(client.record, headers.get("kid"), alg)
        try:
            verified = jwt.decode(assertion, key, algorithms=[alg])
        except (JoseError, ValueError, TypeError, KeyError):
            raise InvalidClientError(description="The client assertion's signature is invalid.") from None
        self.check_claims(verified.claims, client_id, _endpoint_url(request))
        request.client = client
        return self.authenticate_client(client)

    def _key(self, record, kid, alg):
        keys = self.server.client_keys
        try:
            try:
                return select_key(keys.keys_for(record), kid, alg)
            except NoMatchingKey:
                if not record.jwks_uri:
                    raise
                # The client may have rotated its keys: look once more (rate-limited per URI).
                return select_key(keys.keys_for(record, refresh=True), kid, alg)
        except NoMatchingKey as error:
            raise InvalidClientError(description=f"{str(error).capitalize()}.") from None
        except ClientKeysUnavailable:
            raise InvalidClientError(description="The client's JWK Set could not be fetched.") from None
        except ValueError:
            raise InvalidClientError(description="The client's registered JWK Set cannot be read.") from None

    def check_claims(self, claims: dict, client_id: str, endpoint_url: str) -> None:
        services = self.server.services
        now = services.clock()
        if not _audience_matches(claims.get("aud"), _audiences(services.settings.issuer, endpoint_url)):
            raise InvalidClientError(description="The assertion's aud must be this issuer or its token endpoint.")
        exp = claims.get("exp")
        if not _is_time(exp):
            raise InvalidClientError(description="The assertion needs a numeric exp.")
        if exp + CLOCK_SKEW <= now:
            raise InvalidClientError(description="The assertion has expired.")
        if exp - now > MAX_LIFETIME + CLOCK_SKEW:
            raise InvalidClientError(description=f"The assertion's exp is more than {MAX_LIFETIME} s ahead.")
        for name in ("nbf", "iat"):
            value = claims.get(name)
            if value is not None and (not _is_time(value) or value > now + CLOCK_SKEW):
                raise InvalidClientError(description=f"The assertion's {name} is invalid or in the future.")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI_CHARS:
            raise InvalidClientError(description="The assertion needs a jti (a string).")
        digest = hashlib.sha256(f"{client_id}\x00{jti}".encode("utf-8", "surrogatepass")).hexdigest()
        if not services.store.use_once(f"client-assertion:{digest}", exp + CLOCK_SKEW, now):
            log.warning("client assertion replayed (client %s)", client_id)
            raise InvalidClientError(description="The client assertion was used before.")


def _check_header(headers: dict) -> str:
    alg = headers.get("alg")
    if not isinstance(alg, str) or alg not in ALGORITHMS:
        raise InvalidClientError(description=f"The assertion's alg must be one of {', '.join(ALGORITHMS)}.")
    forbidden = [name for name in FORBIDDEN_HEADERS if name in headers]
    if forbidden:
        raise InvalidClientError(description=f"The assertion header must not carry {forbidden[0]}.")
    typ = headers.get("typ")
    if typ is not None and (not isinstance(typ, str) or typ.lower().removeprefix("application/") not in ACCEPTED_TYPES):
        raise InvalidClientError(description="The assertion's typ is not a client assertion's.")
    kid = headers.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise InvalidClientError(description="The assertion's kid must be a string.")
    return alg


def _endpoint_url(request) -> str:
    # IssuerRequest builds uri from the configured issuer, never from the Host header.
    return request.uri.split("?", 1)[0]


def _audiences(issuer: str, endpoint_url: str) -> set[str]:
    accepted = {issuer, issuer + "/token"}
    if endpoint_url in {issuer + path for path in OWN_AUDIENCE_PATHS}:
        accepted.add(endpoint_url)
    return accepted


def _audience_matches(aud, accepted: set[str]) -> bool:
    values = aud if isinstance(aud, list) else [aud]
    return any(isinstance(value, str) and value in accepted for value in values)


def _is_time(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
