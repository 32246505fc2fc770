"""The tables of the store, as SQLAlchemy Core, in one MetaData.

This file describes the newest schema. A database gets there only through
the numbered steps in ``migrate.py``; a change here without a new step there
is caught by ``tests/test_store.py::test_migrated_schema_matches_metadata``.

Times are unix seconds (DOUBLE). Lists of a client (redirect URIs, grant
types, …) are JSON arrays in TEXT columns: they are read whole, never queried.
"""

import sqlalchemy as sa

# Stable constraint names, so a later step can ALTER or DROP them by name.
metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _client_fk() -> sa.ForeignKey:
    # Deleting a client takes its codes, refresh tokens and consents with it.
    return sa.ForeignKey("clients.client_id", ondelete="CASCADE")


schema_migrations = sa.Table(
    "schema_migrations",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("applied_at", sa.Double, nullable=False),
)

# Single-row counters that must never go back, even when rows are purged.
store_meta = sa.Table(
    "store_meta",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("sub", sa.Text, primary_key=True),
    sa.Column("username", sa.Text, nullable=False),
    # NFKC + casefold of username: "Admin" and "ａdmin" are one account.
    sa.Column("username_key", sa.Text, nullable=False, unique=True),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("email", sa.Text),
    sa.Column("disabled", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
)

clients = sa.Table(
    "clients",
    metadata,
    sa.Column("client_id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("secret_hash", sa.Text),
    sa.Column("redirect_uris", sa.Text, nullable=False),
    sa.Column("post_logout_redirect_uris", sa.Text, nullable=False),
    sa.Column("grant_types", sa.Text, nullable=False),
    sa.Column("scope", sa.Text, nullable=False),
    sa.Column("token_endpoint_auth_method", sa.Text, nullable=False),
    sa.Column("first_party", sa.Boolean, nullable=False),
    sa.Column("id_token_signed_response_alg", sa.Text, nullable=False),
    # RFC 9449: every token of this client must be DPoP-bound.
    sa.Column("dpop_bound", sa.Boolean, nullable=False, server_default=sa.false()),
    # private_key_jwt (RFC 7523): the client's public keys, inline (JSON JWKS) or by URL.
    sa.Column("jwks", sa.Text),
    sa.Column("jwks_uri", sa.Text),
    # RFC 9126: authorization requests only through /par.
    sa.Column("require_par", sa.Boolean, nullable=False, server_default=sa.false()),
    # OpenID Connect Back-Channel Logout 1.0.
    sa.Column("backchannel_logout_uri", sa.Text),
    # Audiences the client's access tokens may carry (RFC 8707); the first is the default.
    sa.Column("audiences", sa.Text, nullable=False),
    # Browser origins allowed to call the token, revocation and userinfo endpoints (CORS).
    sa.Column("allowed_origins", sa.Text, nullable=False, server_default="[]"),
    sa.Column("created_at", sa.Double, nullable=False),
)

authorization_codes = sa.Table(
    "authorization_codes",
    metadata,
    sa.Column("code_hash", sa.Text, primary_key=True),
    sa.Column("client_id", sa.Text, _client_fk(), nullable=False, index=True),
    sa.Column("sub", sa.Text, nullable=False),
    sa.Column("redirect_uri", sa.Text, nullable=False),
    sa.Column("scope", sa.Text, nullable=False),
    sa.Column("expires_at", sa.Double, nullable=False),
    sa.Column("auth_time", sa.Double, nullable=False),
    sa.Column("sid", sa.Text),
    sa.Column("nonce", sa.Text),
    sa.Column("code_challenge", sa.Text),
    sa.Column("code_challenge_method", sa.Text),
    sa.Column("resource", sa.Text),
    sa.Column("used_at", sa.Double),
    sa.Column("issued_jti", sa.Text),
    sa.Column("issued_exp", sa.Double),
    sa.Column("issued_family", sa.Text),
    # RFC 9449 §10: the JWK thumbprint of the DPoP key the code is bound to (dpop_jkt, or the
    # proof sent to /par); the token request must carry a proof by that key.
    sa.Column("dpop_jkt", sa.Text),
)

refresh_tokens = sa.Table(
    "refresh_tokens",
    metadata,
    sa.Column("token_hash", sa.Text, primary_key=True),
    sa.Column("family_id", sa.Text, nullable=False, index=True),
    sa.Column("client_id", sa.Text, _client_fk(), nullable=False, index=True),
    sa.Column("sub", sa.Text, nullable=False, index=True),
    sa.Column("scope", sa.Text, nullable=False),
    sa.Column("issued_at", sa.Double, nullable=False),
    sa.Column("expires_at", sa.Double, nullable=False),
    sa.Column("auth_time", sa.Double, nullable=False),
    sa.Column("sid", sa.Text, index=True),
    sa.Column("resource", sa.Text),
    sa.Column("access_jti", sa.Text),
    sa.Column("access_exp", sa.Double),
    sa.Column("spent_at", sa.Double),
    sa.Column("revoked_at", sa.Double),
    sa.Column("successor_blob", sa.LargeBinary),
    # The token that replaced this one: a grace replay is answered only while it is unspent.
    sa.Column("successor_hash", sa.Text),
    # RFC 9449 §5: a public client's refresh token is bound to its DPoP key (JWK thumbprint).
    sa.Column("dpop_jkt", sa.Text),
)

consents = sa.Table(
    "consents",
    metadata,
    sa.Column("sub", sa.Text, primary_key=True),
    sa.Column("client_id", sa.Text, _client_fk(), primary_key=True, index=True),
    sa.Column("scope", sa.Text, nullable=False),
    sa.Column("granted_at", sa.Double, nullable=False),
    # Exact redirect URIs the user approved (a loopback port change asks again, RFC 8252 §8.x).
    sa.Column("redirect_uris", sa.Text, nullable=False, server_default="[]"),
)

# version is assigned from store_meta, not by the database: see sql_revocations.py.
revocations = sa.Table(
    "revocations",
    metadata,
    sa.Column("version", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("exp", sa.Double, nullable=False),
    sa.Column("before", sa.Double),
    sa.Index(None, "kind", "value", unique=True),
)

# Rate limits (moving window): per key, the times of the latest accepted attempts.
counters = sa.Table(
    "counters",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),
    # JSON array of unix times, newest first, at most the limit's number of entries.
    sa.Column("entries", sa.Text, nullable=False),
    # When the newest entry leaves the window, so purge_expired can drop the row.
    sa.Column("expires_at", sa.Double, nullable=False),
)

# One-time identifiers seen (DPoP proof jti, client assertion jti), kept until they expire,
# so a replay is refused on every instance. ``key`` is a namespace plus a hash of the value.
used_jtis = sa.Table(
    "used_jtis",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("expires_at", sa.Double, nullable=False, index=True),
)

# RFC 9126: pushed authorization requests, single use, keyed by a hash of the request_uri.
pushed_requests = sa.Table(
    "pushed_requests",
    metadata,
    sa.Column("request_uri_hash", sa.Text, primary_key=True),
    sa.Column("client_id", sa.Text, _client_fk(), nullable=False, index=True),
    # The authorization parameters, as a JSON object of strings.
    sa.Column("params", sa.Text, nullable=False),
    sa.Column("expires_at", sa.Double, nullable=False),
    sa.Column("used_at", sa.Double),
)

# RFC 8628: device authorization grants, keyed by a hash of the device_code.
device_codes = sa.Table(
    "device_codes",
    metadata,
    sa.Column("device_code_hash", sa.Text, primary_key=True),
    sa.Column("user_code", sa.Text, nullable=False, unique=True),
    sa.Column("client_id", sa.Text, _client_fk(), nullable=False, index=True),
    sa.Column("scope", sa.Text, nullable=False),
    sa.Column("resource", sa.Text),
    sa.Column("expires_at", sa.Double, nullable=False),
    sa.Column("interval", sa.Integer, nullable=False),
    sa.Column("last_polled_at", sa.Double),
    # pending | approved | denied | consumed
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("sub", sa.Text),
    sa.Column("auth_time", sa.Double),
    sa.Column("sid", sa.Text),
)

# Browser sessions, for the account page and back-channel logout (the cookie stays the credential).
sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("sid", sa.Text, primary_key=True),
    sa.Column("sub", sa.Text, nullable=False, index=True),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("last_seen_at", sa.Double, nullable=False),
    sa.Column("expires_at", sa.Double, nullable=False),
    sa.Column("user_agent", sa.Text, nullable=False),
    sa.Column("address", sa.Text, nullable=False),
    sa.Column("ended_at", sa.Double),
)

# Which clients were issued tokens in a session: who gets a back-channel logout token.
session_clients = sa.Table(
    "session_clients",
    metadata,
    sa.Column("sid", sa.Text, primary_key=True),
    sa.Column("client_id", sa.Text, _client_fk(), primary_key=True, index=True),
    sa.Column("first_at", sa.Double, nullable=False),
)

# Back-channel logout deliveries: written with the logout, sent by whichever instance claims them.
logout_outbox = sa.Table(
    "logout_outbox",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("client_id", sa.Text, _client_fk(), nullable=False, index=True),
    sa.Column("uri", sa.Text, nullable=False),
    # The claims that stay the same on every attempt (jti, sid, sub); each attempt signs a fresh token.
    sa.Column("logout_claims", sa.Text, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("next_attempt_at", sa.Double, nullable=False, index=True),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("claimed_until", sa.Double),
    sa.Column("delivered_at", sa.Double),
    sa.Column("last_error", sa.Text),
)

# The key ring when AUTHSVC_KEY_STORE=database: one row per signing key. The public JWK is kept
# in clear so the JWKS and verification need no decryption; the private key is PKCS#8 DER under
# AES-GCM (the kid as associated data), by the key-encryption key whose fingerprint is kek_id.
# Every change bumps store_meta "keyring_version", which instances poll.
signing_keys = sa.Table(
    "signing_keys",
    metadata,
    sa.Column("kid", sa.Text, primary_key=True),
    sa.Column("alg", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("activated_at", sa.BigInteger),
    sa.Column("retired_at", sa.BigInteger),
    sa.Column("public_jwk", sa.Text, nullable=False),
    sa.Column("private_key", sa.LargeBinary, nullable=False),
    sa.Column("kek_id", sa.Text, nullable=False),
)

# Secrets of the database key ring (the browser-session secret), encrypted like private keys.
keyring_secrets = sa.Table(
    "keyring_secrets",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("value", sa.LargeBinary, nullable=False),
    sa.Column("kek_id", sa.Text, nullable=False),
)
