"""Native-app redirect URIs (RFC 8252): the loopback port leeway and what it may not give away.

- Only public (native) clients may receive a code on a loopback port other
  than the registered one; a confidential client is matched exactly.
- A port the user never approved is shown on the consent page, even to a
  first-party client, and ``prompt=none`` there is ``consent_required``:
  another program on the machine cannot pick its own port, PKCE and
  ``prompt=none`` and get a code silently.
- ``http://localhost`` is refused at registration; loopback is an IP literal.
"""

import pytest

from authsvc import accounts
from tests.conftest import pkce_pair
from tests.conftest import query_of
from tests.oidc import fast_hashing  # noqa: F401
from tests.oidc import keyring  # noqa: F401  (a copy of one session-wide ring)
from tests.oidc import keyring_template  # noqa: F401

pytestmark = pytest.mark.usefixtures("fast_hashing")

ISSUER = "http://127.0.0.1:8000"


@pytest.fixture
def signed_in(flow, alice):
    response = flow.login()
    assert response.status_code == 303
    return alice


def params(record, redirect_uri, **extra) -> dict:
    _, challenge = pkce_pair()
    return {
        "response_type": "code",
        "client_id": record.client_id,
        "redirect_uri": redirect_uri,
        "scope": "openid",
        "state": "st",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }


def get(flow, record, redirect_uri, **extra):
    from urllib.parse import urlencode

    return flow.client.get("/authorize?" + urlencode(params(record, redirect_uri, **extra)))


def assert_code_at(response, redirect_uri) -> str:
    assert response.status_code == 302, response.get_data(as_text=True)[-400:]
    location = response.headers["Location"]
    assert location.startswith(redirect_uri + "?"), location
    return query_of(location)["code"]


def assert_consent_page(response):
    assert response.status_code == 200, (response.status_code, response.headers.get("Location"))
    assert b'name="decision" value="allow"' in response.data


# -- the port leeway is for public clients only ------------------------------


def test_confidential_client_gets_no_code_at_another_loopback_port(flow, signed_in, make_client):
    record, _ = make_client("web app on this host", redirect_uris=("http://127.0.0.1/callback",), first_party=True)

    for other in ("http://127.0.0.1:51234/callback", "http://127.0.0.1:80/callback"):
        response = get(flow, record, other)
        assert 400 <= response.status_code < 500, (other, response.status_code, response.headers.get("Location"))
        assert "Location" not in response.headers
        assert response.mimetype == "text/html"

    # The registered URI itself keeps working.
    assert_code_at(get(flow, record, "http://127.0.0.1/callback"), "http://127.0.0.1/callback")


def test_confidential_client_with_a_registered_loopback_port_is_matched_exactly(flow, signed_in, make_client):
    record, _ = make_client("local web app", redirect_uris=("http://127.0.0.1:8765/cb",), first_party=True)
    assert_code_at(get(flow, record, "http://127.0.0.1:8765/cb"), "http://127.0.0.1:8765/cb")
    assert get(flow, record, "http://127.0.0.1:8766/cb").status_code == 400


# -- an approved port is approved for that exact URI only ----------------------


@pytest.fixture
def native(make_client):
    record, _ = make_client("desktop app", public=True, redirect_uris=("http://127.0.0.1/cb",))
    return record


def test_consent_at_one_port_does_not_give_prompt_none_a_code_at_another(flow, signed_in, native, services):
    first = "http://127.0.0.1:50001/cb"
    assert_code_at(flow.authorize(params(native, first)), first)

    # A second local program: its own port, its own PKCE, no interaction wanted.
    response = get(flow, native, "http://127.0.0.1:50002/cb", prompt="none")

    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith("http://127.0.0.1:50002/cb?")
    query = query_of(location)
    assert query["error"] == "consent_required" and "code" not in query
    assert query["iss"] == ISSUER and query["state"] == "st"
    assert services.store.get_consent(signed_in.sub, native.client_id).redirect_uris == (first,)


def test_another_port_shows_the_consent_page_naming_it_and_is_remembered_once_allowed(flow, signed_in, native):
    first, second = "http://127.0.0.1:50001/cb", "http://127.0.0.1:50002/cb"
    assert_code_at(flow.authorize(params(native, first)), first)

    page = get(flow, native, second)
    assert_consent_page(page)
    assert second.encode() in page.data and b"a program on this computer" in page.data

    assert_code_at(flow.authorize(params(native, second)), second)
    # Both exact URIs are approved now; each works without interaction.
    for uri in (first, second):
        assert_code_at(get(flow, native, uri, prompt="none"), uri)
    # A third port is still a new question.
    assert_consent_page(get(flow, native, "http://127.0.0.1:50003/cb"))


def test_denying_a_new_port_approves_nothing(flow, signed_in, native, services):
    uri = "http://127.0.0.1:50001/cb"
    response = flow.authorize(params(native, uri), decision="deny")
    assert query_of(response.headers["Location"])["error"] == "access_denied"
    silent = get(flow, native, uri, prompt="none")
    assert query_of(silent.headers["Location"])["error"] == "consent_required"


def test_a_first_party_native_app_is_asked_once_per_port(flow, signed_in, make_client):
    record, _ = make_client("our desktop app", public=True, first_party=True, redirect_uris=("http://[::1]/cb",))
    uri = "http://[::1]:50001/cb"

    silent = get(flow, record, uri, prompt="none")
    assert query_of(silent.headers["Location"])["error"] == "consent_required"
    assert_consent_page(get(flow, record, uri))

    assert_code_at(flow.authorize(params(record, uri)), uri)
    assert_code_at(get(flow, record, uri, prompt="none"), uri)
    # Its registered URI itself still skips consent, as for any first-party client.
    assert_code_at(get(flow, record, "http://[::1]/cb", prompt="none"), "http://[::1]/cb")


def test_a_registered_exact_uri_keeps_its_consent_across_requests(flow, signed_in, make_client):
    record, _ = make_client("desktop app", public=True, redirect_uris=("http://127.0.0.1:8765/cb",))
    uri = "http://127.0.0.1:8765/cb"
    assert_code_at(flow.authorize(params(record, uri)), uri)
    assert_code_at(get(flow, record, uri, prompt="none"), uri)


def test_the_approved_ports_kept_per_consent_are_bounded(flow, signed_in, native, services):
    from authsvc.web.authorize import MAX_APPROVED_REDIRECT_URIS

    uris = [f"http://127.0.0.1:{50000 + n}/cb" for n in range(MAX_APPROVED_REDIRECT_URIS + 1)]
    for uri in uris:
        assert_code_at(flow.authorize(params(native, uri)), uri)

    kept = services.store.get_consent(signed_in.sub, native.client_id).redirect_uris
    assert kept == tuple(uris[1:])
    assert_consent_page(get(flow, native, uris[0]))


# -- registration --------------------------------------------------------------


@pytest.mark.parametrize(
    "uri", ["http://localhost/cb", "http://localhost:8080/cb", "HTTP://LOCALHOST:8080/cb", "http://localhost./cb"]
)
def test_localhost_redirect_uris_are_refused_for_new_clients(uri):
    with pytest.raises(ValueError) as refused:
        accounts.new_client("native", now=0, public=True, redirect_uris=(uri,))
    assert "127.0.0.1" in str(refused.value)


@pytest.mark.parametrize(
    "uri", ["http://127.0.0.1/cb", "http://127.0.0.1:8080/cb", "http://[::1]/cb", "http://[::1]:9/cb"]
)
def test_loopback_ip_literals_are_accepted(uri):
    client, _ = accounts.new_client("native", now=0, public=True, redirect_uris=(uri,))
    assert client.redirect_uris == (uri,)
