"""OpenID Connect Back-Channel Logout 1.0, on every store backend: which clients get a logout
token, what it holds, and how the outbox delivers it (once, retried with backoff, across senders).

The receiver is a real HTTP server on loopback. Time is the injected clock: a
retry is due when the test moves the clock, never after a sleep.
https://openid.net/specs/openid-connect-backchannel-1_0.html
"""

import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from urllib.parse import parse_qs

import jwt
import pytest

from authsvc import backchannel
from authsvc.backchannel import LogoutSender
from authsvc.config import Settings
from authsvc.store import open_store
from authsvc.store.records import BrowserSession
from tests.dbs import store_url  # noqa: F401  (pytest finds fixtures by name)
from tests.oidc import keyring  # noqa: F401  (a copied ring: no key generation per test)
from tests.oidc import keyring_template  # noqa: F401

EVENT = "http://schemas.openid.net/event/backchannel-logout"


class Receiver(ThreadingHTTPServer):
    """An app's back-channel logout endpoint: records each POSTed logout token, answers ``statuses`` in turn."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.tokens: list[str] = []
        self.statuses: list[int] = []
        self.lock = threading.Lock()

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.server_port}/backchannel-logout"

    def jtis(self) -> list[str]:
        return [jwt.decode(token, options={"verify_signature": False})["jti"] for token in self.tokens]


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        server = self.server
        with server.lock:
            server.tokens.extend(parse_qs(body).get("logout_token", []))
            status = server.statuses.pop(0) if server.statuses else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def settings(tmp_path, store_url):  # noqa: F811 - overrides conftest's: every backend
    return Settings().with_overrides(database_url=store_url, keys_dir=str(tmp_path / "keys"))


@pytest.fixture
def sender(services):
    """The sender the test drives; the services' own thread is stopped so nothing races it."""
    services.logout_sender.stop()
    return LogoutSender(services.store, services.tokens, services.clock)


def _user(services):
    from tests.oauth_calls import quick_user

    return quick_user(services)


def _session(services, sub, sid=None):
    import secrets

    now = services.clock()
    sid = sid or secrets.token_urlsafe(16)
    services.store.create_session(BrowserSession(sid, sub, now, now, now + 86400, "test agent", "127.0.0.1"))
    return sid


def _client(make_client, uri=None, name="app"):
    client, _ = make_client(name, backchannel_logout_uri=uri)
    return client


def jwks(services) -> dict:
    from authsvc.app import create_app

    return create_app(services=services).test_client().get("/jwks.json").get_json()


def verified(services, token: str, audience: str) -> dict:
    """Check a logout token as a relying party does (Back-Channel Logout §2.6), against the published JWKS."""
    header = jwt.get_unverified_header(token)
    key = next(k for k in jwks(services)["keys"] if k["kid"] == header["kid"])
    assert header["alg"] == key["alg"] and header["typ"] == "logout+jwt"
    return jwt.decode(
        token,
        jwt.PyJWK(key).key,
        algorithms=[key["alg"]],
        audience=audience,
        issuer=services.settings.issuer,
        options={"require": ["iss", "aud", "iat", "exp", "jti"], "verify_iat": False, "verify_exp": False},
    )


# --- who is owed a logout token ---------------------------------------------------------------


def test_ending_a_session_queues_one_token_for_each_client_with_a_uri(services, make_client, sender, receiver):
    user = _user(services)
    sid = _session(services, user.sub)
    first, second = _client(make_client, receiver.uri, "first"), _client(make_client, receiver.uri, "second")
    silent = _client(make_client, None, "no back-channel")
    other_session = _client(make_client, receiver.uri, "elsewhere")
    for client in (first, second, silent):
        services.store.record_session_client(sid, client.client_id, services.clock())
    services.store.record_session_client(sid, first.client_id, services.clock())  # twice: still one
    services.store.record_session_client(_session(services, user.sub), other_session.client_id, services.clock())

    services.revocations.end_session(sid)
    services.revocations.end_session(sid)  # a second logout of the same session queues nothing more

    queued = services.store.list_logout_deliveries()
    assert sorted(d.client_id for d in queued) == sorted([first.client_id, second.client_id])
    assert {d.uri for d in queued} == {receiver.uri}
    assert all(json.loads(d.logout_claims)["sid"] == sid for d in queued)
    assert len({json.loads(d.logout_claims)["jti"] for d in queued}) == 2
    assert services.store.get_session(sid).ended_at == services.clock()
    assert receiver.tokens == []  # queued, not sent: the logout never waits for an app


def test_revoking_a_user_queues_tokens_for_every_session(services, make_client, sender, receiver):
    user = _user(services)
    app = _client(make_client, receiver.uri)
    sids = [_session(services, user.sub) for _ in range(3)]
    for sid in sids:
        services.store.record_session_client(sid, app.client_id, services.clock())

    services.revocations.revoke_subject(user.sub)

    queued = [json.loads(d.logout_claims) for d in services.store.list_logout_deliveries()]
    assert sorted(q["sid"] for q in queued) == sorted(sids)
    assert {q["sub"] for q in queued} == {user.sub}
    assert services.store.list_sessions(user.sub, services.clock()) == []


def test_a_session_recorded_before_sessions_existed_still_reaches_its_clients(services, make_client, receiver):
    app = _client(make_client, receiver.uri)
    services.store.record_session_client("old-sid", app.client_id, services.clock())

    services.revocations.end_session("old-sid")

    [queued] = services.store.list_logout_deliveries()
    claims = json.loads(queued.logout_claims)
    assert (claims["sid"], claims["sub"]) == ("old-sid", None)


# --- what the token says ----------------------------------------------------------------------


def test_the_delivered_token_is_a_signed_logout_token(services, make_client, sender, receiver):
    user = _user(services)
    sid = _session(services, user.sub)
    app = _client(make_client, receiver.uri)
    services.store.record_session_client(sid, app.client_id, services.clock())
    services.revocations.end_session(sid)

    assert sender.run_once() == 1

    [token] = receiver.tokens
    claims = verified(services, token, app.client_id)
    assert claims["iss"] == services.settings.issuer and claims["aud"] == app.client_id
    assert claims["sid"] == sid and claims["sub"] == user.sub
    assert claims["events"] == {EVENT: {}}
    assert claims["iat"] == int(services.clock()) and claims["exp"] - claims["iat"] == 120
    assert claims["jti"] == json.loads(services.store.list_logout_deliveries()[0].logout_claims)["jti"]
    assert "nonce" not in claims  # §2.4: a logout token must not be mistaken for an ID token
    assert services.store.list_logout_deliveries()[0].delivered_at == services.clock()
    assert sender.run_once() == 0


def test_the_token_is_signed_with_the_clients_id_token_algorithm(services, make_client, sender, receiver):
    services.keyring.rotate("ES256")
    user = _user(services)
    sid = _session(services, user.sub)
    app, _ = make_client("ec app", backchannel_logout_uri=receiver.uri, id_token_alg="ES256")
    services.store.record_session_client(sid, app.client_id, services.clock())
    services.revocations.end_session(sid)

    sender.run_once()

    assert jwt.get_unverified_header(receiver.tokens[0])["alg"] == "ES256"
    assert verified(services, receiver.tokens[0], app.client_id)["sid"] == sid


# --- delivery: retries, give-up, once --------------------------------------------------------


def _queue_one(services, make_client, uri):
    user = _user(services)
    sid = _session(services, user.sub)
    app = _client(make_client, uri)
    services.store.record_session_client(sid, app.client_id, services.clock())
    services.revocations.end_session(sid)
    return app


def test_a_failed_delivery_is_retried_with_exponential_backoff(services, make_client, sender, receiver, clock, caplog):
    _queue_one(services, make_client, receiver.uri)
    receiver.statuses = [500, 503]

    with caplog.at_level(logging.INFO, logger="authsvc.security"):
        assert sender.run_once() == 1
        [row] = services.store.list_logout_deliveries()
        assert (row.attempts, row.next_attempt_at, row.last_error) == (1, clock() + 2, "HTTP 500")
        assert sender.run_once() == 0  # not due yet
        clock.advance(2)
        assert sender.run_once() == 1
        assert services.store.list_logout_deliveries()[0].next_attempt_at == clock() + 4
        clock.advance(3)
        assert sender.run_once() == 0
        clock.advance(1)
        assert sender.run_once() == 1

    [row] = services.store.list_logout_deliveries()
    assert row.delivered_at == clock() and row.attempts == 3 and row.last_error is None
    # Every attempt carried the same logout (one jti), each signed afresh so its exp is current.
    assert len(receiver.tokens) == 3 and len(set(receiver.jtis())) == 1
    assert [verified(services, t, row.client_id)["iat"] for t in receiver.tokens] == [
        int(clock() - 6),
        int(clock() - 4),
        int(clock()),
    ]
    events = [r.event for r in caplog.records if r.name == "authsvc.security" and r.event.startswith("logout.")]
    assert events == ["logout.delivery_failed", "logout.delivery_failed", "logout.delivered"]


def test_an_unreachable_receiver_is_given_up_on_after_the_last_attempt(services, make_client, sender, clock, caplog):
    from tests.servers import free_port

    # A port nothing listens on: connection refused, at once.
    _queue_one(services, make_client, f"http://127.0.0.1:{free_port()}/logout")

    with caplog.at_level(logging.WARNING, logger="authsvc.security"):
        for attempt in range(1, backchannel.MAX_ATTEMPTS + 1):
            assert sender.run_once() == 1
            clock.advance(backchannel.backoff(attempt))
        assert sender.run_once() == 0
        clock.advance(3600)
        assert sender.run_once() == 0

    [row] = services.store.list_logout_deliveries()
    assert row.delivered_at is None and row.attempts <= backchannel.MAX_ATTEMPTS
    failures = [r for r in caplog.records if getattr(r, "event", None) == "logout.delivery_failed"]
    assert failures[-1].final is True and failures[-1].levelno == logging.ERROR
    assert all(f.final is False for f in failures[:-1])
    assert "127.0.0.1" not in failures[-1].getMessage()  # the error names what happened, not where


def test_a_redirect_is_a_failure_not_a_delivery(services, make_client, sender, receiver):
    _queue_one(services, make_client, receiver.uri)
    receiver.statuses = [302]

    sender.run_once()

    [row] = services.store.list_logout_deliveries()
    assert row.delivered_at is None and row.last_error == "HTTP 302"


def test_a_claim_whose_sender_died_is_taken_over_once_its_lease_runs_out(
    services,
    make_client,
    sender,
    receiver,
    clock,
    store_url,  # noqa: F811
):
    _queue_one(services, make_client, receiver.uri)
    # Another instance claims the row, then dies before sending anything.
    other = open_store(store_url, clock=clock)
    try:
        lost = other.claim_logout_delivery(clock(), backchannel.LEASE, max_attempts=10, not_before=0)
        assert lost is not None

        assert sender.run_once() == 0  # claimed: nobody else sends it
        clock.advance(backchannel.LEASE)
        assert sender.run_once() == 1

        # The dead instance's claim is gone: recording an outcome for it changes nothing.
        assert other.finish_logout_delivery(lost, clock(), delivered=False, retry_at=clock(), error="late") is False
    finally:
        other.close()
    assert len(receiver.tokens) == 1
    [row] = services.store.list_logout_deliveries()
    assert row.delivered_at is not None and row.last_error is None


def test_two_senders_racing_deliver_each_logout_exactly_once(services, make_client, receiver, clock, store_url):  # noqa: F811
    services.logout_sender.stop()
    user = _user(services)
    apps = [_client(make_client, receiver.uri, f"app {i}") for i in range(3)]
    for _ in range(8):
        sid = _session(services, user.sub)
        for app in apps:
            services.store.record_session_client(sid, app.client_id, clock())
    services.revocations.revoke_subject(user.sub)
    assert len(services.store.list_logout_deliveries()) == 24

    stores = [open_store(store_url, clock=clock) for _ in range(2)]
    senders = [LogoutSender(store, services.tokens, clock) for store in stores]
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            attempted = sum(pool.map(lambda s: s.run_once(limit=100), senders))
    finally:
        for store in stores:
            store.close()

    assert attempted == 24
    assert len(receiver.tokens) == 24 and len(set(receiver.jtis())) == 24
    assert all(d.delivered_at is not None and d.attempts == 1 for d in services.store.list_logout_deliveries())


def test_the_background_thread_delivers_without_being_asked(services, make_client, receiver):
    app = _queue_one(services, make_client, receiver.uri)
    sender = LogoutSender(services.store, services.tokens, services.clock, poll_interval=0.05)
    sender.start()
    try:
        deadline = threading.Event()
        for _ in range(200):
            if services.store.list_logout_deliveries(app.client_id)[0].delivered_at is not None:
                break
            deadline.wait(0.05)
    finally:
        sender.stop()
    assert services.store.list_logout_deliveries(app.client_id)[0].delivered_at is not None
    assert len(receiver.tokens) == 1
    sender.start()  # stopped for good: no second thread
    assert sender._thread is None or not sender._thread.is_alive()


# --- housekeeping -----------------------------------------------------------------------------


def test_purge_drops_expired_and_long_ended_sessions_and_old_outbox_rows(services, make_client, receiver, clock):
    user = _user(services)
    app = _client(make_client, receiver.uri)
    ended, live = _session(services, user.sub), _session(services, user.sub)
    for sid in (ended, live):
        services.store.record_session_client(sid, app.client_id, clock())
    services.revocations.end_session(ended)

    clock.advance(3601)
    services.store.purge_expired(clock())
    assert [s.sid for s in services.store.list_sessions(user.sub, clock())] == [live]
    assert len(services.store.list_logout_deliveries()) == 1  # kept a day for the operator

    clock.advance(86400)
    services.store.purge_expired(clock())
    assert services.store.list_sessions(user.sub, clock()) == []
    assert services.store.list_logout_deliveries() == []


# --- registration and discovery ---------------------------------------------------------------


@pytest.mark.parametrize(
    "uri",
    ["http://rp.example/logout", "http://localhost:8001/logout", "https://rp.example/logout#frag", "ftp://rp.example/"],
)
def test_clients_create_refuses_an_unsafe_backchannel_logout_uri(cli, uri):
    code, out, err = cli("clients", "create", "--name", "rp", "--backchannel-logout-uri", uri, "--json")
    assert code != 0 and out == ""
    assert "back-channel logout URI" in err and "Traceback" not in err


def test_clients_create_registers_a_backchannel_logout_uri(cli, services):
    uri = "https://rp.example/logout?tenant=1"
    code, out, _ = cli("clients", "create", "--name", "rp", "--backchannel-logout-uri", uri, "--json")
    assert code == 0
    client_id = json.loads(out)["client_id"]
    assert services.store.get_client(client_id).backchannel_logout_uri == uri
    code, out, _ = cli("clients", "list", "--json")
    assert {c["client_id"]: c for c in json.loads(out)}[client_id]["backchannel_logout_uri"] == uri


def test_admin_revocation_of_a_user_queues_logout_tokens(cli, services, make_client, receiver):
    user = _user(services)
    app = _client(make_client, receiver.uri)
    sid = _session(services, user.sub)
    services.store.record_session_client(sid, app.client_id, services.clock())

    code, _, err = cli("tokens", "revoke", "--sub", user.sub, "--json")

    assert code == 0, err
    [queued] = services.store.list_logout_deliveries()
    assert json.loads(queued.logout_claims)["sid"] == sid


def test_discovery_announces_backchannel_logout(services):
    from authsvc.app import create_app

    services.logout_sender.stop()
    doc = create_app(services=services).test_client().get("/.well-known/openid-configuration").get_json()
    assert doc["backchannel_logout_supported"] is True
    assert doc["backchannel_logout_session_supported"] is True
