"""The login page and the browser session (SECURITY.md B.20, B.31–B.32, D.43–D.48,
E.54): CSRF, one answer for every failure, size limits, session fixation,
cookie attributes, security headers, escaping, return_to, and the
brute-force limit across two real instances (SQL store and Redis).
"""

import logging
import re
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from urllib.parse import urlencode

import pytest
import requests

from authsvc import ratelimit
from authsvc.app import create_app
from authsvc.services import build
from tests import oidc
from tests.conftest import Flow
from tests.conftest import pkce_pair
from tests.oidc import fast_hashing  # noqa: F401
from tests.oidc import keyring  # noqa: F401
from tests.oidc import keyring_template  # noqa: F401
from tests.oidc import unverified
from tests.services_available import DEAD_REDIS_URL
from tests.services_available import redis_url_or_skip

pytestmark = pytest.mark.usefixtures("fast_hashing")

PASSWORD = "correct horse battery"
SESSION = "authsvc_session"
FAILED = "Sign-in failed"
XSS = '"><script>alert(1)</script>'


@pytest.fixture
def rp(make_client):
    return make_client(first_party=False, post_logout_redirect_uris=("https://rp.example/bye",))


def csrf_of(response) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', response.get_data(as_text=True))
    assert match, "no csrf_token on the page"
    return match.group(1)


def post_login(client, username="alice", password=PASSWORD, csrf=None, **extra):
    data = {"username": username, "password": password, **extra}
    if csrf is not None:
        data["csrf_token"] = csrf
    return client.post("/login", data=data)


def session_cookie_set(response) -> bool:
    return any(c.startswith(SESSION + "=") and "Max-Age=0" not in c for c in response.headers.getlist("Set-Cookie"))


def authorize_path(record, **extra) -> str:
    _, challenge = pkce_pair()
    params = {
        "response_type": "code",
        "client_id": record.client_id,
        "redirect_uri": record.redirect_uris[0],
        "scope": "openid profile",
        "state": "st",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    params.update(extra)
    return "/authorize?" + urlencode(params)


def signed_in_as(client, rp) -> bool:
    response = client.get(authorize_path(rp[0], prompt="none"))
    return "login_required" not in response.headers.get("Location", "")


# -- the form ---------------------------------------------------------------


def test_login_page_is_a_plain_accessible_form(client):
    response = client.get("/login")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    for field in ('name="username"', 'name="password"', 'name="csrf_token"', 'type="password"'):
        assert field in page
    assert '<label for="username"' in page and '<label for="password"' in page
    assert "<script" not in page
    # Nothing from outside the service: every src/href is a local path.
    for url in re.findall(r'(?:src|href|action)="([^"]*)"', page):
        assert url.startswith("/"), url


def test_a_successful_login_sets_a_session_and_goes_somewhere_useful(client, alice):
    response = post_login(client, csrf=csrf_of(client.get("/login")))
    assert response.status_code == 303
    assert session_cookie_set(response)
    landing = client.get(response.headers["Location"])
    assert landing.status_code == 200, "a direct login must not land on an error page"


# -- CSRF ----------------------------------------------------------------------


@pytest.mark.parametrize("csrf", [None, "", "0" * 64, "garbage"], ids=["missing", "empty", "zeros", "garbage"])
def test_login_without_a_valid_csrf_token_is_400_and_no_session(client, alice, rp, csrf):
    client.get("/login")
    response = post_login(client, csrf=csrf)
    assert response.status_code == 400
    assert not session_cookie_set(response)
    assert not signed_in_as(client, rp)


def test_csrf_token_from_another_browser_is_refused(app, client, alice, rp):
    attacker = app.test_client()
    token = csrf_of(attacker.get("/login"))
    client.get("/login")
    response = post_login(client, csrf=token)
    assert response.status_code == 400
    assert not session_cookie_set(response)


def test_csrf_token_without_any_cookie_is_refused(app, alice):
    token = csrf_of(app.test_client().get("/login"))
    fresh = app.test_client()
    assert post_login(fresh, csrf=token).status_code == 400


def test_csrf_token_from_before_logout_is_refused(client, alice, rp):
    old = csrf_of(client.get("/login"))
    assert post_login(client, csrf=old).status_code == 303
    client.post("/logout", data={"csrf_token": csrf_of(client.get("/logout"))})

    response = post_login(client, csrf=old)

    assert response.status_code == 400
    assert not signed_in_as(client, rp)


def test_a_used_csrf_token_cannot_be_replayed_after_login(client, alice):
    token = csrf_of(client.get("/login"))
    assert post_login(client, csrf=token).status_code == 303
    assert post_login(client, csrf=token).status_code == 400


# -- one answer for every failure --------------------------------------------


def _normalised(response, username):
    body = response.get_data(as_text=True)
    body = re.sub(r'name="csrf_token" value="[^"]*"', 'name="csrf_token" value=""', body)
    body = body.replace(f'value="{username}"', 'value=""')
    # X-Request-Id is random per request: it tells nothing about the account.
    headers = sorted((k, v) for k, v in response.headers.items() if k.lower() not in ("content-length", "x-request-id"))
    return response.status_code, headers, body


def test_every_failure_looks_the_same(client, services, make_user, settings):
    from dataclasses import replace

    make_user()
    disabled = make_user("disab", PASSWORD, None)
    services.store.update_user(disabled.sub, lambda u: replace(u, disabled=True))
    make_user("locke", PASSWORD, None)
    token = csrf_of(client.get("/login"))
    for _ in range(settings.login_attempts_per_user):
        assert post_login(client, "locke", "wrong", csrf=token).status_code == 401

    cases = {
        "unknown user": ("nobod", PASSWORD),
        "wrong password": ("alice", "wrong password"),
        "disabled user": ("disab", PASSWORD),
        "locked user": ("locke", PASSWORD),
        "empty password": ("alice", ""),
    }
    answers = {}
    for name, (username, password) in cases.items():
        response = post_login(client, username, password, csrf=token)
        assert FAILED in response.get_data(as_text=True), name
        assert not session_cookie_set(response), name
        answers[name] = _normalised(response, username)

    reference = answers.pop("wrong password")
    for name, answer in answers.items():
        assert answer == reference, name


@pytest.mark.parametrize("size", [2_000, 60_000])
def test_over_long_passwords_fail_like_any_other(client, alice, size):
    token = csrf_of(client.get("/login"))
    response = post_login(client, "alice", "p" * size, csrf=token)
    assert response.status_code == 401
    assert FAILED in response.get_data(as_text=True)


def test_a_1mb_password_is_a_fast_4xx(client, alice):
    token = csrf_of(client.get("/login"))
    response = post_login(client, "alice", "p" * 1_000_000, csrf=token)
    assert response.status_code in (400, 413)
    assert not session_cookie_set(response)


def test_a_1mb_username_is_a_4xx(client, alice):
    token = csrf_of(client.get("/login"))
    assert post_login(client, "a" * 1_000_000, PASSWORD, csrf=token).status_code in (400, 413)


@pytest.mark.parametrize("username", ["alice\x00", "\x00", "%ff"])
def test_odd_usernames_are_4xx_never_500(client, alice, username):
    token = csrf_of(client.get("/login"))
    response = post_login(client, username, PASSWORD, csrf=token)
    assert 400 <= response.status_code < 500


def test_brute_force_limit_is_temporary_and_per_username(client, app, make_user, settings, clock, rp):
    make_user()
    make_user("bob", PASSWORD, None)
    token = csrf_of(client.get("/login"))
    for _ in range(settings.login_attempts_per_user):
        post_login(client, "alice", "guess", csrf=token)

    locked = post_login(client, "alice", PASSWORD, csrf=token)
    assert locked.status_code == 401 and FAILED in locked.get_data(as_text=True)
    # Another account from the same address is not locked out.
    other = app.test_client()
    assert post_login(other, "bob", PASSWORD, csrf=csrf_of(other.get("/login"))).status_code == 303

    # A moving window includes its edge: the guesses count until a moment after login_window.
    clock.advance(settings.login_window - 1)
    assert post_login(client, "alice", PASSWORD, csrf=token).status_code == 401
    clock.advance(2)
    assert post_login(client, "alice", PASSWORD, csrf=token).status_code == 303


# -- rate limits: counted first, no window edge, Redis outages, proxies ------------------


@pytest.fixture
def limited(settings, clock, keyring, store):  # noqa: F811 - the fixture
    """Build an app on the test database with other settings: limited(**overrides) -> (app, services)."""
    built = []

    def make(**overrides):
        services = build(settings.with_overrides(**overrides), clock=clock, keyring=keyring)
        built.append(services)
        return create_app(services=services), services

    yield make
    for services in built:
        services.close()


def _unique_issuer() -> str:
    # Redis keys are namespaced per issuer: a test of its own never meets another run's counts.
    return f"http://127.0.0.1:{secrets.randbelow(40000) + 20000}"


def _events(caplog, name):
    return [r for r in caplog.records if getattr(r, "event", None) == name]


def test_parallel_guesses_cannot_pass_the_limit(app, make_user, settings, caplog):
    """With 9 failures recorded, 8 parallel guesses (the right one among them): one more is checked, no more."""
    make_user()
    browser = app.test_client()
    token = csrf_of(browser.get("/login"))
    for i in range(settings.login_attempts_per_user - 1):
        assert post_login(browser, "alice", f"guess-{i}", csrf=token).status_code == 401
    browsers = [app.test_client() for _ in range(8)]
    tokens = [csrf_of(b.get("/login")) for b in browsers]
    passwords = [f"parallel-{i}" for i in range(7)] + [PASSWORD]
    barrier = threading.Barrier(len(browsers), timeout=30)

    def guess(i):
        barrier.wait()
        return post_login(browsers[i], "alice", passwords[i], csrf=tokens[i]).status_code

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="authsvc.security"):
        with ThreadPoolExecutor(len(browsers)) as pool:
            statuses = list(pool.map(guess, range(len(browsers))))

    assert statuses[:7] == [401] * 7
    outcomes = [getattr(r, "event", None) for r in caplog.records]
    outcomes = [e for e in outcomes if e in ("login.failed", "login.succeeded", "login.locked")]
    if statuses[7] == 303:
        # The right password took the 10th place; only its success (which clears the count) frees more.
        assert [e for e in outcomes if e != "login.locked"][0] == "login.succeeded", outcomes
    else:
        # A wrong guess took the 10th place: every other attempt, the right one too, was refused unchecked.
        assert sorted(outcomes) == ["login.failed"] + ["login.locked"] * 7, outcomes


def test_guesses_either_side_of_a_would_be_window_edge_stay_limited(client, make_user, settings, clock):
    make_user()
    token = csrf_of(client.get("/login"))
    boundary = (clock.now // settings.login_window + 1) * settings.login_window
    clock.now = boundary - 6.4
    for i in range(settings.login_attempts_per_user):
        assert post_login(client, "alice", f"guess-{i}", csrf=token).status_code == 401
        clock.advance(0.3)
    clock.now = boundary + 0.1
    for i in range(settings.login_attempts_per_user - 1):
        assert post_login(client, "alice", f"after-{i}", csrf=token).status_code == 401

    assert post_login(client, "alice", PASSWORD, csrf=token).status_code == 401


@pytest.mark.parametrize("backend", ["database", "redis"])
def test_a_user_named_star_signing_in_resets_no_one_else(limited, make_user, settings, backend):
    overrides = {}
    if backend == "redis":
        overrides = {"redis_url": redis_url_or_skip(), "issuer": _unique_issuer()}
    app, _ = limited(**overrides)
    make_user()
    make_user("*", PASSWORD, None)
    browser = app.test_client()
    token = csrf_of(browser.get("/login"))
    for i in range(settings.login_attempts_per_user):
        assert post_login(browser, "alice", f"guess-{i}", csrf=token).status_code == 401

    assert post_login(browser, "*", PASSWORD, csrf=token).status_code == 303

    other = app.test_client()
    assert post_login(other, "alice", PASSWORD, csrf=csrf_of(other.get("/login"))).status_code == 401


def test_a_redis_outage_mid_attack_keeps_the_account_locked(limited, make_user, settings, caplog):
    live = {"redis_url": redis_url_or_skip(), "issuer": _unique_issuer()}
    app, _ = limited(**live)
    make_user()
    browser = app.test_client()
    token = csrf_of(browser.get("/login"))
    for i in range(12):
        assert post_login(browser, "alice", f"guess-{i}", csrf=token).status_code == 401

    # Redis stops answering: the same deployment now reaches nothing there.
    down, _ = limited(**{**live, "redis_url": DEAD_REDIS_URL})
    browser = down.test_client()
    token = csrf_of(browser.get("/login"))
    with caplog.at_level(logging.WARNING, logger="authsvc.ratelimit"):
        for i in range(9):
            assert post_login(browser, "alice", f"more-{i}", csrf=token).status_code == 401
        assert post_login(browser, "alice", PASSWORD, csrf=token).status_code == 401


def test_one_address_failing_for_many_users_is_slowed_not_locked_out(client, app, make_user, settings, clock, caplog):
    make_user("bob", PASSWORD, None)
    # Start of a 300 s window, where a fixed window would hold its count longest.
    clock.now = (clock.now // 300 + 1) * 300
    token = csrf_of(client.get("/login"))
    for i in range(settings.login_attempts_per_address):
        assert post_login(client, f"random-{i}", "guess", csrf=token).status_code == 401

    with caplog.at_level(logging.INFO, logger="authsvc.security"):
        throttled = post_login(client, "random-x", "guess", csrf=token)
    assert throttled.status_code == 429
    retry_after = int(throttled.headers["Retry-After"])
    assert 0 < retry_after <= settings.login_address_window + 1
    assert f"try again in {retry_after} seconds" in throttled.get_data(as_text=True)
    assert _events(caplog, "login.throttled")[0].address == "127.0.0.1"
    # The attack goes on while bob waits; refused attempts do not extend the wait.
    for i in range(30):
        clock.advance(retry_after / 40)
        assert post_login(client, f"more-{i}", "guess", csrf=token).status_code == 429

    clock.now += retry_after - 30 * retry_after / 40
    bob = app.test_client()
    assert post_login(bob, "bob", PASSWORD, csrf=csrf_of(bob.get("/login"))).status_code == 303


def test_login_events_name_who_and_where_never_the_password(client, make_user, caplog):
    alice = make_user()
    token = csrf_of(client.get("/login"))
    with caplog.at_level(logging.INFO, logger="authsvc.security"):
        post_login(client, "alice", "wrong-password-123", csrf=token)
        post_login(client, "alice", PASSWORD, csrf=token)

    failed, succeeded = _events(caplog, "login.failed")[0], _events(caplog, "login.succeeded")[0]
    assert failed.username_hash == ratelimit.digest("alice")[:16] and failed.address == "127.0.0.1"
    assert succeeded.sub == alice.sub and succeeded.address == "127.0.0.1"
    logged = " ".join(r.getMessage() + repr(r.__dict__) for r in caplog.records)
    assert PASSWORD not in logged and "wrong-password-123" not in logged and "alice" not in logged


PROXY = "10.0.0.7"


def _from(peer, forwarded=None):
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    return {"environ_base": {"REMOTE_ADDR": peer}, "headers": headers}


def _attempt_from(app, peer, forwarded=None, username="nobody"):
    browser = app.test_client()
    token = csrf_of(browser.get("/login", **_from(peer, forwarded)))
    return post_login_from(browser, username, "guess", token, **_from(peer, forwarded))


def post_login_from(browser, username, password, token, **kwargs):
    return browser.post("/login", data={"username": username, "password": password, "csrf_token": token}, **kwargs)


def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(limited, settings):
    app, _ = limited(trusted_proxies=("10.0.0.0/8",), login_attempts_per_address=3)
    # Each attempt claims another address; all come from one socket peer that is no proxy.
    statuses = [_attempt_from(app, "203.0.113.9", f"198.51.100.{i}").status_code for i in range(4)]
    assert statuses == [401, 401, 401, 429]


def test_behind_a_trusted_proxy_the_rightmost_untrusted_hop_is_the_client(limited, caplog):
    app, _ = limited(trusted_proxies=("10.0.0.0/8",), login_attempts_per_address=3)
    # The client may prepend anything; the proxies appended what they saw.
    statuses = [
        _attempt_from(app, PROXY, f"{spoofed}, 198.51.100.7, 10.0.0.3").status_code
        for spoofed in ("1.1.1.1", "2.2.2.2", "3.3.3.3", "4.4.4.4")
    ]
    assert statuses == [401, 401, 401, 429]
    with caplog.at_level(logging.INFO, logger="authsvc.security"):
        other = _attempt_from(app, PROXY, "198.51.100.8")
    assert other.status_code == 401
    assert _events(caplog, "login.failed")[-1].address == "198.51.100.8"


def test_with_trusted_proxies_forwarded_host_and_proto_change_no_url(limited, settings):
    app, _ = limited(trusted_proxies=("10.0.0.0/8",))
    headers = {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https", "X-Forwarded-Prefix": "/evil"}
    response = app.test_client().get(
        "/.well-known/openid-configuration", environ_base={"REMOTE_ADDR": PROXY}, headers=headers
    )
    document = response.get_json()
    assert document["issuer"] == settings.issuer
    assert all("evil" not in str(value) for value in document.values())


# -- session fixation -----------------------------------------------------------


def _sid_of(client, rp):
    """The sid this browser's session puts into tokens (via a prompt=none code)."""
    record, secret = rp
    flow = Flow(client)
    code, verifier, _ = flow.code(record, scope="openid", extra={"prompt": "consent"})
    body = flow.exchange(record, secret, code, verifier).get_json()
    return unverified(body["id_token"])["sid"], unverified(body["id_token"])["sub"]


def test_a_planted_session_cookie_never_becomes_a_session(client, alice, rp):
    client.set_cookie(SESSION, "attacker-chosen-value")
    assert not signed_in_as(client, rp)

    response = post_login(client, csrf=csrf_of(client.get("/login")))

    assert response.status_code == 303
    assert client.get_cookie(SESSION).value != "attacker-chosen-value"
    assert signed_in_as(client, rp)


def test_an_attackers_own_session_cookie_is_replaced_at_login(app, client, make_user, rp):
    alice = make_user()
    make_user("mallory", PASSWORD, None)
    attacker = app.test_client()
    post_login(attacker, "mallory", PASSWORD, csrf=csrf_of(attacker.get("/login")))
    attacker_sid, _ = _sid_of(attacker, rp)
    client.set_cookie(SESSION, attacker.get_cookie(SESSION).value)

    assert post_login(client, "alice", PASSWORD, csrf=csrf_of(client.get("/login"))).status_code == 303

    sid, sub = _sid_of(client, rp)
    assert sub == alice.sub
    assert sid != attacker_sid


def test_sid_changes_on_every_login(client, alice, rp):
    post_login(client, csrf=csrf_of(client.get("/login")))
    first, _ = _sid_of(client, rp)
    post_login(client, csrf=csrf_of(client.get("/login")))
    second, _ = _sid_of(client, rp)
    assert first != second


# -- cookies ---------------------------------------------------------------------


def _cookie_attrs(header: str) -> dict:
    name_value, *attrs = [part.strip() for part in header.split(";")]
    result = {"name": name_value.split("=", 1)[0]}
    for attr in attrs:
        key, _, value = attr.partition("=")
        result[key.lower()] = value
    return result


def test_cookies_are_httponly_and_samesite_lax_without_secure_on_http(client, alice):
    login_page = client.get("/login")
    response = post_login(client, csrf=csrf_of(login_page))
    cookies = [
        _cookie_attrs(h) for h in login_page.headers.getlist("Set-Cookie") + response.headers.getlist("Set-Cookie")
    ]
    assert {c["name"] for c in cookies} >= {SESSION}
    for cookie in cookies:
        assert "httponly" in cookie, cookie
        assert cookie.get("samesite") == "Lax", cookie
        assert "secure" not in cookie, cookie
        assert cookie.get("path") == "/"


@pytest.fixture
def https_client(settings, clock, keyring, store):  # noqa: F811 - the fixture
    services = build(settings.with_overrides(issuer="https://login.example"), clock=clock, keyring=keyring)
    yield create_app(services=services).test_client()
    services.close()


def test_with_an_https_issuer_cookies_are_secure_and_host_prefixed(https_client, make_user):
    make_user()
    page = https_client.get("/login", base_url="https://login.example")
    response = https_client.post(
        "/login",
        data={"username": "alice", "password": PASSWORD, "csrf_token": csrf_of(page)},
        base_url="https://login.example",
    )
    assert response.status_code == 303
    cookies = [_cookie_attrs(h) for h in page.headers.getlist("Set-Cookie") + response.headers.getlist("Set-Cookie")]
    assert "__Host-" + SESSION in {c["name"] for c in cookies}
    for cookie in cookies:
        assert cookie["name"].startswith("__Host-"), cookie
        assert "secure" in cookie and "httponly" in cookie, cookie
        assert cookie.get("samesite") == "Lax", cookie
        assert cookie.get("path") == "/" and "domain" not in cookie, cookie


# -- headers on every page ---------------------------------------------------------


def _pages(client, flow, rp):
    record, _ = rp
    pages = {
        "login": client.get("/login"),
        "login failure": post_login(client, "alice", "wrong", csrf=csrf_of(client.get("/login"))),
        "login csrf failure": post_login(client, csrf="bad"),
        "authorize error": client.get("/authorize?client_id=nope"),
        "not found": client.get("/nothing-here"),
        "logout confirm (anonymous)": client.get("/logout"),
    }
    flow.login()
    pages["consent"] = client.get(authorize_path(record))
    pages["consent csrf failure"] = client.post(authorize_path(record), data={"decision": "allow"})
    pages["logout confirm"] = client.get("/logout")
    pages["logged out"] = client.post("/logout", data={"csrf_token": csrf_of(pages["logout confirm"])})
    pages["token error"] = client.post("/token", data={"grant_type": "authorization_code", "code": "x"})
    pages["userinfo 401"] = client.get("/userinfo")
    return pages


def test_security_headers_on_every_page(client, flow, alice, rp):
    missing = []
    for name, response in _pages(client, flow, rp).items():
        headers = response.headers
        csp = headers.get("Content-Security-Policy", "")
        checks = {
            "csp frame-ancestors": "frame-ancestors 'none'" in csp,
            "csp no unsafe-inline": "unsafe-inline" not in csp and "unsafe-eval" not in csp,
            "csp default-src": "default-src 'none'" in csp or "default-src 'self'" in csp,
            "x-frame-options": headers.get("X-Frame-Options") == "DENY",
            "referrer-policy": headers.get("Referrer-Policy") == "no-referrer",
            "no-store": "no-store" in headers.get("Cache-Control", ""),
            "nosniff": headers.get("X-Content-Type-Options") == "nosniff",
        }
        missing += [(name, check) for check, ok in checks.items() if not ok]
    assert missing == []


def test_pages_carry_no_inline_script_or_style(client, flow, alice, rp):
    for name, response in _pages(client, flow, rp).items():
        if response.mimetype != "text/html":
            continue
        page = response.get_data(as_text=True)
        assert "<script" not in page, name
        assert "<style" not in page and " style=" not in page, name
        assert not re.search(r"<[^>]+\son[a-z]+=", page), name


# -- escaping and redirects -----------------------------------------------------------


def test_reflected_values_are_html_escaped(client, flow, alice, rp):
    record, _ = rp
    responses = {
        "client_id": client.get("/authorize?" + urlencode({"client_id": XSS, "redirect_uri": XSS, "state": XSS})),
        "redirect_uri": client.get(authorize_path(record, redirect_uri="https://rp.example/cb" + XSS, state=XSS)),
        "login_hint": client.get("/login?" + urlencode({"login_hint": XSS})),
        "return_to": client.get("/login?" + urlencode({"return_to": "/authorize?x=" + XSS})),
        "username echo": post_login(client, XSS, "wrong", csrf=csrf_of(client.get("/login"))),
        "logout params": client.get("/logout?" + urlencode({"state": XSS, XSS: XSS})),
    }
    flow.login()
    responses["consent state"] = client.get(authorize_path(record, state=XSS, nonce=XSS))
    raw = [name for name, response in responses.items() if "<script>" in response.get_data(as_text=True)]
    assert raw == []
    assert responses["consent state"].status_code == 200


def test_a_client_named_like_html_is_escaped_on_the_consent_page(client, flow, alice, make_client):
    record, _ = make_client(name="<img src=x onerror=alert(1)>")
    flow.login()
    page = client.get(authorize_path(record)).get_data(as_text=True)
    assert "<img" not in page and "&lt;img" in page


@pytest.mark.parametrize(
    "return_to",
    [
        "https://evil.example/authorize?x=1",
        "//evil.example/authorize?x=1",
        "/\\evil.example/authorize?x=1",
        "\\\\evil.example/authorize?x=1",
        "/%2F%2Fevil.example/authorize?",
        "javascript:alert(1)",
        "/logout",
        "/authorize",
        "http:/evil.example/authorize?x",
        "/authorize?a=1\r\nSet-Cookie: x=y",
        " //evil.example/authorize?x",
    ],
)
def test_return_to_never_leaves_the_authorization_endpoint(client, alice, return_to):
    response = post_login(client, csrf=csrf_of(client.get("/login")), return_to=return_to)
    assert response.status_code in (303, 400)
    location = response.headers.get("Location", "/")
    assert location in ("/", "http://localhost/"), location
    assert "x=y" not in "".join(response.headers.getlist("Set-Cookie"))


def test_return_to_back_to_authorize_is_followed(client, alice, rp):
    path = authorize_path(rp[0])
    response = post_login(client, csrf=csrf_of(client.get("/login")), return_to=path)
    assert response.status_code == 303
    assert response.headers["Location"] == path


def test_the_login_page_keeps_a_safe_return_to_and_drops_others(client, rp):
    path = authorize_path(rp[0])
    kept = client.get("/login?" + urlencode({"return_to": path})).get_data(as_text=True)
    dropped = client.get("/login?" + urlencode({"return_to": "https://evil.example/authorize?"})).get_data(as_text=True)
    assert 'name="return_to" value="/authorize?' in kept
    assert "evil.example" not in dropped


# -- brute force across real instances ---------------------------------------------------
#
# Each test starts its own two instances behind a "proxy" (127.0.0.1 is trusted and every
# request names a client address of its own), so no other test's attempts share its
# per-address count, and its Redis keys live under its own issuer.


def _two_instances(tmp_path, **env):
    return oidc.start_deployment(tmp_path, count=2, AUTHSVC_TRUSTED_PROXIES="127.0.0.1/32", **env)


def _browser() -> requests.Session:
    browser = requests.Session()
    browser.headers["X-Forwarded-For"] = f"2001:db8::{secrets.token_hex(2)}:{secrets.token_hex(2)}"
    return browser


def _brute_force_across(deployment):
    limit = 10
    a, b = deployment.instances
    victim = deployment.user("victim", PASSWORD)
    bystander = deployment.user("bystander", PASSWORD)

    browser = _browser()
    for i in range(limit):
        target = (a, b)[i % 2]
        response = oidc.http_login(browser, target.url, victim["username"], f"guess-{i}")
        assert response.status_code == 401 and FAILED in response.text, (i, response.status_code)

    for target in (a, b):
        locked = oidc.http_login(browser, target.url, victim["username"], PASSWORD)
        assert locked.status_code == 401, target.url
        assert FAILED in locked.text
        assert SESSION not in locked.cookies

    # Per account: someone else from the same address still gets in.
    other = requests.Session()
    other.headers.update(browser.headers)
    assert oidc.http_login(other, b.url, bystander["username"], PASSWORD).status_code == 303
    return victim["username"]


def test_brute_force_limit_holds_across_two_instances_sharing_the_database(tmp_path, request):
    from tests.dbs import postgres_url_or_skip

    deployment = _two_instances(tmp_path, database_url=postgres_url_or_skip(request))
    try:
        _brute_force_across(deployment)
    finally:
        deployment.stop()


def test_brute_force_limit_holds_across_two_instances_sharing_redis(tmp_path):
    import redis

    from authsvc.config import Settings
    from authsvc.services import redis_prefix

    redis_url = redis_url_or_skip()
    # The counters live in Redis and in the (embedded) database.
    deployment = _two_instances(tmp_path, redis_url=redis_url)
    connection = redis.Redis.from_url(redis_url)
    prefix = redis_prefix(Settings().with_overrides(issuer=deployment.issuer))
    try:
        victim = _brute_force_across(deployment)
        key = f"{prefix}:login-user/{ratelimit.digest(victim.casefold())}/10/300/second"
        assert connection.llen(key) == 10, "the attempts are counted in Redis"
    finally:
        deployment.stop()
        # Only this deployment's keys, by exact name (they expire on their own too).
        keys = list(connection.scan_iter(prefix + ":*"))
        if keys:
            connection.delete(*keys)
        connection.close()


def test_login_on_one_instance_and_consent_on_the_other(pg_pair):
    """The session cookie and the CSRF tokens are signed with the shared key ring's secret."""
    a, b = pg_pair.instances
    user = pg_pair.user("hana", PASSWORD)
    registered = pg_pair.client("--redirect-uri", "https://rp.example/cb")
    browser = requests.Session()
    assert oidc.http_login(browser, a.url, user["username"], PASSWORD).status_code == 303

    path = authorize_path(SimpleNamespace(client_id=registered["client_id"], redirect_uris=("https://rp.example/cb",)))
    consent = browser.get(b.url + path, allow_redirects=False, timeout=10)
    assert consent.status_code == 200 and 'name="decision"' in consent.text
    decided = browser.post(
        a.url + path,
        data={"decision": "allow", "csrf_token": oidc.csrf_of(consent.text)},
        allow_redirects=False,
        timeout=10,
    )

    assert decided.status_code == 302
    assert "code" in oidc.location_query(decided)


def test_the_home_page_sends_anonymous_browsers_to_login(client):
    response = client.get("/")
    assert response.status_code in (302, 303)
    assert response.headers["Location"].endswith("/login")
