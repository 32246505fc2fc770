"""The revocation list at ``revocation_list_uri``, and ``tokens revoke`` that feeds it.

Format per CONTRACT.md: ``{"version", "jti", "sid", "sub", "client_id"}``;
``ETag`` / ``If-None-Match``; ``?since=N`` for what changed after version N.
Entries leave once every token they can match has expired, so the list
stays small.
"""

import json

import pytest

from authsvc.services import build
from tests.oauth_calls import claims_of
from tests.oauth_calls import is_active
from tests.oauth_calls import refresh
from tests.oauth_calls import revoke
from tests.oauth_calls import user_tokens
from tests.oauth_calls import userinfo_status

KINDS = ("jti", "sid", "sub", "client_id")


@pytest.fixture
def admin(cli, clock, monkeypatch):
    """``python -m authsvc tokens revoke …`` in-process, on the tests' clock; returns its JSON."""
    # The CLI builds its own services from the environment; give them the fake clock
    # so "before" and the tokens' iat are on one time line.
    monkeypatch.setattr("authsvc.cli.context.build", lambda settings, **kw: build(settings, clock=clock, **kw))

    def run(*args):
        code, out, err = cli("tokens", "revoke", *args, "--json")
        assert code == 0, err
        return json.loads(out)

    return run


def get_list(client, **params):
    response = client.get("/revocations", query_string=params)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response


def test_discovery_names_the_revocation_list(client, settings):
    metadata = client.get("/.well-known/openid-configuration").json

    assert metadata["revocation_list_uri"] == settings.issuer + "/revocations"


def test_an_empty_list(client):
    response = get_list(client)

    assert response.mimetype == "application/json"
    assert response.json == {"version": 0, "jti": [], "sid": [], "sub": [], "client_id": []}


def test_the_list_has_the_contract_shape(client, rp, tokens, services, clock):
    rp_client, secret = rp
    access = claims_of(tokens["access_token"])
    revoke(client, rp_client, secret, tokens["access_token"])
    services.revocations.end_session(access["sid"])
    services.revocations.revoke_subject(access["sub"])
    services.revocations.revoke_client(rp_client.client_id)

    document = get_list(client).json

    assert set(document) == {"version", *KINDS}
    assert isinstance(document["version"], int) and document["version"] >= 4
    assert document["jti"] == [{"jti": access["jti"], "exp": pytest.approx(access["exp"] + 60)}]
    assert [set(e) for e in document["sid"]] == [{"sid", "exp"}]
    assert document["sid"][0]["sid"] == access["sid"]
    assert [(e["sub"], e["before"]) for e in document["sub"]] == [(access["sub"], clock())]
    assert [set(e) for e in document["sub"]] == [{"sub", "before", "exp"}]
    assert [set(e) for e in document["client_id"]] == [{"client_id", "before", "exp"}]
    assert document["client_id"][0]["client_id"] == rp_client.client_id
    for kind in KINDS:
        for entry in document[kind]:
            assert isinstance(entry["exp"], int | float) and entry["exp"] > clock()


def test_etag_and_if_none_match_give_304_until_the_list_changes(client, rp, tokens):
    rp_client, secret = rp
    first = get_list(client)
    etag = first.headers["ETag"]

    unchanged = client.get("/revocations", headers={"If-None-Match": etag})

    assert unchanged.status_code == 304
    assert unchanged.data == b""
    assert unchanged.headers["ETag"] == etag

    revoke(client, rp_client, secret, tokens["access_token"])
    changed = client.get("/revocations", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag
    assert changed.json["version"] == first.json["version"] + 1


def test_an_up_to_date_poller_gets_its_304_without_the_list_being_built(client, services, monkeypatch):
    """A 304 costs two counters, not a read of every entry: pollers of a long list stay cheap."""
    services.revocations.revoke_jtis([(f"j{i}", services.clock() + 600) for i in range(50)])
    full = get_list(client)
    delta = client.get(f"/revocations?since={full.json['version'] - 10}")

    def built(*_):
        raise AssertionError("the list was built for a 304")

    monkeypatch.setattr(services.revocations, "document", built)
    for answer, path in ((full, "/revocations"), (delta, f"/revocations?since={full.json['version'] - 10}")):
        again = client.get(path, headers={"If-None-Match": answer.headers["ETag"]})
        assert again.status_code == 304
    assert full.headers["ETag"] != delta.headers["ETag"]


@pytest.mark.parametrize("form", ["weak", "list", "star"])
def test_if_none_match_uses_weak_comparison(client, form):
    # RFC 9110 §13.1.2: If-None-Match compares weakly; a proxy that compresses
    # the body may hand the poller a W/ version of our ETag.
    etag = get_list(client).headers["ETag"]
    header = {"weak": "W/" + etag, "list": f'"other", {etag}', "star": "*"}[form]

    assert client.get("/revocations", headers={"If-None-Match": header}).status_code == 304


def test_since_returns_only_what_changed_after_that_version(client, rp, tokens, flow, services):
    rp_client, secret = rp
    revoke(client, rp_client, secret, tokens["access_token"])
    seen = get_list(client).json["version"]
    later = user_tokens(flow, rp_client, secret, login=False)
    revoke(client, rp_client, secret, later["access_token"])
    services.revocations.revoke_subject("u-someone")

    delta = get_list(client, since=seen).json
    full = get_list(client, since=0).json

    assert delta["since"] == seen
    assert delta["version"] == full["version"] == seen + 2
    assert [e["jti"] for e in delta["jti"]] == [claims_of(later["access_token"])["jti"]]
    assert [e["sub"] for e in delta["sub"]] == ["u-someone"]
    assert "since" not in full
    assert len(full["jti"]) == 2
    assert get_list(client, since=full["version"]).json["jti"] == []
    assert get_list(client).json == full


def test_since_from_another_database_gets_the_full_list(client, rp, tokens):
    rp_client, secret = rp
    revoke(client, rp_client, secret, tokens["access_token"])

    document = get_list(client, since=10**9).json

    assert "since" not in document
    assert len(document["jti"]) == 1


@pytest.mark.parametrize("since", ["abc", "-1", "1.5", "", " 1", "1e3", "0x10", "²", "9" * 19, "1%00"])
def test_a_malformed_since_is_a_json_400_never_a_500(client, since):
    response = client.get("/revocations?since=" + since)

    assert response.status_code == 400
    assert response.mimetype == "application/json"
    assert response.json["error"] == "invalid_request"


def test_the_version_only_goes_up(client, rp, flow, services, clock, settings):
    rp_client, secret = rp
    flow.login()
    versions = [get_list(client).json["version"]]
    for _ in range(3):
        issued = user_tokens(flow, rp_client, secret, login=False)
        revoke(client, rp_client, secret, issued["access_token"])
        versions.append(get_list(client).json["version"])
    clock.advance(settings.access_token_ttl + settings.leeway + 1)
    services.store.purge_expired(clock())
    versions.append(get_list(client).json["version"])
    services.revocations.revoke_subject("u-later")
    versions.append(get_list(client).json["version"])

    assert versions == [0, 1, 2, 3, 3, 4]


def test_the_list_stays_small_entries_leave_after_expiry(client, rp, flow, clock, settings, services):
    rp_client, secret = rp
    flow.login()
    for _ in range(10):
        issued = user_tokens(flow, rp_client, secret, login=False)
        revoke(client, rp_client, secret, issued["access_token"])
    clock.advance(30)
    services.revocations.revoke_subject("u-gone")
    assert len(get_list(client).json["jti"]) == 10

    clock.advance(settings.access_token_ttl + settings.leeway - 30)
    document = get_list(client).json
    assert document["jti"] == []
    assert len(document["sub"]) == 1

    # A "sub" entry also keeps that user's browser sessions dead, as long as their cookies live.
    clock.advance(max(settings.longest_token_ttl, settings.session_ttl))
    assert all(get_list(client).json[kind] == [] for kind in KINDS)


def test_jwks_etag_gives_304_too(client):
    etag = client.get("/jwks.json").headers["ETag"]

    assert client.get("/jwks.json", headers={"If-None-Match": etag}).status_code == 304


# --- logged-out sessions ----------------------------------------------------------------------


def authorize_params(rp_client) -> dict:
    return {
        "response_type": "code",
        "client_id": rp_client.client_id,
        "redirect_uri": rp_client.redirect_uris[0],
        "scope": "openid",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGKSWxBQxA",
        "code_challenge_method": "S256",
    }


def sends_to_login(response) -> bool:
    return response.status_code in (302, 303) and response.headers["Location"].startswith("/login")


def test_a_logged_out_session_cookie_stays_dead_after_its_tokens_expired(client, flow, rp, tokens, clock, settings):
    # The store keeps the ended session until the cookie itself would have expired, while
    # the published list drops it with the session's tokens and so stays small.
    rp_client, _ = rp
    copied = {cookie.key: cookie.value for cookie in client._cookies.values()}
    page = client.get("/logout")
    csrf = page.get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
    assert client.post("/logout", data={"csrf_token": csrf}).status_code == 200
    for name, value in copied.items():
        client.set_cookie(name, value)

    assert sends_to_login(flow.authorize(authorize_params(rp_client)))
    clock.advance(settings.longest_token_ttl + 1)
    assert sends_to_login(flow.authorize(authorize_params(rp_client)))
    assert get_list(client).json["sid"] == []


# --- tokens revoke (the admin command) -------------------------------------------------------


def test_tokens_revoke_sub_revokes_every_earlier_token_but_not_later_ones(
    client, flow, rp, tokens, admin, clock, services
):
    rp_client, secret = rp
    earlier = claims_of(tokens["access_token"])
    clock.advance(1)

    printed = admin("--sub", earlier["sub"])

    assert printed == [
        {"kind": "sub", "value": earlier["sub"], "version": 1, "before": clock(), "exp": printed[0]["exp"]}
    ]
    assert userinfo_status(client, tokens["access_token"]) == 401
    assert not is_active(client, rp_client, secret, tokens["access_token"])
    assert refresh(client, rp_client, secret, tokens["refresh_token"]).json["error"] == "invalid_grant"
    assert [e["sub"] for e in get_list(client).json["sub"]] == [earlier["sub"]]

    clock.advance(1)
    later = user_tokens(flow, rp_client, secret)
    assert userinfo_status(client, later["access_token"]) == 200
    assert is_active(client, rp_client, secret, later["access_token"])
    assert refresh(client, rp_client, secret, later["refresh_token"]).status_code == 200


def test_tokens_revoke_sub_ends_the_users_browser_sessions_too(client, flow, rp, tokens, admin, clock, settings):
    # "Everything the user holds" includes the signed-in browser: otherwise it
    # would silently mint fresh tokens for whoever holds that cookie.
    rp_client, _ = rp
    clock.advance(1)
    admin("--sub", claims_of(tokens["access_token"])["sub"])
    clock.advance(1)

    assert sends_to_login(flow.authorize(authorize_params(rp_client)))
    # Still so once the user's earlier tokens have all expired.
    clock.advance(settings.longest_token_ttl + 1)
    assert sends_to_login(flow.authorize(authorize_params(rp_client)))


def test_tokens_revoke_client_revokes_what_that_client_holds(client, flow, rp, tokens, admin, clock, make_client):
    rp_client, secret = rp
    other, other_secret = make_client("other app")
    others = user_tokens(flow, other, other_secret, login=False)
    clock.advance(1)

    printed = admin("--client", rp_client.client_id)

    assert [(e["kind"], e["value"], e["before"]) for e in printed] == [("client_id", rp_client.client_id, clock())]
    assert not is_active(client, rp_client, secret, tokens["access_token"])
    assert refresh(client, rp_client, secret, tokens["refresh_token"]).json["error"] == "invalid_grant"
    assert is_active(client, other, other_secret, others["access_token"])
    clock.advance(1)
    fresh = user_tokens(flow, rp_client, secret, login=False)
    assert is_active(client, rp_client, secret, fresh["access_token"])


def test_tokens_revoke_jti_lists_that_token(client, rp, tokens, admin, settings):
    rp_client, secret = rp
    jti = claims_of(tokens["access_token"])["jti"]

    printed = admin("--jti", jti)

    assert [(e["kind"], e["value"]) for e in printed] == [("jti", jti)]
    assert not is_active(client, rp_client, secret, tokens["access_token"])
    assert jti in [e["jti"] for e in get_list(client).json["jti"]]
    # The issuer keeps no access tokens, so the entry covers the longest lifetime.
    assert printed[0]["exp"] >= claims_of(tokens["access_token"])["exp"] + settings.leeway


@pytest.mark.parametrize("args", [(), ("--jti", "a", "--sub", "b"), ("--sub", "")])
def test_tokens_revoke_needs_exactly_one_target(cli, client, args):
    code, out, err = cli("tokens", "revoke", *args, "--json")

    assert code != 0
    assert out == ""
    assert err.startswith("authsvc: ")
    assert get_list(client).json["version"] == 0
