"""The account page (/account): a user's sessions and allowed apps, each revocable; the login
page naming the app that asks; sessions and session clients recorded for back-channel logout.
"""

import json
import logging
import re
from urllib.parse import urlencode

import pytest

from tests.conftest import Flow
from tests.oauth_calls import refresh
from tests.oauth_calls import user_tokens
from tests.oidc import keyring  # noqa: F401  (a copied ring: no key generation per test)
from tests.oidc import keyring_template  # noqa: F401
from tests.oidc import unverified

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
PHONE = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Mobile Safari/537.36"
)


@pytest.fixture(autouse=True)
def no_background_delivery(services):
    """Outbox rows stay where the tests can see them; delivery is tested in tests/test_backchannel.py."""
    services.logout_sender.stop()


def browser(app, user_agent=FIREFOX, address="203.0.113.7") -> Flow:
    client = app.test_client()
    client.environ_base.update(HTTP_USER_AGENT=user_agent, REMOTE_ADDR=address)
    return Flow(client)


def csrf_of(page) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)


def post(flow: Flow, **fields):
    token = fields.pop("csrf_token", None) or csrf_of(flow.client.get("/account"))
    return flow.client.post("/account", data={"csrf_token": token, **fields})


def sids_of(services, user) -> list[str]:
    return [s.sid for s in services.store.list_sessions(user.sub, services.clock())]


@pytest.fixture
def user(rp, services):
    return services.store.get_user_by_username("alice")


# --- seeing the page --------------------------------------------------------------------------


def test_the_page_is_behind_login_and_sign_in_comes_back_to_it(app, user):
    flow = browser(app)
    response = flow.client.get("/account")
    assert response.status_code == 303
    assert response.headers["Location"] == "/login?" + urlencode({"return_to": "/account"})

    signed_in = flow.login(return_to="/account")
    assert signed_in.status_code == 303 and signed_in.headers["Location"] == "/account"
    assert flow.client.get("/account").status_code == 200


def test_the_page_lists_each_browser_with_device_address_and_marks_this_one(app, services, user):
    laptop, phone = browser(app, FIREFOX, "203.0.113.7"), browser(app, PHONE, "198.51.100.20")
    laptop.login()
    phone.login()

    page = laptop.client.get("/account").get_data(as_text=True)

    assert "Firefox on Linux" in page and "Chrome on Android" in page
    assert "203.0.113.7" in page and "198.51.100.20" in page
    assert page.count("This browser") == 1
    assert page.index("Firefox on Linux") < page.index("This browser") < page.index("Chrome on Android")
    [laptop_session] = [
        s for s in services.store.list_sessions(user.sub, services.clock()) if s.address == "203.0.113.7"
    ]
    assert laptop_session.user_agent == FIREFOX
    assert laptop_session.expires_at == laptop_session.created_at + services.settings.session_ttl


def test_a_long_or_odd_user_agent_is_stored_short_and_printable(app, services, user):
    browser(app, "Evil\x1b[31m" + "x" * 5000).login()
    [session] = services.store.list_sessions(user.sub, services.clock())
    assert len(session.user_agent) == 256 and "\x1b" not in session.user_agent


def test_the_page_lists_allowed_apps_in_plain_words(app, services, rp, user):
    flow = browser(app)
    client, secret = rp
    user_tokens(flow, client, secret, scope="openid email offline_access")

    page = flow.client.get("/account").get_data(as_text=True)

    assert "relying party" in page
    assert "See your email address" in page and "Stay signed in and act for you while you are away" in page
    assert "Remove access" in page


# --- ending sessions --------------------------------------------------------------------------


def test_ending_another_session_signs_that_browser_out_only(app, services, user, caplog):
    laptop, phone = browser(app), browser(app, PHONE)
    laptop.login()
    phone.login()
    [phone_sid] = [s.sid for s in services.store.list_sessions(user.sub, services.clock()) if "Android" in s.user_agent]

    with caplog.at_level(logging.INFO, logger="authsvc.security"):
        response = post(laptop, action="end_session", sid=phone_sid)

    assert response.status_code == 303 and response.headers["Location"] == "/account"
    assert phone.client.get("/account").status_code == 303  # back to the login page
    assert laptop.client.get("/account").status_code == 200
    assert services.revocations.is_session_ended(phone_sid)
    assert phone_sid not in sids_of(services, user)
    [event] = [r for r in caplog.records if getattr(r, "event", None) == "session.revoked"]
    assert event.sid == phone_sid and event.sub == user.sub


def test_ending_this_session_signs_this_browser_out(app, services, user):
    flow = browser(app)
    flow.login()
    [sid] = sids_of(services, user)

    response = post(flow, action="end_session", sid=sid)

    assert response.status_code == 200 and b"You are signed out" in response.data
    assert flow.client.get("/account").status_code == 303
    assert services.revocations.is_session_ended(sid)


def test_signing_out_everywhere_revokes_the_user(app, services, rp, user):
    laptop, phone = browser(app), browser(app, PHONE)
    client, secret = rp
    tokens = user_tokens(laptop, client, secret)
    phone.login()

    response = post(laptop, action="end_all")

    assert response.status_code == 200 and b"You are signed out" in response.data
    assert laptop.client.get("/account").status_code == 303
    assert phone.client.get("/account").status_code == 303
    assert sids_of(services, user) == []
    assert refresh(laptop.client, client, secret, tokens["refresh_token"]).json["error"] == "invalid_grant"


# --- withdrawing consent ----------------------------------------------------------------------


def test_withdrawing_an_app_forgets_the_consent_and_revokes_its_tokens(app, services, rp, user, caplog):
    flow = browser(app)
    client, secret = rp
    tokens = user_tokens(flow, client, secret)

    with caplog.at_level(logging.INFO, logger="authsvc.security"):
        response = post(flow, action="withdraw", client_id=client.client_id)

    assert response.status_code == 303
    assert "relying party" not in flow.client.get("/account").get_data(as_text=True)
    assert refresh(flow.client, client, secret, tokens["refresh_token"]).json["error"] == "invalid_grant"
    assert services.revocations.is_token_revoked(unverified(tokens["access_token"]))
    # The app has to ask again.
    again = flow.client.get(
        "/authorize?"
        + urlencode(
            {
                "response_type": "code",
                "client_id": client.client_id,
                "redirect_uri": client.redirect_uris[0],
                "scope": "openid",
            }
        )
    )
    assert again.status_code == 200 and b'name="decision"' in again.data
    [event] = [r for r in caplog.records if getattr(r, "event", None) == "consent.withdrawn"]
    assert event.client_id == client.client_id and event.sub == user.sub
    # The user stays signed in: withdrawing an app is not signing out.
    assert flow.client.get("/account").status_code == 200


# --- bad input: always a clear 4xx ------------------------------------------------------------


def test_a_post_without_the_csrf_token_changes_nothing(app, services, user):
    flow = browser(app)
    flow.login()
    [sid] = sids_of(services, user)

    for data in ({"action": "end_all"}, {"action": "end_all", "csrf_token": "x" * 64}):
        response = flow.client.post("/account", data=data)
        assert response.status_code == 400 and b"The form expired" in response.data
    assert sids_of(services, user) == [sid]


def test_a_csrf_token_from_another_session_is_refused(app, services, user):
    laptop, phone = browser(app), browser(app, PHONE)
    laptop.login()
    phone.login()
    stolen = csrf_of(laptop.client.get("/account"))

    response = phone.client.post("/account", data={"action": "end_all", "csrf_token": stolen})

    assert response.status_code == 400
    assert len(sids_of(services, user)) == 2


def test_another_users_session_or_app_is_the_same_404_as_an_unknown_one(app, services, rp, user, make_user):
    client, secret = rp
    mallory = make_user("mallory", "mallory's password")
    victim = browser(app)
    user_tokens(victim, client, secret)
    [victim_sid] = sids_of(services, user)
    attacker = browser(app, PHONE)
    attacker.login("mallory", "mallory's password")

    answers = [
        post(attacker, action="end_session", sid=victim_sid),
        post(attacker, action="end_session", sid="no-such-session"),
        post(attacker, action="end_session", sid=""),
        post(attacker, action="end_session"),
    ]
    assert [a.status_code for a in answers] == [404] * 4
    assert len({a.get_data(as_text=True) for a in answers}) == 1
    assert b"does not exist" in answers[0].data and b"<html" in answers[0].data

    withdraw = [post(attacker, action="withdraw", client_id=client.client_id), post(attacker, action="withdraw")]
    assert [w.status_code for w in withdraw] == [404, 404]
    assert sids_of(services, user) == [victim_sid]
    assert services.store.get_consent(user.sub, client.client_id)
    assert sids_of(services, mallory)


@pytest.mark.parametrize(
    "fields",
    [
        {"action": "explode"},
        {},
        {"action": "end_session", "sid": "a\x00b"},
        {"action": "withdraw", "client_id": "c" * 5000},
    ],
)
def test_malformed_posts_get_a_400_page(app, user, fields):
    flow = browser(app)
    flow.login()
    response = post(flow, **fields)
    assert response.status_code == 400
    assert b"<html" in response.data


def test_a_repeated_parameter_is_refused(app, services, user):
    flow = browser(app)
    flow.login()
    [sid] = sids_of(services, user)
    token = csrf_of(flow.client.get("/account"))
    body = urlencode([("csrf_token", token), ("action", "end_session"), ("sid", sid), ("sid", "other")])

    response = flow.client.post("/account", data=body, content_type="application/x-www-form-urlencoded")

    assert response.status_code == 400
    assert sids_of(services, user) == [sid]


def test_a_post_from_a_signed_out_browser_is_401(app):
    response = browser(app).client.post("/account", data={"action": "end_all", "csrf_token": "x"})
    assert response.status_code == 401 and b"not signed in" in response.data


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_other_methods_are_405(app, method):
    assert browser(app).client.open("/account", method=method).status_code == 405


# --- the login page names the app -------------------------------------------------------------


def test_the_login_page_names_the_app_that_asks(app, rp):
    client, _ = rp
    flow = browser(app)
    authorize = "/authorize?" + urlencode(
        {"response_type": "code", "client_id": client.client_id, "redirect_uri": client.redirect_uris[0]}
    )
    to_login = flow.client.get(authorize)
    page = flow.client.get(to_login.headers["Location"]).get_data(as_text=True)
    assert re.search(r"to continue to <strong[^>]*>relying party</strong>", page)


@pytest.mark.parametrize(
    "return_to",
    ["/authorize?client_id=unknown", "/authorize?client_id=a&client_id=b", "/authorize?x=1", "/account", ""],
)
def test_the_login_page_names_no_app_it_cannot_vouch_for(app, rp, return_to):
    page = browser(app).client.get("/login?" + urlencode({"return_to": return_to}))
    assert page.status_code == 200 and b"to continue to" not in page.data


def test_an_app_name_is_escaped_on_the_login_page(app, make_client):
    client, _ = make_client("<script>alert(1)</script>")
    page = browser(app).client.get("/login?" + urlencode({"return_to": f"/authorize?client_id={client.client_id}"}))
    assert b"<script>alert(1)</script>" not in page.data and b"&lt;script&gt;" in page.data


# --- what the browser flow records for back-channel logout -------------------------------------


def test_a_code_records_the_client_in_the_session_and_logout_queues_its_token(app, services, make_client, user):
    with_uri, secret = make_client("logs out", backchannel_logout_uri="https://rp.example/bc")
    without_uri, other_secret = make_client("stays")
    flow = browser(app)
    user_tokens(flow, with_uri, secret)
    user_tokens(flow, without_uri, other_secret, login=False)
    [sid] = sids_of(services, user)

    token = csrf_of(flow.client.get("/logout"))
    response = flow.client.post("/logout", data={"csrf_token": token})

    assert response.status_code == 200
    [queued] = services.store.list_logout_deliveries()
    assert queued.client_id == with_uri.client_id and queued.uri == "https://rp.example/bc"
    assert json.loads(queued.logout_claims)["sid"] == sid
    assert queued.delivered_at is None  # the logout answered without waiting for the app
    assert services.store.get_session(sid).ended_at is not None


def test_ending_a_session_on_the_account_page_queues_its_logout_tokens(app, services, make_client, user):
    rp_with_uri, secret = make_client("logs out", backchannel_logout_uri="https://rp.example/bc")
    laptop, phone = browser(app), browser(app, PHONE)
    laptop.login()
    user_tokens(phone, rp_with_uri, secret)
    phone_sid = next(
        s.sid for s in services.store.list_sessions(user.sub, services.clock()) if "Android" in s.user_agent
    )

    post(laptop, action="end_session", sid=phone_sid)

    [queued] = services.store.list_logout_deliveries()
    assert json.loads(queued.logout_claims)["sid"] == phone_sid
