"""The login, consent and logout pages in a real browser: Debian's chromium,
headless, driven by Playwright for Python, against a real gunicorn authsvc.

The client's redirect URI is a tiny HTTP server on loopback, so the browser
really lands on it with a code. Screenshots of the pages go to
``test-artifacts/`` (git-ignored). Without chromium these tests skip with the
reason, except under CI=true, where they fail.
"""

import os
import threading
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs
from urllib.parse import urlencode
from urllib.parse import urlsplit

import pytest
import requests

from tests.conftest import pkce_pair
from tests.servers import ROOT

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = ROOT / "test-artifacts"


def _need_chromium() -> None:
    if Path(CHROMIUM).exists():
        return
    message = f"{CHROMIUM} is not installed (apt-get install chromium); browser tests need it"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


class _Callback(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's naming
        self.server.hits.append(self.path)
        body = b"<!doctype html><title>The app</title><h1>Back at the app</h1>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def relying_party():
    """The app's redirect URI: a loopback page that records what the browser brought."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Callback)
    server.hits = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def issuer(sqlite_issuer, relying_party):
    """The session's gunicorn authsvc with a user and a public app whose redirect URI is ``relying_party``."""
    user = sqlite_issuer.user("frida", email="frida@example.com")
    redirect_uri = f"http://127.0.0.1:{relying_party.server_port}/cb"
    client = sqlite_issuer.client("--redirect-uri", redirect_uri, "--public", name="Photo Album")
    return {
        "url": sqlite_issuer.instances[0].url,
        "username": user["username"],
        "password": user["password"],
        "client_id": client["client_id"],
        "redirect_uri": redirect_uri,
    }


@pytest.fixture(scope="module")
def browser():
    _need_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1024, "height": 720})
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        yield page
    finally:
        context.close()


def authorize_url(issuer, challenge, **extra):
    params = {
        "response_type": "code",
        "client_id": issuer["client_id"],
        "redirect_uri": issuer["redirect_uri"],
        "scope": "openid profile email",
        "state": "browser-state",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    params.update(extra)
    return issuer["url"] + "/authorize?" + urlencode(params)


def sign_in(page, issuer, password=None):
    page.fill("#username", issuer["username"])
    page.fill("#password", password or issuer["password"])
    page.click("button[type=submit]")


def screenshot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def test_login_consent_and_back_to_the_app_with_a_code(page, issuer, relying_party):
    verifier, challenge = pkce_pair()
    page.goto(authorize_url(issuer, challenge))

    assert urlsplit(page.url).path == "/login"
    assert page.get_by_role("heading", name="Sign in").is_visible()
    # The stylesheet loaded (same origin, allowed by the CSP): the card is styled.
    assert page.eval_on_selector(".card", "e => getComputedStyle(e).borderRadius") != "0px"
    screenshot(page, "login.png")
    sign_in(page, issuer)

    page.wait_for_selector("button[value=allow]")
    assert "Photo Album" in page.inner_text("h1")
    scopes = page.inner_text(".scopes")
    assert "See your email address" in scopes and "See your username" in scopes
    screenshot(page, "consent.png")
    page.click("button[value=allow]")

    page.wait_for_url(issuer["redirect_uri"] + "?*")
    query = {k: v[0] for k, v in parse_qs(urlsplit(page.url).query).items()}
    assert query["state"] == "browser-state"
    assert query["iss"] == issuer["url"]
    assert any(hit.startswith("/cb?code=") for hit in relying_party.hits)
    exchanged = requests.post(
        issuer["url"] + "/token",
        data={
            "grant_type": "authorization_code",
            "code": query["code"],
            "redirect_uri": issuer["redirect_uri"],
            "code_verifier": verifier,
            "client_id": issuer["client_id"],
        },
        timeout=10,
    )
    assert exchanged.status_code == 200
    assert exchanged.json()["id_token"]


def test_wrong_password_shows_the_error(page, issuer):
    _, challenge = pkce_pair()
    page.goto(authorize_url(issuer, challenge))
    sign_in(page, issuer, password="not the password")

    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "Sign-in failed" in alert.inner_text()
    assert urlsplit(page.url).path == "/login"
    assert page.input_value("#username") == issuer["username"]
    assert page.input_value("#password") == ""
    screenshot(page, "login-error.png")


def test_logout_ends_the_session(page, issuer):
    _, challenge = pkce_pair()
    page.goto(authorize_url(issuer, challenge))
    sign_in(page, issuer)
    page.wait_for_url(lambda url: urlsplit(url).path != "/login")

    page.goto(issuer["url"] + "/logout")
    page.get_by_role("heading", name="Sign out?").wait_for()
    screenshot(page, "logout-confirm.png")
    page.click("button[type=submit]")
    page.get_by_role("heading", name="You are signed out").wait_for()

    page.goto(authorize_url(issuer, pkce_pair()[1]))
    assert urlsplit(page.url).path == "/login"
    assert page.get_by_role("heading", name="Sign in").is_visible()


def test_a_direct_sign_in_lands_on_a_page_that_says_so(page, issuer):
    page.goto(issuer["url"] + "/login")
    sign_in(page, issuer)
    page.get_by_role("heading", name="You are signed in").wait_for()
    assert issuer["username"] in page.inner_text("main")
    screenshot(page, "signed-in.png")
