"""Tests of authsvc.keyring: lifecycle, on-disk format, reloads and races between instances."""

import base64
import json
import multiprocessing
import os
import stat
import threading

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from authsvc.errors import KeyRingError
from authsvc.keyring import JWKS_MAX_AGE
from authsvc.keyring import KeyRing
from authsvc.keyring import RotateResult
from authsvc.keyring import Status
from authsvc.keyring import algorithms
from authsvc.keyring import files
from tests.conftest import Clock

T0 = 1_700_000_000
ALGS = ("RS256", "ES256", "EdDSA")
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k", "oth"}

# https://www.rfc-editor.org/rfc/rfc7638#section-3.1
RFC7638_N = (
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECP"
    "ebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY"
    "368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0f"
    "M4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
)
RFC7638_KID = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


@pytest.fixture
def clock():
    return Clock(T0)


@pytest.fixture
def path(tmp_path):
    return tmp_path / "keys"


@pytest.fixture
def ring(path, clock):
    return KeyRing.init(path, clock=clock, check_interval=0)


def mode(file):
    return stat.S_IMODE(os.stat(file).st_mode)


def read_manifest(path):
    return json.loads((path / "manifest.json").read_text())


def write_manifest(path, document):
    (path / "manifest.json").write_text(json.dumps(document))


def b64int(text):
    return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")


# --- creation and format ---------------------------------------------------------------


def test_init_creates_an_active_rs256_key_and_its_published_successor(ring, path, clock):
    key, successor = ring.keys()
    assert key.alg == successor.alg == "RS256"
    assert key.status is Status.ACTIVE and successor.status is Status.NEXT
    assert key.created_at == key.activated_at == successor.created_at == T0
    assert ring.active("RS256") == key
    assert (path / f"{key.kid}.pem").is_file() and (path / f"{successor.kid}.pem").is_file()
    manifest = read_manifest(path)
    assert manifest["version"] == 1
    # Each key's public JWK is in the manifest: JWKS and verification need no private key.
    assert manifest["keys"] == [
        {
            "kid": k.kid,
            "alg": "RS256",
            "status": k.status.value,
            "created_at": T0,
            "activated_at": k.activated_at,
            "retired_at": None,
            "jwk": k.public_jwk(),
        }
        for k in (key, successor)
    ]


def test_init_is_idempotent(ring, path, clock):
    before = (path / "manifest.json").read_bytes()
    clock.advance(100)
    again = KeyRing.init(path, clock=clock)
    assert [key.kid for key in again.keys()] == [key.kid for key in ring.keys()]
    assert (path / "manifest.json").read_bytes() == before


def test_init_adds_an_active_key_for_another_alg(ring, path, clock):
    KeyRing.init(path, alg="EdDSA", clock=clock)
    reopened = KeyRing(path, clock=clock)
    assert {key.alg for key in reopened.keys()} == {"RS256", "EdDSA"}
    assert reopened.active("EdDSA").status is Status.ACTIVE


def test_file_modes(ring, path):
    ring.add("ES256")
    assert mode(path) == 0o700
    assert mode(path / "manifest.json") == 0o600
    for key in ring.keys():
        assert mode(path / f"{key.kid}.pem") == 0o600
    ring.session_secret()
    assert mode(path / "session.key") == 0o600


def test_key_files_are_unencrypted_pkcs8(ring, path):
    pem = (path / f"{ring.active('RS256').kid}.pem").read_bytes()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")


def test_kid_is_rfc7638_thumbprint_of_the_rfc_example():
    assert algorithms.thumbprint({"kty": "RSA", "n": RFC7638_N, "e": "AQAB"}) == RFC7638_KID
    public_key = rsa.RSAPublicNumbers(65537, b64int(RFC7638_N)).public_key()
    members = algorithms.public_members(public_key)
    assert members == {"kty": "RSA", "n": RFC7638_N, "e": "AQAB"}
    assert algorithms.thumbprint(members) == RFC7638_KID


@pytest.mark.parametrize("alg", ALGS)
def test_kid_is_thumbprint_of_public_jwk(ring, alg):
    key = ring.add(alg)
    assert algorithms.KID_PATTERN.fullmatch(key.kid)
    assert algorithms.thumbprint(key.public_jwk()) == key.kid


@pytest.mark.parametrize("alg", ALGS)
def test_each_alg_signs_a_token_that_verifies_with_its_published_jwk(path, clock, alg):
    ring = KeyRing.init(path, alg=alg, clock=clock)
    key = ring.active(alg)
    token = jwt.encode({"sub": "alice"}, key.private_key, algorithm=alg, headers={"kid": key.kid})
    assert jwt.get_unverified_header(token)["kid"] == key.kid
    [published] = [jwk for jwk in ring.jwks()["keys"] if jwk["kid"] == key.kid]
    verifying_key = jwt.PyJWK(published)
    assert verifying_key.algorithm_name == alg
    assert jwt.decode(token, verifying_key, algorithms=[alg]) == {"sub": "alice"}


def test_jwks_has_public_members_only(ring):
    ring.add("ES256")
    ring.add("EdDSA")
    expected = {
        "RSA": {"kty", "kid", "alg", "use", "n", "e"},
        "EC": {"kty", "kid", "alg", "use", "crv", "x", "y"},
        "OKP": {"kty", "kid", "alg", "use", "crv", "x"},
    }
    jwks = ring.jwks()
    assert len(jwks["keys"]) == 4
    for jwk in jwks["keys"]:
        assert set(jwk) == expected[jwk["kty"]]
        assert not PRIVATE_MEMBERS & set(jwk)
        assert jwk["use"] == "sig"
    assert not PRIVATE_MEMBERS & set(json.loads(ring.jwks_json())["keys"][0])


def test_private_key_never_in_repr_or_describe(ring):
    key = ring.active("RS256")
    assert "private_key" not in repr(key)
    assert "PRIVATE" not in repr(key)
    assert set(key.describe()) == {
        "kid",
        "alg",
        "status",
        "created_at",
        "activated_at",
        "retired_at",
    }


def test_describe_uses_iso8601_utc(ring):
    described = ring.active("RS256").describe()
    assert described["status"] == "active"
    assert described["created_at"] == "2023-11-14T22:13:20Z"
    assert described["activated_at"] == "2023-11-14T22:13:20Z"
    assert described["retired_at"] is None
    json.dumps(described)


def test_jwks_etag_and_version_change_with_the_ring(ring):
    etag, version = ring.jwks_etag(), ring.version
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")
    assert ring.jwks_etag() == etag
    assert json.loads(ring.jwks_json()) == ring.jwks()
    ring.add("ES256")
    assert ring.jwks_etag() != etag
    assert ring.version != version
    version = ring.version
    ring.rotate("ES256")
    assert ring.version != version
    assert ring.jwks_max_age == JWKS_MAX_AGE == 300


def test_jwks_returns_a_copy(ring):
    ring.jwks()["keys"][0]["d"] = "stolen"
    assert "d" not in ring.jwks()["keys"][0]


# --- lifecycle ---------------------------------------------------------------------------


def test_add_rotate_prune_lifecycle(path, clock):
    ring = KeyRing.init(path, clock=clock, retire_after=660)
    first = ring.active("RS256")
    clock.advance(10)
    second = ring.add()
    assert second.status is Status.NEXT
    assert ring.active("RS256").kid == first.kid
    # add replaced the successor init published: one next key per algorithm.
    assert {key.kid for key in ring.published()} == {first.kid, second.kid}

    clock.advance(300)
    result = ring.rotate()
    assert result.activated.kid == second.kid
    assert result.activated.activated_at == T0 + 310
    assert result.retired.kid == first.kid
    assert result.retired.retired_at == T0 + 310
    assert result.published_for == 300
    assert result.next.status is Status.NEXT and result.next.created_at == T0 + 310
    assert ring.active("RS256").kid == second.kid
    assert [key.status for key in ring.keys()] == [Status.RETIRED, Status.ACTIVE, Status.NEXT]
    third = result.next

    clock.advance(659)
    assert ring.prune() == []
    assert first.kid in {jwk["kid"] for jwk in ring.jwks()["keys"]}
    assert (path / f"{first.kid}.pem").exists()

    clock.advance(1)
    [pruned] = ring.prune()
    assert pruned.kid == first.kid
    assert not (path / f"{first.kid}.pem").exists()
    assert [jwk["kid"] for jwk in ring.jwks()["keys"]] == [second.kid, third.kid]
    assert [entry["kid"] for entry in read_manifest(path)["keys"]] == [second.kid, third.kid]


def test_prune_never_drops_active_or_next(ring, clock):
    ring.add()
    ring.rotate()
    waiting = ring.add()
    clock.advance(10**9)
    [pruned] = ring.prune()
    assert pruned.status is Status.RETIRED
    assert {key.status for key in ring.keys()} == {Status.ACTIVE, Status.NEXT}
    assert waiting.kid in {key.kid for key in ring.keys()}
    assert ring.prune() == []


def test_rotate_without_next_key_creates_one(ring, path):
    old = ring.active("RS256")
    document = read_manifest(path)
    document["keys"] = [entry for entry in document["keys"] if entry["status"] != "next"]
    write_manifest(path, document)
    result = ring.rotate()
    assert result.published_for == 0
    assert result.retired.kid == old.kid
    assert result.activated.kid != old.kid
    assert (path / f"{result.activated.kid}.pem").exists()


def test_add_replaces_the_waiting_next_key(ring, path, clock):
    first = ring.add("ES256")
    clock.advance(1)
    second, replaced = ring.add_next("ES256")
    assert replaced == [first]
    assert [key.kid for key in ring.keys() if key.alg == "ES256"] == [second.kid]
    assert not (path / f"{first.kid}.pem").exists()
    assert ring.rotate("ES256").activated.kid == second.kid


def test_rotate_if_older_than_does_nothing_for_a_young_key(ring, path, clock):
    before = (path / "manifest.json").read_bytes()
    clock.advance(100)
    assert ring.rotate(if_older_than=86400) == RotateResult(None, None, None)
    assert (path / "manifest.json").read_bytes() == before
    clock.advance(86300)
    result = ring.rotate(if_older_than=86400)
    assert result.activated is not None
    assert result.retired is not None


def test_active_of_missing_alg_names_the_ring(ring):
    with pytest.raises(KeyRingError, match=r"no active ES256 key in .*keys"):
        ring.active("ES256")


def test_unknown_alg_lists_valid_ones(ring):
    with pytest.raises(KeyRingError, match="RS256, ES256, EdDSA"):
        ring.add("HS256")
    with pytest.raises(KeyRingError, match="RS256, ES256, EdDSA"):
        ring.rotate("none")


def test_rsa_keys_need_2048_bits(ring):
    with pytest.raises(KeyRingError, match="2048"):
        ring.add("RS256", bits=1024)
    assert ring.add("RS256", bits=3072).private_key.key_size == 3072


def test_session_secret_is_stable_across_instances(ring, path):
    secret = ring.session_secret()
    assert isinstance(secret, bytes) and len(secret) == 32
    assert KeyRing(path).session_secret() == secret
    assert (path / "session.key").read_bytes() == secret


def test_session_secret_of_wrong_size_is_refused(ring, path):
    (path / "session.key").write_bytes(b"short")
    with pytest.raises(KeyRingError, match="session.key"):
        ring.session_secret()


# --- opening a broken ring ----------------------------------------------------------------


def test_key_files_without_a_manifest_are_refused(ring, path):
    os.unlink(path / "manifest.json")
    for allow_empty in (False, True):
        with pytest.raises(KeyRingError, match="manifest.json: missing, but"):
            KeyRing(path, allow_empty=allow_empty)
    with pytest.raises(KeyRingError, match="manifest.json: missing, but"):
        KeyRing.init(path)


# --- a ring never started ---------------------------------------------------------------------


@pytest.fixture(params=["absent", "empty directory", "empty manifest"])
def unstarted(request, path):
    """A ring with no keys, in each shape an operator can meet it."""
    if request.param != "absent":
        path.mkdir(mode=0o700)
    if request.param == "empty manifest":
        write_manifest(path, {"version": 1, "keys": []})
    return path


def test_a_ring_with_no_keys_opens_empty_for_the_keys_commands(unstarted):
    before = sorted(unstarted.iterdir()) if unstarted.exists() else None
    ring = KeyRing(unstarted, allow_empty=True)
    assert ring.keys() == [] and ring.published() == [] and ring.jwks() == {"keys": []}
    # Reading writes nothing, so a read-only mount can be listed.
    assert (sorted(unstarted.iterdir()) if unstarted.exists() else None) == before
    assert ring.prune() == []
    assert unstarted.exists() == (before is not None)


def test_a_ring_with_no_active_key_cannot_serve(unstarted, clock):
    with pytest.raises(KeyRingError, match="no active signing key.*keys rotate"):
        KeyRing(unstarted)
    KeyRing(unstarted, allow_empty=True, clock=clock).add("ES256")
    with pytest.raises(KeyRingError, match="no active signing key"):
        KeyRing(unstarted)


def test_rotate_starts_a_ring_with_no_keys(unstarted, clock):
    ring = KeyRing(unstarted, allow_empty=True, clock=clock)
    result = ring.rotate("ES256")
    assert result.retired is None and result.activated.status is Status.ACTIVE
    assert KeyRing(unstarted, clock=clock).active("ES256") == result.activated
    assert mode(unstarted) == 0o700
    assert mode(unstarted / "manifest.json") == 0o600


def test_add_starts_a_ring_with_no_keys(unstarted, clock):
    ring = KeyRing(unstarted, allow_empty=True, clock=clock)
    added = ring.add("EdDSA")
    assert [key.kid for key in ring.published()] == [added.kid]
    assert ring.rotate("EdDSA").activated.kid == added.kid


def test_a_new_ring_directory_and_its_new_parents_are_0700_whatever_the_umask(tmp_path, clock):
    path = tmp_path / "a" / "b" / "keys"
    old = os.umask(0)
    try:
        KeyRing(path, allow_empty=True, clock=clock).rotate("ES256")
    finally:
        os.umask(old)
    assert [mode(p) for p in (tmp_path / "a", tmp_path / "a" / "b", path)] == [0o700] * 3


def test_an_existing_ring_directory_is_never_widened(path, clock):
    path.mkdir(mode=0o700)
    os.chmod(path, 0o300)
    KeyRing(path, allow_empty=True, clock=clock).rotate("ES256")
    assert mode(path) == 0o300


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "[]",
        '{"version": 2, "keys": []}',
        '{"version": 1, "keys": {}}',
        '{"version": 1, "keys": [{"kid": "x"}]}',
    ],
)
def test_malformed_manifest_names_the_file(ring, path, content):
    (path / "manifest.json").write_text(content)
    with pytest.raises(KeyRingError, match="manifest.json") as caught:
        KeyRing(path)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("kid", ["../../etc/passwd", "/etc/passwd", "A" * 43 + "\n", "A" * 42])
def test_kid_that_is_not_a_thumbprint_is_refused_before_any_file_access(ring, path, kid, monkeypatch):
    monkeypatch.setattr(files, "read_key", lambda *args: pytest.fail("read a key file"))
    document = read_manifest(path)
    document["keys"][0]["kid"] = kid
    write_manifest(path, document)
    with pytest.raises(KeyRingError, match="thumbprint"):
        KeyRing(path)


def test_kid_must_match_the_file_thumbprint(ring, path):
    document = read_manifest(path)
    real = document["keys"][0]["kid"]
    fake = "A" * 43
    os.rename(path / f"{real}.pem", path / f"{fake}.pem")
    document["keys"][0]["kid"] = fake
    write_manifest(path, document)
    with pytest.raises(KeyRingError, match=fake):
        KeyRing(path)


def test_missing_key_file_names_it(ring, path):
    kid = ring.active("RS256").kid
    os.unlink(path / f"{kid}.pem")
    with pytest.raises(KeyRingError, match=f"{kid}.pem"):
        KeyRing(path)


def test_unparsable_key_file_names_it_without_its_content(ring, path):
    kid = ring.active("RS256").kid
    secret = b"-----BEGIN PRIVATE KEY-----\nTOPSECRETMATERIAL\n-----END PRIVATE KEY-----\n"
    (path / f"{kid}.pem").write_bytes(secret)
    with pytest.raises(KeyRingError, match=f"{kid}.pem") as caught:
        KeyRing(path)
    assert "TOPSECRET" not in str(caught.value)


def test_key_of_another_alg_is_refused(ring, path):
    document = read_manifest(path)
    document["keys"][0]["alg"] = "ES256"
    write_manifest(path, document)
    with pytest.raises(KeyRingError, match="does not match"):
        KeyRing(path)


def test_two_active_keys_of_one_alg_are_refused(ring, path):
    ring.add()
    document = read_manifest(path)
    document["keys"][1].update(status="active", activated_at=T0)
    write_manifest(path, document)
    with pytest.raises(KeyRingError, match="more than one active RS256"):
        KeyRing(path)


# --- reloading ------------------------------------------------------------------------------


def counting_loader(monkeypatch):
    calls = []
    real = algorithms.load_private_key

    def load(data, where):
        calls.append(where)
        return real(data, where)

    monkeypatch.setattr(algorithms, "load_private_key", load)
    return calls


def test_reload_picks_up_another_instance_loading_only_new_active_keys(ring, path, monkeypatch):
    assert ring.reload_if_changed() is False
    other = KeyRing(path, allow_empty=True)  # as the CLI opens it
    added = other.add("ES256")
    calls = counting_loader(monkeypatch)
    assert ring.reload_if_changed() is True
    # A next key is published from the manifest's JWK: its private key is not read.
    assert calls == []
    assert added.kid in {key.kid for key in ring.published()}
    other.rotate("ES256")
    assert ring.reload_if_changed() is True
    assert ring.active("ES256").kid == added.kid
    assert [where.name for where in calls] == [f"{added.kid}.pem"]
    assert ring.reload_if_changed() is False


def test_reload_waits_for_the_check_interval(path, clock):
    ring = KeyRing.init(path, clock=clock, check_interval=3600)
    KeyRing(path).add("EdDSA")
    assert ring.reload_if_changed() is False
    assert len(ring.keys()) == 2


def test_broken_manifest_keeps_the_last_good_ring(ring, path):
    good = ring.active("RS256")
    jwks = ring.jwks()
    original = (path / "manifest.json").read_bytes()
    (path / "manifest.json").write_text("{oops")
    assert ring.reload_if_changed() is False
    assert "manifest.json" in ring.last_error
    assert ring.active("RS256") == good
    assert ring.jwks() == jwks
    with pytest.raises(KeyRingError, match="manifest.json"):
        KeyRing(path)
    (path / "manifest.json").write_bytes(original)
    assert ring.reload_if_changed() is True
    assert ring.last_error is None


def test_deleted_manifest_keeps_the_last_good_ring(ring, path):
    os.unlink(path / "manifest.json")
    assert ring.reload_if_changed() is False
    assert "manifest.json" in ring.last_error
    assert ring.active("RS256").status is Status.ACTIVE


# --- races between instances ------------------------------------------------------------------


def test_threads_rotating_with_separate_rings_leave_one_active_key(path, clock):
    KeyRing.init(path, alg="ES256", clock=clock)
    errors = []

    def work():
        try:
            mine = KeyRing(path, clock=clock)
            for _ in range(5):
                mine.rotate("ES256")
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    keys = KeyRing(path, clock=clock).keys()
    assert [key.status for key in keys].count(Status.ACTIVE) == 1
    # init's active key and successor, plus one fresh successor per rotation.
    assert len(keys) == 2 + 4 * 5


LATER = T0 + 90 * 86400


def _cron_rotate(path, barrier, results):
    ring = KeyRing(path, clock=lambda: LATER)
    barrier.wait()
    result = ring.rotate("ES256", if_older_than=30 * 86400)
    results.put(result.activated is not None)


def test_cron_rotate_from_several_processes_rotates_once(path, clock):
    KeyRing.init(path, alg="ES256", clock=clock)
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(4)
    results = context.Queue()
    processes = [context.Process(target=_cron_rotate, args=(path, barrier, results)) for _ in range(4)]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    assert sorted(outcomes) == [False, False, False, True]
    keys = KeyRing(path, clock=clock).keys()
    assert [key.status for key in keys] == [Status.RETIRED, Status.ACTIVE, Status.NEXT]
    assert keys[1].activated_at == LATER
