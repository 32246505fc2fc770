"""RP-Initiated Logout 1.0 at the end_session_endpoint (SECURITY.md C.40, C.41,
D.47, D.48): redirect only with a genuine ``id_token_hint`` to an exactly
registered URI, a CSRF-protected confirmation otherwise, and a logout that
ends the session everywhere: the ``sid`` listed, its refresh tokens revoked,
the old cookie dead on every instance.
"""

import base64
import json
import re
from urllib.parse import urlencode

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from tests import oidc
from tests.conftest import basic_auth
from tests.conftest import pkce_pair
from tests.conftest import query_of
from tests.oidc import fast_hashing  # noqa: F401
from tests.oidc import keyring  # noqa: F401
from tests.oidc import keyring_template  # noqa: F401
from tests.oidc import unverified

pytestmark = pytest.mark.usefixtures("fast_hashing")

AFTER = "https://rp.example/logged-out"
SESSION = "authsvc_session"


@pytest.fixture
def rp(make_client):
    return make_client(first_party=True, post_logout_redirect_uris=(AFTER,))


@pytest.fixture
def signed_in(flow, alice, rp):
    """Alice signed in to ``rp``; returns her first token response."""
    assert flow.login().status_code == 303
    record, secret = rp
    code, verifier, _ = flow.code(record)
    response = flow.exchange(record, secret, code, verifier)
    assert response.status_code == 200
    return response.get_json()


def logout(client, **params):
    return client.get("/logout?" + urlencode(params))


def session_alive(client, rp) -> bool:
    """Ask /authorize with prompt=none: a live session answers with a code."""
    record, _ = rp
    _, challenge = pkce_pair()
    response = client.get(
        "/authorize?"
        + urlencode(
            {
                "response_type": "code",
                "client_id": record.client_id,
                "redirect_uri": record.redirect_uris[0],
                "scope": "openid",
                "prompt": "none",
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
    )
    assert response.status_code == 302, response.status_code
    query = query_of(response.headers["Location"])
    if "code" in query:
        return True
    assert query["error"] == "login_required", query
    return False


def refresh_status(client, rp, refresh_token) -> int:
    record, secret = rp
    return client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        headers=basic_auth(record.client_id, secret),
    ).status_code


def assert_no_redirect(response):
    assert "Location" not in response.headers, response.headers.get("Location")
    assert response.status_code < 300 or response.status_code >= 400
    assert response.mimetype == "text/html"


def csrf_of(response) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', response.get_data(as_text=True)).group(1)


def test_valid_hint_and_registered_uri_redirect_with_state(client, rp, signed_in):
    response = logout(client, id_token_hint=signed_in["id_token"], post_logout_redirect_uri=AFTER, state="bye ☃")

    assert response.status_code in (302, 303)
    location = response.headers["Location"]
    assert location.split("?")[0] == AFTER
    assert query_of(location) == {"state": "bye ☃"}
    assert not session_alive(client, rp)


def test_state_is_not_added_when_not_sent(client, signed_in):
    response = logout(client, id_token_hint=signed_in["id_token"], post_logout_redirect_uri=AFTER)
    assert response.headers["Location"] == AFTER


def test_matching_client_id_is_accepted_and_a_mismatch_is_refused(client, rp, signed_in, make_client):
    other, _ = make_client("other", post_logout_redirect_uris=(AFTER,))
    refused = logout(
        client, id_token_hint=signed_in["id_token"], client_id=other.client_id, post_logout_redirect_uri=AFTER
    )
    assert_no_redirect(refused)
    assert session_alive(client, rp)

    accepted = logout(
        client, id_token_hint=signed_in["id_token"], client_id=rp[0].client_id, post_logout_redirect_uri=AFTER
    )
    assert accepted.headers["Location"] == AFTER


@pytest.mark.parametrize(
    "uri",
    [
        AFTER + "?foo=bar",
        AFTER + "/",
        AFTER + "#x",
        "https://RP.example/logged-out",
        "http://rp.example/logged-out",
        "https://rp.example/logged-out.evil.example",
        "https://evil.example/logged-out",
        "https://rp.example/cb",
        "javascript:alert(1)",
    ],
)
def test_post_logout_uri_not_registered_exactly_never_redirects(client, signed_in, uri):
    response = logout(client, id_token_hint=signed_in["id_token"], post_logout_redirect_uri=uri, state="s")
    assert_no_redirect(response)


def test_without_a_hint_the_user_confirms_and_is_not_redirected(client, rp, signed_in):
    page = logout(client, post_logout_redirect_uri=AFTER, client_id=rp[0].client_id, state="s")

    assert page.status_code == 200
    assert_no_redirect(page)
    assert b'<form method="post" action="/logout"' in page.data
    assert session_alive(client, rp), "a GET without a hint must not log out"

    done = client.post(
        "/logout",
        data={
            "csrf_token": csrf_of(page),
            "post_logout_redirect_uri": AFTER,
            "client_id": rp[0].client_id,
            "state": "s",
        },
    )

    assert done.status_code == 200
    assert_no_redirect(done)
    assert not session_alive(client, rp)
    assert refresh_status(client, rp, signed_in["refresh_token"]) == 400


@pytest.mark.parametrize("csrf", [None, "", "0" * 64, "from-another-browser"])
def test_confirmation_post_without_a_valid_csrf_token_changes_nothing(app, client, rp, signed_in, csrf, flow):
    data = {}
    if csrf == "from-another-browser":
        other = app.test_client()
        data["csrf_token"] = csrf_of(other.get("/logout"))
    elif csrf is not None:
        data["csrf_token"] = csrf

    response = client.post("/logout", data=data)

    assert response.status_code in (400, 403)
    assert_no_redirect(response)
    assert session_alive(client, rp)
    assert refresh_status(client, rp, signed_in["refresh_token"]) == 200


def _b64(data) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _forgeries(signed_in) -> dict:
    genuine = signed_in["id_token"]
    header = jwt.get_unverified_header(genuine)
    claims = unverified(genuine)
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    head, _, signature = genuine.split(".")
    return {
        "alg-none": f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': header['kid']})}.{_b64(claims)}.",
        "alg-none-no-dot": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}",
        "other-key": jwt.encode(claims, other_key, algorithm="RS256", headers={"kid": header["kid"]}),
        "other-issuer": jwt.encode({**claims, "iss": "https://evil.example"}, other_key, algorithm="RS256"),
        "tampered": f"{head}.{_b64({**claims, 'sid': 'someone-else'})}.{signature}",
        "signature-stripped": f"{head}.{genuine.split('.')[1]}.",
        "access-token": signed_in["access_token"],
        "refresh-token": signed_in["refresh_token"],
        "garbage": "garbage",
        "huge": "a." * 50_000,
    }


def test_forged_or_wrong_kind_of_hint_gives_an_html_error_and_no_logout(client, rp, signed_in):
    failures = []
    for name, hint in _forgeries(signed_in).items():
        response = logout(client, id_token_hint=hint, post_logout_redirect_uri=AFTER, state="s")
        if "Location" in response.headers or response.status_code != 400 or response.mimetype != "text/html":
            failures.append((name, response.status_code, response.headers.get("Location")))
    assert failures == []
    assert session_alive(client, rp)


def test_hint_signed_with_the_public_key_as_hmac_secret_is_refused(client, rp, signed_in, keyring):  # noqa: F811 - the fixture
    from cryptography.hazmat.primitives import serialization

    claims = unverified(signed_in["id_token"])
    kid = jwt.get_unverified_header(signed_in["id_token"])["kid"]
    public_pem = (
        next(k for k in keyring.published() if k.kid == kid)
        .private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    import hashlib
    import hmac

    head = _b64({"alg": "HS256", "typ": "JWT", "kid": kid})
    body = _b64(claims)
    sig = _b64(hmac.new(public_pem, f"{head}.{body}".encode(), hashlib.sha256).digest())

    response = logout(client, id_token_hint=f"{head}.{body}.{sig}", post_logout_redirect_uri=AFTER)

    assert_no_redirect(response)
    assert session_alive(client, rp)


def test_genuine_but_expired_hint_is_accepted(client, rp, signed_in, clock, settings):
    clock.advance(settings.id_token_ttl + 3600)
    response = logout(client, id_token_hint=signed_in["id_token"], post_logout_redirect_uri=AFTER)
    assert response.headers.get("Location") == AFTER


def test_logout_ends_the_session_everywhere_it_reaches(client, rp, signed_in):
    sid = unverified(signed_in["id_token"])["sid"]
    old_cookie = client.get_cookie(SESSION).value
    listed = {e["sid"] for e in client.get("/revocations").get_json()["sid"]}
    assert sid not in listed

    response = logout(client, id_token_hint=signed_in["id_token"], post_logout_redirect_uri=AFTER)

    assert response.status_code in (302, 303)
    cleared = [c for c in response.headers.getlist("Set-Cookie") if c.startswith(SESSION + "=")]
    assert cleared and ("Max-Age=0" in cleared[0] or "Expires=Thu, 01 Jan 1970" in cleared[0])
    assert not session_alive(client, rp)
    assert sid in {e["sid"] for e in client.get("/revocations").get_json()["sid"]}
    assert refresh_status(client, rp, signed_in["refresh_token"]) == 400
    userinfo = client.get("/userinfo", headers={"Authorization": "Bearer " + signed_in["access_token"]})
    assert userinfo.status_code == 401
    # The old cookie, replayed, is a dead session.
    client.set_cookie(SESSION, old_cookie)
    assert not session_alive(client, rp)


def test_a_hint_from_another_browser_still_ends_that_session(app, client, rp, signed_in):
    # The RP calls the endpoint from a back office with no cookie: the hinted sid ends.
    elsewhere = app.test_client()
    response = logout(elsewhere, id_token_hint=signed_in["id_token"], post_logout_redirect_uri=AFTER)
    assert response.headers.get("Location") == AFTER
    assert not session_alive(client, rp)
    assert refresh_status(client, rp, signed_in["refresh_token"]) == 400


def test_logout_does_not_touch_other_sessions_of_the_user(app, client, flow, rp, signed_in):
    from tests.conftest import Flow

    other_browser = app.test_client()
    assert Flow(other_browser).login().status_code == 303
    logout(client, id_token_hint=signed_in["id_token"], post_logout_redirect_uri=AFTER)

    assert not session_alive(client, rp)
    assert session_alive(other_browser, rp)


def test_a_new_login_after_logout_gets_a_new_sid(client, flow, rp, signed_in):
    logout(client, id_token_hint=signed_in["id_token"], post_logout_redirect_uri=AFTER)
    assert flow.login().status_code == 303
    record, secret = rp
    code, verifier, _ = flow.code(record)
    fresh = flow.exchange(record, secret, code, verifier).get_json()
    assert unverified(fresh["id_token"])["sid"] != unverified(signed_in["id_token"])["sid"]
    assert session_alive(client, rp)


# -- across instances --------------------------------------------------------


def test_logout_on_one_instance_kills_the_cookie_on_every_instance(pg_pair):
    a, b = pg_pair.instances
    dave = pg_pair.user("dave")
    registered = pg_pair.client(
        "--redirect-uri", "https://rp.example/cb", "--post-logout-redirect-uri", AFTER, "--first-party"
    )
    client_id, secret = registered["client_id"], registered["client_secret"]
    verifier, challenge = pkce_pair()
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": "https://rp.example/cb",
        "scope": "openid offline_access",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    browser = requests.Session()
    final = oidc.http_authorize(browser, a.url, params, username=dave["username"], password=dave["password"])
    tokens = requests.post(
        b.url + "/token",
        data={
            "grant_type": "authorization_code",
            "code": oidc.location_query(final)["code"],
            "redirect_uri": "https://rp.example/cb",
            "code_verifier": verifier,
        },
        auth=(client_id, secret),
        timeout=30,
    ).json()
    old_cookie = browser.cookies.get(SESSION)
    assert old_cookie

    def prompt_none(instance, cookie):
        _, challenge = pkce_pair()
        query = {**params, "prompt": "none", "code_challenge": challenge}
        response = requests.get(
            instance.url + "/authorize?" + urlencode(query),
            cookies={SESSION: cookie},
            allow_redirects=False,
            timeout=30,
        )
        return oidc.location_query(response)

    assert "code" in prompt_none(b, old_cookie), "the session works on the other instance"

    bye = browser.get(
        b.url
        + "/logout?"
        + urlencode({"id_token_hint": tokens["id_token"], "post_logout_redirect_uri": AFTER, "state": "x"}),
        allow_redirects=False,
        timeout=30,
    )
    assert bye.status_code in (302, 303) and bye.headers["Location"] == AFTER + "?state=x"

    for instance in (a, b):
        assert prompt_none(instance, old_cookie).get("error") == "login_required", instance.url
    sid = unverified(tokens["id_token"])["sid"]
    assert sid in {e["sid"] for e in requests.get(a.url + "/revocations", timeout=10).json()["sid"]}
    refreshed = requests.post(
        a.url + "/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=(client_id, secret),
        timeout=30,
    )
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"
    browser.close()


def test_a_code_issued_before_logout_cannot_be_redeemed_after_it(client, flow, rp, signed_in):
    """Logout revokes what exists; a code redeemed later would mint a refresh token nobody revoked."""
    record, secret = rp
    code, verifier, _ = flow.code(record)
    bye = client.post("/logout", data={"csrf_token": csrf_of(client.get("/logout"))})
    assert bye.status_code == 200

    response = flow.exchange(record, secret, code, verifier)

    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_grant"


def test_a_refresh_token_minted_after_logout_is_refused(client, flow, rp, signed_in, services):
    """The logout-vs-refresh race: a successor written after the logout's revocation must not work."""
    record, _ = rp
    sid = unverified(signed_in["id_token"])["sid"]
    # Only the sid entry, as when a rotation commits its successor just after the logout revoked the family.
    services.store.add_revocations([("sid", sid, services.clock() + 3600, None)], services.clock())

    assert refresh_status(client, rp, signed_in["refresh_token"]) == 400


def test_a_hint_for_another_session_does_not_silently_sign_out_this_browser(
    app, client, flow, rp, signed_in, make_user
):
    """Logout CSRF: an attacker's own genuine ID token must not end the victim's session unasked."""
    from tests.conftest import Flow

    make_user("mallory", "mallory's password", None)
    attacker = Flow(app.test_client())
    attacker.login("mallory", "mallory's password")
    record, secret = rp
    code, verifier, _ = attacker.code(record)
    attackers_id_token = attacker.exchange(record, secret, code, verifier).get_json()["id_token"]

    response = logout(client, id_token_hint=attackers_id_token, post_logout_redirect_uri=AFTER)

    assert session_alive(client, rp), "the victim's session was ended by a link"
    assert_no_redirect(response)
    assert b'<form method="post" action="/logout"' in response.data
    # Confirmed by the user (CSRF token of this browser), the logout proceeds as asked.
    done = client.post(
        "/logout",
        data={"csrf_token": csrf_of(response), "id_token_hint": attackers_id_token, "post_logout_redirect_uri": AFTER},
    )
    assert done.headers.get("Location") == AFTER
    assert not session_alive(client, rp)


def test_a_hint_for_an_older_session_of_the_same_user_asks_first(client, flow, rp, signed_in):
    assert flow.login().status_code == 303  # a new session; the RP still holds the old ID token
    response = logout(client, id_token_hint=signed_in["id_token"], post_logout_redirect_uri=AFTER)
    assert_no_redirect(response)
    assert session_alive(client, rp)
