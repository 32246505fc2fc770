"""``python -m authsvc keys add | rotate | list | prune``: the key ring's lifecycle from the command line."""

import calendar
import json
import re
import stat
import time
from pathlib import Path

import jwt
import pytest

from authsvc.app import create_app
from authsvc.keyring import JWKS_MAX_AGE
from tests.conftest import basic_auth


def manifest_path(settings) -> Path:
    return Path(settings.keys_dir) / "manifest.json"


def edit_manifest(settings, change) -> None:
    """Rewrite manifest.json by hand, as an operator (or a bad editor) would."""
    path = manifest_path(settings)
    doc = json.loads(path.read_text())
    change(doc["keys"])
    path.write_text(json.dumps(doc))


def by_status(keys) -> dict:
    found = {}
    for key in keys:
        found.setdefault(key["status"], []).append(key)
    return found


def test_list_shows_the_ring(ok, keyring):
    keys, err = ok("keys", "list")
    assert err == ""
    assert [(k["kid"], k["alg"], k["status"]) for k in keys] == [(k.kid, k.alg, k.status.value) for k in keyring.keys()]
    active = by_status(keys)["active"]
    assert [k["alg"] for k in active] == ["RS256"]
    assert {"kid", "alg", "status", "created_at"} <= set(active[0])
    # ISO-8601 UTC, and nothing private in the listing.
    assert active[0]["created_at"].endswith("Z")
    assert "PRIVATE" not in json.dumps(keys)


def test_add_rotate_prune_lifecycle(ok, cli, keyring, settings):
    old = keyring.active("RS256").kid
    waiting = next(k.kid for k in keyring.keys() if k.status.value == "next")

    # add replaces the waiting next key (it never signed) with a fresh one.
    added, _ = ok("keys", "add")
    assert added["status"] == "next" and added["alg"] == "RS256" and added["kid"] != old
    assert added["replaced"] == [waiting]
    keys, _ = ok("keys", "list")
    assert {(k["kid"], k["status"]) for k in keys} == {(old, "active"), (added["kid"], "next")}
    key_file = Path(settings.keys_dir) / f"{added['kid']}.pem"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert not (Path(settings.keys_dir) / f"{waiting}.pem").exists()

    rotated, err = ok("keys", "rotate", "--force")
    assert rotated["rotated"] is True
    assert rotated["active"]["kid"] == added["kid"]
    assert rotated["retired"]["kid"] == old
    # Always a published successor.
    assert rotated["next"]["status"] == "next" and rotated["next"]["kid"] not in (old, added["kid"])
    keys, _ = ok("keys", "list")
    statuses = {k["kid"]: k["status"] for k in keys}
    assert statuses == {old: "retired", added["kid"]: "active", rotated["next"]["kid"]: "next"}

    # A freshly retired key still verifies live tokens: prune keeps it.
    pruned, _ = ok("keys", "prune")
    assert pruned == []
    assert (Path(settings.keys_dir) / f"{old}.pem").exists()

    # Once its window has passed (retired long ago), prune drops it and its file.
    long_ago = int(time.time()) - settings.longest_token_ttl - 10

    def retire_long_ago(entries):
        for entry in entries:
            if entry["kid"] == old:
                entry["retired_at"] = long_ago

    edit_manifest(settings, retire_long_ago)
    pruned, _ = ok("keys", "prune")
    assert [k["kid"] for k in pruned] == [old]
    assert not (Path(settings.keys_dir) / f"{old}.pem").exists()
    keys, _ = ok("keys", "list")
    assert old not in {k["kid"] for k in keys}
    assert by_status(keys)["active"][0]["kid"] == added["kid"]


def publish_earlier(settings, kid, seconds):
    def change(entries):
        for entry in entries:
            if entry["kid"] == kid:
                entry["created_at"] -= seconds

    edit_manifest(settings, change)


def test_rotate_refuses_a_next_key_published_too_briefly_and_says_when(ok, fails, keyring, settings):
    old = keyring.active("RS256").kid
    waiting = next(k for k in keyring.keys() if k.status.value == "next")
    publish_earlier(settings, waiting.kid, 100)
    line = fails("keys", "rotate", "--json")
    # One line: why, when it becomes safe (UTC and seconds from now), and the way out.
    assert re.search(r"was published 10[0-3] s ago", line), line
    assert str(JWKS_MAX_AGE) in line and "--force" in line
    when = re.search(r"Safe from (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) \(in (\d+) s\)", line)
    assert when, line
    assert 195 <= int(when.group(2)) <= 200, line
    safe_at = calendar.timegm(time.strptime(when.group(1), "%Y-%m-%dT%H:%M:%SZ"))
    assert abs(safe_at - (waiting.created_at - 100 + JWKS_MAX_AGE)) <= 1
    assert by_status(ok("keys", "list")[0])["active"][0]["kid"] == old  # nothing changed

    # Published for the JWKS max-age: the rotation goes through, in silence.
    publish_earlier(settings, waiting.kid, JWKS_MAX_AGE)
    rotated, err = ok("keys", "rotate")
    assert rotated["active"]["kid"] == waiting.kid and rotated["retired"]["kid"] == old
    assert err == ""
    # ...and its successor is published at once, so the next rotation is safe in 300 s.
    assert fails("keys", "rotate", "--json").startswith("authsvc: not rotated: the next RS256 key")


def test_force_rotates_at_once_and_warns_of_the_exposure(ok, keyring):
    old = keyring.active("RS256").kid
    waiting = next(k.kid for k in keyring.keys() if k.status.value == "next")
    rotated, err = ok("keys", "rotate", "--force")
    assert rotated["active"]["kid"] == waiting and rotated["retired"]["kid"] == old
    assert len(err.splitlines()) == 1 and "forced" in err and "max-age" in err


def test_a_ring_without_a_next_key_gets_one_and_rotates_once_it_is_old_enough(ok, fails, keyring, settings):
    """A ring written before successors existed: the first rotate publishes one and refuses."""
    old = keyring.active("RS256").kid
    manifest = json.loads(manifest_path(settings).read_text())
    manifest["keys"] = [entry for entry in manifest["keys"] if entry["status"] != "next"]
    manifest_path(settings).write_text(json.dumps(manifest))
    line = fails("keys", "rotate", "--json")
    assert "no RS256 key was waiting as next; published" in line and "(in 300 s)" in line
    published = by_status(ok("keys", "list")[0])
    assert published["active"][0]["kid"] == old and len(published["next"]) == 1
    publish_earlier(settings, published["next"][0]["kid"], JWKS_MAX_AGE)
    rotated, err = ok("keys", "rotate")
    assert rotated["active"]["kid"] == published["next"][0]["kid"] and err == ""


def test_rotate_if_older_than(ok, fails, keyring, settings):
    old = keyring.active("RS256").kid
    result, _ = ok("keys", "rotate", "--if-older-than", "30d")
    assert result["rotated"] is False
    keys, _ = ok("keys", "list")
    assert by_status(keys)["active"][0]["kid"] == old
    assert len(by_status(keys)["next"]) == 1

    # Old enough, but its successor was published moments ago: refused, not half done.
    assert "not rotated" in fails("keys", "rotate", "--if-older-than", "0s", "--json")
    publish_earlier(settings, by_status(keys)["next"][0]["kid"], JWKS_MAX_AGE)
    result, _ = ok("keys", "rotate", "--if-older-than", "0s")
    assert result["rotated"] is True and result["retired"]["kid"] == old


@pytest.mark.parametrize("duration", ["nonsense", "30x", "-1d", "", "1.5h", "99999999999d"])
def test_rotate_refuses_a_bad_duration(fails, keyring, duration):
    line = fails("keys", "rotate", "--if-older-than", duration, "--json")
    assert "--if-older-than" in line
    assert keyring.active("RS256") is not None


def test_other_algorithms(ok, keyring, settings):
    added, _ = ok("keys", "add", "--alg", "ES256")
    assert added["alg"] == "ES256" and added["status"] == "next"
    rotated, _ = ok("keys", "rotate", "--alg", "ES256")
    assert rotated["active"]["kid"] == added["kid"] and rotated["retired"] is None
    rotated, _ = ok("keys", "rotate", "--alg", "EdDSA")
    assert rotated["active"]["alg"] == "EdDSA"
    keys, _ = ok("keys", "list")
    assert sorted(k["alg"] for k in by_status(keys)["active"]) == ["ES256", "EdDSA", "RS256"]


def test_bad_arguments_fail_cleanly(fails, keyring):
    assert "HS256" in fails("keys", "add", "--alg", "HS256", "--json")
    fails("keys", "add", "--bits", "512", "--json")
    fails("keys", "frobnicate")


def test_corrupt_manifest(fails, ok, keyring, settings):
    manifest_path(settings).write_text('{"version": 1, "keys": [{"kid": "x"')
    for command in (
        ("keys", "list", "--json"),
        ("keys", "add", "--json"),
        ("keys", "rotate", "--json"),
        ("keys", "prune", "--json"),
    ):
        line = fails(*command)
        assert "manifest.json" in line, line


def test_manifest_naming_a_missing_key_file(fails, keyring, settings):
    (Path(settings.keys_dir) / f"{keyring.active('RS256').kid}.pem").unlink()
    assert "missing" in fails("keys", "list", "--json")


# --- a ring never started: the production first run ----------------------------------------


@pytest.fixture
def new_ring(settings, monkeypatch, tmp_path):
    """A key ring directory that does not exist yet (nothing but the database is set up)."""
    path = tmp_path / "fresh" / "keys"
    monkeypatch.setenv("AUTHSVC_KEYS_DIR", str(path))
    return path


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_an_absent_ring_lists_as_empty_and_is_not_created(ok, new_ring):
    assert ok("keys", "list") == ([], "")
    assert ok("keys", "prune")[0] == []
    assert not new_ring.exists() and not new_ring.parent.exists()


def test_an_empty_ring_directory_lists_as_empty(ok, new_ring):
    new_ring.mkdir(parents=True)
    assert ok("keys", "list") == ([], "")
    assert sorted(new_ring.iterdir()) == []


def test_rotate_starts_an_absent_ring_with_an_active_key_per_alg(ok, new_ring):
    rotated, err = ok("keys", "rotate")
    assert rotated["rotated"] is True and rotated["retired"] is None
    assert rotated["active"]["alg"] == "RS256"
    assert err == ""  # no verifier has cached the JWKS of a ring that never signed
    assert mode(new_ring) == 0o700 and mode(new_ring.parent) == 0o700
    assert mode(new_ring / "manifest.json") == 0o600
    assert mode(new_ring / f"{rotated['active']['kid']}.pem") == 0o600

    assert rotated["next"]["alg"] == "RS256"  # its successor, published at once
    es256, _ = ok("keys", "rotate", "--alg", "ES256")
    assert es256["active"]["alg"] == "ES256" and es256["retired"] is None
    keys, _ = ok("keys", "list")
    assert sorted((k["alg"], k["status"]) for k in keys) == [
        ("ES256", "active"),
        ("ES256", "next"),
        ("RS256", "active"),
        ("RS256", "next"),
    ]


def test_add_starts_an_empty_ring_and_rotate_activates_that_key(ok, new_ring):
    new_ring.mkdir(parents=True, mode=0o700)
    added, err = ok("keys", "add")
    assert added["status"] == "next"
    assert "keys rotate" in err  # nothing signs yet: say how to get there
    rotated, _ = ok("keys", "rotate")
    assert rotated["active"]["kid"] == added["kid"]


def test_key_files_without_a_manifest_are_a_broken_ring_not_an_empty_one(fails, ok, keyring, settings):
    manifest_path(settings).unlink()
    before = sorted(Path(settings.keys_dir).glob("*.pem"))
    for command in (("keys", "list", "--json"), ("keys", "rotate", "--json"), ("keys", "add", "--json")):
        assert "manifest.json: missing" in fails(*command)
    assert sorted(Path(settings.keys_dir).glob("*.pem")) == before and len(before) == 2


def test_serve_refuses_a_ring_that_cannot_sign(fails, ok, new_ring, monkeypatch):
    def no_exec(*args):
        raise AssertionError("serve started gunicorn on a ring that cannot sign")

    monkeypatch.setattr("os.execve", no_exec)
    for prepare in (lambda: None, lambda: new_ring.mkdir(parents=True), lambda: ok("keys", "add")):
        prepare()
        line = fails("serve", "--json")
        assert "no active signing key" in line and "keys rotate" in line


def test_gunicorn_refuses_to_start_on_a_ring_that_cannot_sign(new_ring, capsys):
    # `gunicorn -c python:authsvc.gunicorn_config` without the CLI: the same one-line refusal.
    from authsvc import gunicorn_config

    with pytest.raises(SystemExit) as exited:
        gunicorn_config.on_starting(server=None)
    assert exited.value.code == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "no active signing key" in err[0] and "keys rotate" in err[0]


def test_production_first_run(ok, cli, new_ring, settings):
    """db upgrade, keys rotate, clients create, then the app signs tokens: no demo seeding."""
    ok("db", "upgrade")
    assert ok("keys", "list")[0] == []
    ok("keys", "rotate")
    ok("keys", "rotate", "--alg", "ES256")
    created, _ = ok("clients", "create", "--name", "svc", "--grant-type", "client_credentials")
    app = create_app(settings.with_overrides(keys_dir=str(new_ring)))
    response = app.test_client().post(
        "/token",
        data={"grant_type": "client_credentials"},
        headers=basic_auth(created["client_id"], created["client_secret"]),
    )
    assert response.status_code == 200, response.json
    kid = jwt.get_unverified_header(response.json["access_token"])["kid"]
    assert kid in {k["kid"] for k in ok("keys", "list")[0] if k["status"] == "active"}


def test_rotation_is_seen_by_the_running_app_without_restart(ok, keyring, client, make_client):
    """The app's ring reloads on a manifest change: JWKS shows the next key, then tokens carry it."""
    rp, secret = make_client("svc", grant_types=("client_credentials",), redirect_uris=(), scope="api:read")

    def token_kid():
        response = client.post(
            "/token", data={"grant_type": "client_credentials"}, headers=basic_auth(rp.client_id, secret)
        )
        assert response.status_code == 200, response.json
        return jwt.get_unverified_header(response.json["access_token"])["kid"], response.json["access_token"]

    def wait_for(check, deadline=5.0):
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            value = check()
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError("the app did not pick up the ring change")

    old_kid, old_token = token_kid()
    added, _ = ok("keys", "add")
    wait_for(lambda: added["kid"] in {k["kid"] for k in client.get("/jwks.json").json["keys"]})
    assert token_kid()[0] == old_kid  # published, not signing

    ok("keys", "rotate", "--force")
    wait_for(lambda: token_kid()[0] == added["kid"])
    jwks = {k["kid"]: k for k in client.get("/jwks.json").json["keys"]}
    assert old_kid in jwks  # the retired key stays published
    jwt.decode(old_token, jwt.PyJWK(jwks[old_kid]).key, algorithms=["RS256"], options={"verify_aud": False})
