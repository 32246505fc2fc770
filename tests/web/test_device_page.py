"""The /device page (RFC 8628 §3.3, §5): login first, CSRF on every POST, the consent
page names the app, its scopes and the code, decisions are bound to the code
looked up, and code guessing is rate-limited with the login limiter.
"""

import logging
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pytest

from authsvc.web.login import safe_return_to
from tests.conftest import Flow
from tests.device_calls import csrf_of
from tests.device_calls import decide
from tests.device_calls import enter_code
from tests.device_calls import make_device_client
from tests.device_calls import poll
from tests.device_calls import started
from tests.oauth_calls import PASSWORD
from tests.oauth_calls import quick_user

ATTEMPTS = 3


@pytest.fixture
def settings(settings):
    return settings.with_overrides(login_attempts_per_user=ATTEMPTS)


@pytest.fixture
def tv(make_client):
    return make_device_client(make_client)


@pytest.fixture
def user(services):
    return quick_user(services)


@pytest.fixture
def browser(flow, user):
    assert flow.login().status_code == 303
    return flow.client


@pytest.fixture
def code(client, tv):
    rp, secret = tv
    return started(client, rp, secret)


def text(response) -> str:
    return response.get_data(as_text=True)


def status_of(services, user_code) -> str:
    return services.store.get_device_code_by_user_code(user_code.replace("-", "")).status


def events(caplog, name):
    return [r for r in caplog.records if getattr(r, "event", None) == name]


# §3.3 — login first, then back to the page


def test_signed_out_users_sign_in_and_come_back_with_the_code(client, user, code):
    response = client.get(f"/device?user_code={code['user_code']}")
    assert response.status_code == 303
    location = urlsplit(response.headers["Location"])
    assert location.path == "/login"
    return_to = parse_qs(location.query)["return_to"][0]
    assert return_to == f"/device?user_code={code['user_code']}"
    login = client.get(response.headers["Location"])
    response = client.post(
        "/login",
        data={"username": "alice", "password": PASSWORD, "csrf_token": csrf_of(login), "return_to": return_to},
    )
    assert response.headers["Location"] == return_to
    page = client.get(return_to)
    assert page.status_code == 200 and f'value="{code["user_code"]}"' in text(page)


@pytest.mark.parametrize(
    "value, allowed",
    [
        ("/device", True),
        ("/device?user_code=BCDF-GHJK", True),
        ("/authorize?client_id=x", True),
        ("/devices", False),
        ("/device/../admin", False),
        ("//evil.example/device", False),
        ("https://evil.example/device", False),
        ("/device?\\evil", False),
    ],
)
def test_login_returns_only_to_authorize_or_device(value, allowed):
    assert (safe_return_to(value) == value) is allowed


@pytest.mark.parametrize("typed", ["bcdf-ghjk", "BCDFGHJK", " bcdf ghjk ", "Bcdf-Ghjk"])
def test_6_1_the_prefilled_code_is_normalised(browser, typed):
    page = browser.get("/device", query_string={"user_code": typed})
    assert 'value="BCDF-GHJK"' in text(page)


@pytest.mark.parametrize("typed", ["<script>", "AEIOU-1234", "x" * 100, "ＢＣＤＦ-ＧＨＪＫ"])
def test_a_prefill_that_is_no_user_code_is_dropped(browser, typed):
    page = browser.get("/device", query_string={"user_code": typed})
    assert page.status_code == 200 and 'name="user_code" type="text" value=""' in text(page)


def test_the_pages_have_no_script_and_the_strict_csp(browser, code):
    page = browser.get("/device")
    consent = enter_code(browser, code["user_code"])
    for response in (page, consent):
        assert "<script" not in text(response)
        assert "default-src 'none'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Frame-Options"] == "DENY"


# §3.3 — consent


@pytest.mark.parametrize("shape", [str.lower, lambda c: c.replace("-", ""), lambda c: " ".join(c.split("-"))])
def test_6_1_codes_are_compared_ignoring_case_dashes_and_spaces(browser, code, shape):
    consent = enter_code(browser, shape(code["user_code"]))
    assert consent.status_code == 200 and 'name="decision"' in text(consent)


def test_5_4_consent_names_the_app_the_scopes_and_the_code(browser, code):
    consent = text(enter_code(browser, code["user_code"]))
    assert "Living-room TV" in consent
    assert code["user_code"] in consent
    for words in ("Sign you in", "See your username", "Stay signed in"):
        assert words in consent


def test_allow_approves_records_consent_and_logs(browser, code, services, user, tv, caplog):
    with caplog.at_level(logging.INFO, logger="authsvc.security"):
        done = decide(browser, code["user_code"], "allow")
    assert done.status_code == 200 and "Device connected" in text(done)
    assert status_of(services, code["user_code"]) == "approved"
    assert services.store.get_consent(user.sub, tv[0].client_id).scope == "openid profile offline_access"
    (event,) = events(caplog, "device.approved")
    assert (event.client_id, event.sub) == (tv[0].client_id, user.sub)
    assert code["user_code"].replace("-", "") not in repr(event.__dict__)


def test_deny_denies_and_logs(browser, code, services, caplog):
    with caplog.at_level(logging.INFO, logger="authsvc.security"):
        done = decide(browser, code["user_code"], "deny")
    assert done.status_code == 200 and "Access denied" in text(done)
    assert status_of(services, code["user_code"]) == "denied"
    assert len(events(caplog, "device.denied")) == 1


def test_a_second_decision_changes_nothing(browser, code, services):
    consent = enter_code(browser, code["user_code"])
    token = csrf_of(consent)
    form = {"csrf_token": token, "user_code": code["user_code"]}
    assert browser.post("/device", data={**form, "decision": "deny"}).status_code == 200
    again = browser.post("/device", data={**form, "decision": "allow"})
    assert again.status_code == 400 and "already used" in text(again)
    assert status_of(services, code["user_code"]) == "denied"


# CSRF (SECURITY.md D.43)


def test_entering_a_code_needs_the_csrf_token(browser, code, services):
    response = browser.post("/device", data={"user_code": code["user_code"]})
    assert response.status_code == 400 and 'name="decision"' not in text(response)
    response = browser.post("/device", data={"user_code": code["user_code"], "csrf_token": "0" * 64})
    assert response.status_code == 400


def test_a_decision_needs_the_token_of_the_code_it_decides(browser, client, tv, services):
    rp, secret = tv
    mine, victims = started(client, rp, secret), started(client, rp, secret)
    consent = enter_code(browser, mine["user_code"])
    for token in (csrf_of(consent), csrf_of(browser.get("/device"))):
        response = browser.post(
            "/device", data={"csrf_token": token, "user_code": victims["user_code"], "decision": "deny"}
        )
        assert response.status_code == 400
    assert status_of(services, victims["user_code"]) == "pending"


def test_a_decision_token_from_another_session_is_refused(app, browser, code, services):
    consent = enter_code(browser, code["user_code"])
    other = app.test_client()
    quick_user(services, "bob")
    assert Flow(other).login("bob").status_code == 303
    response = other.post(
        "/device", data={"csrf_token": csrf_of(consent), "user_code": code["user_code"], "decision": "allow"}
    )
    assert response.status_code == 400
    assert status_of(services, code["user_code"]) == "pending"


def test_posting_while_signed_out_goes_to_login_and_decides_nothing(client, code, services):
    response = client.post("/device", data={"user_code": code["user_code"], "decision": "allow"})
    assert response.status_code == 303 and response.headers["Location"].startswith("/login?")
    assert status_of(services, code["user_code"]) == "pending"


# Bad codes and bad input: a clear 4xx page, never a 500


def test_unknown_expired_and_used_codes_are_400(browser, client, tv, clock, code):
    rp, secret = tv
    assert enter_code(browser, "BCDF-GHJK").status_code == 400  # unknown (1 in 10^10 it exists)
    used = started(client, rp, secret)
    decide(browser, used["user_code"])
    poll(client, rp, secret, used["device_code"])
    response = enter_code(browser, used["user_code"])
    assert response.status_code == 400 and "expired or was already used" in text(response)
    clock.advance(code["expires_in"])
    assert enter_code(browser, code["user_code"]).status_code == 400


@pytest.mark.parametrize(
    "form",
    [
        {"user_code": ["BCDF-GHJK", "CDFG-HJKL"]},
        {"user_code": "BC\x00F-GHJK"},
        {"user_code": "B" * 5000},
        {"user_code": "not a code"},
        {"user_code": ""},
        {"decision": "maybe", "user_code": "BCDF-GHJK"},
        {"decision": "allow"},
    ],
)
def test_bad_input_is_a_4xx_page(browser, form):
    token = csrf_of(browser.get("/device"))
    response = browser.post("/device", data={"csrf_token": token, **form})
    assert 400 <= response.status_code < 500
    assert response.mimetype == "text/html"


def test_repeated_query_parameters_are_a_400_page(browser):
    response = browser.get("/device?user_code=A&user_code=B")
    assert response.status_code == 400 and response.mimetype == "text/html"


# §5.1 — guessing is rate-limited with the login limiter


def test_5_1_code_guesses_are_rate_limited_per_user(browser, code, clock, settings, caplog):
    for _ in range(ATTEMPTS):
        assert enter_code(browser, "ZZZZ-ZZZZ").status_code == 400
    with caplog.at_level(logging.INFO, logger="authsvc.security"):
        response = enter_code(browser, code["user_code"])  # even the right code now waits
    assert response.status_code == 429 and int(response.headers["Retry-After"]) > 0
    assert "Too many codes tried" in text(response)
    assert events(caplog, "device.throttled")[0].sub
    clock.advance(settings.login_window + 1)
    assert enter_code(browser, code["user_code"]).status_code == 200


def test_5_1_decisions_do_not_use_up_guesses(browser, client, tv):
    rp, secret = tv
    for _ in range(ATTEMPTS):
        assert decide(browser, started(client, rp, secret)["user_code"]).status_code == 200
