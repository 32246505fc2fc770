"""The account page in a real browser (Debian's chromium, headless, Playwright) against a real
gunicorn authsvc: sign in, see the sessions, end another one, withdraw an app, end this one.

Screenshots go to ``test-artifacts/``. Without chromium these tests skip with the reason,
except under CI=true, where they fail (see test_pages.py).
"""

from urllib.parse import urlsplit

import pytest
import requests

from tests.browser.test_pages import authorize_url
from tests.browser.test_pages import browser  # noqa: F401  (pytest finds fixtures by name)
from tests.browser.test_pages import page  # noqa: F401
from tests.browser.test_pages import relying_party  # noqa: F401
from tests.browser.test_pages import screenshot
from tests.browser.test_pages import sign_in
from tests.conftest import pkce_pair
from tests.oidc import http_login

PHONE = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36"
)


@pytest.fixture
def issuer(sqlite_issuer, relying_party):  # noqa: F811
    """A fresh user per test (their sessions and apps are the page), and an app they can allow."""
    user = sqlite_issuer.user("acct")
    redirect_uri = f"http://127.0.0.1:{relying_party.server_port}/cb"
    client = sqlite_issuer.client("--redirect-uri", redirect_uri, "--public", name="Recipe Box")
    return {
        "url": sqlite_issuer.instances[0].url,
        "username": user["username"],
        "password": user["password"],
        "client_id": client["client_id"],
        "redirect_uri": redirect_uri,
    }


def test_sign_in_see_sessions_end_one_withdraw_an_app_and_sign_out(page, issuer):  # noqa: F811
    # The app asks first: the login page names it, the consent page says what it may do.
    page.goto(authorize_url(issuer, pkce_pair()[1], scope="openid email"))
    assert "to continue to Recipe Box" in page.inner_text("main")
    screenshot(page, "login-names-the-app.png")
    sign_in(page, issuer)
    page.wait_for_selector("button[value=allow]")
    assert "See your email address" in page.inner_text(".scopes")
    page.click("button[value=allow]")
    page.wait_for_url(issuer["redirect_uri"] + "?*")

    # Another device signs in too.
    with requests.Session() as phone:
        phone.headers["User-Agent"] = PHONE
        assert http_login(phone, issuer["url"], issuer["username"], issuer["password"]).status_code == 303

        page.goto(issuer["url"] + "/account")
        page.get_by_role("heading", name="Your account").wait_for()
        sessions = page.locator(".sessions li")
        assert sessions.count() == 2
        this = page.locator(".sessions li.current")
        assert "This browser" in this.inner_text() and "Chrome on Linux" in this.inner_text()
        assert "127.0.0.1" in this.inner_text()
        assert "Chrome on Android" in page.inner_text(".sessions")
        assert "Recipe Box" in page.inner_text(".apps")
        screenshot(page, "account.png")

        # End the phone's session: it is signed out, this browser is not.
        page.locator(".sessions li", has_text="Chrome on Android").get_by_role("button", name="Sign out").click()
        page.get_by_role("heading", name="Your account").wait_for()
        assert page.locator(".sessions li").count() == 1
        assert phone.get(issuer["url"] + "/account", allow_redirects=False, timeout=10).status_code == 303

    # Withdraw the app: it disappears, and asks again next time.
    page.locator(".apps li", has_text="Recipe Box").get_by_role("button", name="Remove access").click()
    page.get_by_role("heading", name="Your account").wait_for()
    assert "Recipe Box" not in page.inner_text(".apps")
    screenshot(page, "account-after-changes.png")
    page.goto(authorize_url(issuer, pkce_pair()[1], scope="openid email"))
    page.wait_for_selector("button[value=allow]")

    # End this browser's own session.
    page.goto(issuer["url"] + "/account")
    page.locator(".sessions li.current").get_by_role("button", name="Sign out").click()
    page.get_by_role("heading", name="You are signed out").wait_for()
    page.goto(issuer["url"] + "/account")
    assert urlsplit(page.url).path == "/login"


def test_sign_out_everywhere(page, issuer):  # noqa: F811
    page.goto(issuer["url"] + "/account")
    assert urlsplit(page.url).path == "/login"
    sign_in(page, issuer)
    page.get_by_role("heading", name="Your account").wait_for()

    page.get_by_role("button", name="Sign out everywhere").click()

    page.get_by_role("heading", name="You are signed out").wait_for()
    page.goto(issuer["url"] + "/account")
    assert urlsplit(page.url).path == "/login"
