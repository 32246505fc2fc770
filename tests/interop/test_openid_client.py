"""panva's ``openid-client`` (npm), the OpenID Certified relying party, against a real authsvc.

A real ``python -m authsvc serve`` on loopback, started for this module with DPoP server
nonces required (RFC 9449 §8), and the example resource server. The client is
``tests/interop/rp.mjs``, run by Node with the exact openid-client version of
``tests/interop/package-lock.json``, installed once per session into a scratch folder
(``npm ci``). The script prints the authorization URL; Python plays the browser
(login and consent forms, the ``/device`` page) and hands the callback URL back. The
library checks what a certified RP checks (``iss`` in the authorization response,
state, PKCE, nonce, the ID token's claims and, with non-repudiation checks on, its
signature; the PAR, device and DPoP responses); Python checks the rest from outside.

Without ``node``/``npm``, or when the install fails, the tests skip with the reason,
except under CI=true, where they fail.
"""

import base64
import hashlib
import http.server
import json
import os
import queue
import secrets
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import parse_qsl
from urllib.parse import urlsplit

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec

from authsvc.verify import InvalidDPoPProof
from authsvc.verify import InvalidToken
from authsvc.verify import TokenVerifier
from tests import oidc
from tests.dpop_keys import DPoPKey
from tests.e2e.test_resource_server import ResourceServer

HERE = Path(__file__).resolve().parent
REDIRECT = "https://rp.example/callback"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
SCOPES = "openid profile email offline_access"
#: Any one step of the Node client (the device flow waits one 5 s polling interval or two).
STEP_TIMEOUT = 60.0


# -- the client: openid-client installed once per session ---------------------------------


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def openid_client(tmp_path_factory) -> Path:
    """A scratch folder holding rp.mjs and its node_modules (the pinned openid-client)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _unavailable(f"openid-client interop needs node and npm on PATH (node: {node}, npm: {npm})")
    folder = tmp_path_factory.mktemp("openid-client")
    for name in ("package.json", "package-lock.json", "rp.mjs"):
        shutil.copy(HERE / name, folder / name)
    # The lock file pins openid-client and its dependencies, with their hashes. No install
    # scripts: nothing from the registry runs at install time.
    try:
        installed = subprocess.run(
            [npm, "ci", "--prefix", str(folder), "--no-audit", "--no-fund", "--ignore-scripts"],
            capture_output=True,
            text=True,
            timeout=300,
        )
    except subprocess.TimeoutExpired:
        _unavailable("npm ci of openid-client took more than 300 s")
    if installed.returncode != 0:
        _unavailable(f"npm ci of openid-client failed: {(installed.stderr or installed.stdout)[-1500:]}")
    return folder


class NodeRP:
    """One run of rp.mjs: a job in, JSON lines out (see the script's header for the protocol)."""

    def __init__(self, folder: Path, job: dict, log_dir: Path):
        self.stderr_path = log_dir / f"rp-{secrets.token_hex(3)}.stderr"
        self._stderr = open(self.stderr_path, "wb")
        self.process = subprocess.Popen(
            [shutil.which("node"), str(folder / "rp.mjs")],
            cwd=folder,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            start_new_session=True,
        )
        self.http: list[dict] = []
        self.authorize_url: str | None = None
        self._events: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.send(job)

    def _read(self) -> None:
        for line in self.process.stdout:
            event = json.loads(line)
            if event["event"] == "http":
                self.http.append(event)
            elif event["event"] == "authorize":
                self.authorize_url = event["url"]
            self._events.put(event)
        self._events.put({"event": "exit"})

    def send(self, message: dict) -> None:
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()

    def wait_for(self, name: str, where=lambda event: True) -> dict:
        """The next event called ``name`` that satisfies ``where``; fails on the client's error or exit."""
        deadline = time.monotonic() + STEP_TIMEOUT
        while True:
            try:
                event = self._events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"openid-client sent no {name!r} within {STEP_TIMEOUT} s; requests: {self.http}")
            if event["event"] == name and where(event):
                return event
            if event["event"] == "error":
                pytest.fail(f"openid-client failed: {event}\nrequests: {self.http}")
            if event["event"] == "exit":
                pytest.fail(f"rp.mjs exited before {name!r}: {self.stderr_path.read_text()[-2000:]}")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self._stderr.close()

    def requests_to(self, path: str) -> list[dict]:
        return [entry for entry in self.http if urlsplit(entry["url"]).path == path]


@pytest.fixture
def run_rp(openid_client, tmp_path):
    started = []

    def run(job: dict) -> NodeRP:
        rp = NodeRP(openid_client, job, tmp_path)
        started.append(rp)
        return rp

    yield run
    for rp in started:
        rp.close()


# -- the issuer, the resource server, a recorder of requests ----------------------------------


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    deployment = oidc.start_deployment(
        tmp_path_factory.mktemp("interop-issuer"), count=1, AUTHSVC_DPOP_NONCE_REQUIRED="true"
    )
    yield deployment
    deployment.stop()


@pytest.fixture(scope="module")
def resource_server(deployment, tmp_path_factory):
    server = ResourceServer(deployment.issuer, tmp_path_factory.mktemp("interop-rs"), poll=1.0)
    yield server
    server.stop()


class Recorder(http.server.BaseHTTPRequestHandler):
    """Answers 200 to anything and keeps the request line and headers: how the test gets a
    DPoP proof exactly as openid-client makes it for a resource request."""

    def do_GET(self):  # noqa: N802 - http.server's naming
        self.server.seen.append(
            {"method": "GET", "path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}}
        )
        body = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def recorder():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield server
    server.shutdown()
    server.server_close()


# -- helpers --------------------------------------------------------------------------------


def play_browser(deployment, user: dict, url: str) -> str:
    """Follow the authorization URL through login and consent; return the callback URL."""
    with requests.Session() as browser:
        final = oidc.http_walk(
            browser, deployment.issuer, url, username=user["username"], password=user["password"], decision="allow"
        )
    assert final.status_code in (302, 303), final.text[:500]
    assert final.headers["Location"].startswith(REDIRECT + "?"), final.headers["Location"]
    return final.headers["Location"]


def sign_in(run_rp, deployment, user: dict, job: dict) -> tuple[NodeRP, dict]:
    rp = run_rp({"flow": "code", "issuer": deployment.issuer, "redirect_uri": REDIRECT, **job})
    url = rp.wait_for("authorize")["url"]
    rp.send({"callback": play_browser(deployment, user, url)})
    return rp, rp.wait_for("result")


def thumbprint(jwk: dict) -> str:
    """RFC 7638, computed here, independently of authsvc and of the library."""
    members = {name: jwk[name] for name in ("crv", "kty", "x", "y")}
    digest = hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def key_of(private_jwk: dict) -> DPoPKey:
    """The client's own DPoP key (exported by rp.mjs), to make more proofs with it from Python."""
    key = DPoPKey("ES256")
    key.private_key = jwt.algorithms.ECAlgorithm.from_jwk(json.dumps(private_jwk))
    key.public_jwk = {name: private_jwk[name] for name in ("kty", "crv", "x", "y")}
    return key


def check_id_token(deployment, id_token: str, *, client_id: str, access_token: str) -> dict:
    """What the library checked, again from outside: the JWKS signature, iss, aud and at_hash."""
    jwks = requests.get(deployment.issuer + "/jwks.json", timeout=10).json()
    header = jwt.get_unverified_header(id_token)
    jwk = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    claims = jwt.decode(
        id_token, jwt.PyJWK(jwk).key, algorithms=[jwk["alg"]], audience=client_id, issuer=deployment.issuer
    )
    assert claims["at_hash"] == oidc.half_hash(access_token, header["alg"])
    return claims


def statuses(entries: list[dict]) -> list:
    return [(entry["status"], entry.get("error")) for entry in entries]


# -- the flows --------------------------------------------------------------------------------


def test_code_flow_with_par_pkce_and_dpop_gives_a_bound_token_and_a_valid_id_token(run_rp, deployment):
    user = deployment.user("par")
    app = deployment.client("--public", "--redirect-uri", REDIRECT, "--scope", SCOPES, "--require-par", "--dpop-bound")

    rp, result = sign_in(
        run_rp, deployment, user, {"client_id": app["client_id"], "scope": "openid profile", "par": True, "dpop": True}
    )

    tokens = result["tokens"]
    assert tokens["token_type"].lower() == "dpop"
    # RFC 9449 §6.1: bound to the key openid-client generated, by its RFC 7638 thumbprint.
    access = oidc.unverified(tokens["access_token"])
    assert access["cnf"] == {"jkt": thumbprint(result["dpop_jwk"])}
    assert tokens["id_claims"]["sub"] == user["sub"] and tokens["id_claims"]["aud"] == app["client_id"]
    check_id_token(deployment, tokens["id_token"], client_id=app["client_id"], access_token=tokens["access_token"])
    # The library called /userinfo with the DPoP scheme and a proof (a bound token as Bearer is refused there).
    assert result["userinfo"]["sub"] == user["sub"]
    assert [call["dpop"] for call in rp.requests_to("/userinfo")] == [True]

    # RFC 9126: the request was pushed (201), and the browser carried only its reference
    # (the client is --require-par: a plain request would have been refused).
    assert statuses(rp.requests_to("/par")) == [(201, None)]
    assert {name for name, _ in parse_qsl(urlsplit(rp.authorize_url).query)} == {"client_id", "request_uri"}
    # RFC 9449 §8: the first token request lacked the server's nonce; the library took the
    # one authsvc sent in DPoP-Nonce and retried once.
    token_calls = rp.requests_to("/token")
    assert statuses(token_calls) == [(400, "use_dpop_nonce"), (200, None)]
    assert all(call["dpop"] and call["dpop_nonce"] for call in token_calls)


def test_a_code_pushed_with_a_dpop_proof_is_exchanged_only_with_the_same_key(run_rp, deployment):
    """RFC 9449 §10.1: a DPoP proof at /par binds the code to its key, as ``dpop_jkt`` would;
    a token request with a proof by another key is refused (the code was intercepted)."""
    user = deployment.user("parkey")
    app = deployment.client("--public", "--redirect-uri", REDIRECT, "--scope", SCOPES, "--require-par")

    rp, result = sign_in(
        run_rp,
        deployment,
        user,
        {"client_id": app["client_id"], "scope": "openid", "par": True, "dpop": True, "exchange_with_other_key": True},
    )

    assert rp.requests_to("/par")[0]["dpop"]
    exchanged = result["exchange_with_other_key"]
    assert exchanged["ok"] is False and exchanged["error"] in ("invalid_grant", "invalid_dpop_proof"), exchanged


def test_code_flow_pushed_with_private_key_jwt_authenticates_at_token_introspection_and_revocation(
    run_rp, deployment, tmp_path
):
    private_key = ec.generate_private_key(ec.SECP256R1())
    kid = secrets.token_hex(4)
    algorithm = jwt.get_algorithm_by_name("ES256")
    public_jwk = {**json.loads(algorithm.to_jwk(private_key.public_key())), "kid": kid, "use": "sig", "alg": "ES256"}
    private_jwk = {**json.loads(algorithm.to_jwk(private_key)), "kid": kid}
    jwks_file = tmp_path / "client-jwks.json"
    jwks_file.write_text(json.dumps({"keys": [public_jwk]}))
    user = deployment.user("pkjwt")
    app = deployment.client(
        "--auth-method", "private_key_jwt", "--jwks-file", str(jwks_file), "--redirect-uri", REDIRECT, "--scope", SCOPES
    )
    assert "client_secret" not in app or not app["client_secret"]

    rp, result = sign_in(
        run_rp,
        deployment,
        user,
        {
            "client_id": app["client_id"],
            "private_jwk": private_jwk,
            "scope": "openid offline_access",
            "par": True,
            "introspect_and_revoke": True,
        },
    )

    tokens = result["tokens"]
    assert tokens["token_type"].lower() == "bearer"
    assert tokens["refresh_token"]
    check_id_token(deployment, tokens["id_token"], client_id=app["client_id"], access_token=tokens["access_token"])
    introspected = result["introspection"]["access_token"]
    assert introspected["active"] is True
    assert introspected["sub"] == user["sub"] and introspected["client_id"] == app["client_id"]
    assert result["introspection"]["revoked_refresh_token"] == {"active": False}
    refused = result["refresh_after_revocation"]
    assert refused["ok"] is False and refused["error"] == "invalid_grant", refused
    # Every client-authenticated call carried an assertion and nothing else; each succeeded.
    for path, ok in (("/par", 201), ("/token", 200), ("/introspect", 200), ("/revoke", 200)):
        calls = rp.requests_to(path)
        assert calls and all(call["assertion"] and not call["basic"] for call in calls), (path, calls)
        assert calls[0]["status"] == ok, (path, calls)


def test_device_flow_is_approved_at_the_device_page_while_the_client_polls(run_rp, deployment):
    user = deployment.user("tv")
    app = deployment.client(
        "--public",
        "--grant-type",
        DEVICE_GRANT,
        "--grant-type",
        "refresh_token",
        "--scope",
        SCOPES,
        name="Living room TV",
    )
    rp = run_rp(
        {"flow": "device", "issuer": deployment.issuer, "client_id": app["client_id"], "scope": "openid profile"}
    )
    started = rp.wait_for("device")
    assert started["verification_uri"] == deployment.issuer + "/device"
    # Approve only once the client has been told to keep waiting: the library must handle that.
    rp.wait_for("http", lambda e: urlsplit(e["url"]).path == "/token" and e.get("error") == "authorization_pending")

    with requests.Session() as browser:
        # The QR-code link: the code is already filled in after the login.
        page = browser.get(started["verification_uri_complete"], allow_redirects=False, timeout=10)
        assert page.status_code == 303 and urlsplit(page.headers["Location"]).path == "/login"
        return_to = dict(parse_qsl(urlsplit(page.headers["Location"]).query))["return_to"]
        login = oidc.http_login(browser, deployment.issuer, user["username"], user["password"], return_to)
        assert login.status_code == 303, login.text[:300]
        form = browser.get(deployment.issuer + login.headers["Location"], timeout=10)
        assert started["user_code"] in form.text
        consent = browser.post(
            deployment.issuer + "/device",
            data={"csrf_token": oidc.csrf_of(form.text), "user_code": started["user_code"]},
            timeout=10,
        )
        assert consent.status_code == 200 and "Living room TV" in consent.text, consent.text[:500]
        done = browser.post(
            deployment.issuer + "/device",
            data={"csrf_token": oidc.csrf_of(consent.text), "user_code": started["user_code"], "decision": "allow"},
            timeout=10,
        )
        assert done.status_code == 200 and "Device connected" in done.text, done.text[:500]

    result = rp.wait_for("result")
    tokens = result["tokens"]
    assert tokens["token_type"].lower() == "bearer"
    assert tokens["id_claims"]["sub"] == user["sub"] and tokens["id_claims"]["aud"] == app["client_id"]
    assert result["userinfo"]["sub"] == user["sub"]
    polls = statuses(rp.requests_to("/token"))
    # RFC 8628 §3.5: pending while the user decides, then the tokens; the library kept to the interval.
    assert polls[-1] == (200, None) and set(polls[:-1]) == {(400, "authorization_pending")}, polls


def test_a_dpop_bound_refresh_token_refreshes_only_with_the_clients_key(run_rp, deployment):
    user = deployment.user("refresh")
    app = deployment.client("--public", "--redirect-uri", REDIRECT, "--scope", SCOPES)

    _, result = sign_in(
        run_rp,
        deployment,
        user,
        {"client_id": app["client_id"], "scope": "openid offline_access", "dpop": True, "refresh": True},
    )

    jkt = thumbprint(result["dpop_jwk"])
    assert oidc.unverified(result["tokens"]["access_token"])["cnf"] == {"jkt": jkt}
    refreshed = result["refreshed"]
    assert refreshed["token_type"].lower() == "dpop"
    assert refreshed["refresh_token"] != result["tokens"]["refresh_token"]
    assert oidc.unverified(refreshed["access_token"])["cnf"] == {"jkt": jkt}
    check_id_token(
        deployment, refreshed["id_token"], client_id=app["client_id"], access_token=refreshed["access_token"]
    )
    assert result["refreshed_userinfo"]["sub"] == user["sub"]
    # RFC 9449 §5: a public client's refresh token is bound to its key. Another key, or no
    # proof at all, is refused, and does not spend the token: its holder refreshes after.
    for attempt in ("refresh_with_other_key", "refresh_without_dpop"):
        assert result[attempt]["ok"] is False and result[attempt]["error"] == "invalid_grant", result[attempt]
    assert result["refresh_again"] == {"ok": True, "token_type": "dpop"}


# -- the DPoP tokens openid-client makes, at authsvc.verify and the example resource server ---


@pytest.fixture(scope="module")
def dpop_session(openid_client, deployment, resource_server, recorder, tmp_path_factory):
    """openid-client signs in with DPoP for the resource server's audience and calls the
    resource server and the recorder (which keeps the proof the library made for it)."""
    user = deployment.user("rs")
    app = deployment.client(
        "--public", "--redirect-uri", REDIRECT, "--scope", SCOPES, "--audience", resource_server.audience
    )
    recorded_url = recorder.url + "/orders?page=1"
    rp = NodeRP(
        openid_client,
        {
            "flow": "code",
            "issuer": deployment.issuer,
            "redirect_uri": REDIRECT,
            "client_id": app["client_id"],
            "scope": "openid profile",
            "dpop": True,
            "resources": [resource_server.url + "/hello", resource_server.url + "/hello/profile", recorded_url],
        },
        tmp_path_factory.mktemp("interop-rp"),
    )
    try:
        rp.send({"callback": play_browser(deployment, user, rp.wait_for("authorize")["url"])})
        result = rp.wait_for("result")
    finally:
        rp.close()
    (seen,) = [request for request in recorder.seen if request["path"] == "/orders?page=1"]
    return {
        "user": user,
        "app": app,
        "result": result,
        "token": result["tokens"]["access_token"],
        "key": key_of(result["dpop_jwk"]),
        "recorded": {
            "url": recorded_url,
            "authorization": seen["headers"]["authorization"],
            "proof": seen["headers"]["dpop"],
        },
    }


@pytest.fixture
def verifier(deployment, resource_server):
    with TokenVerifier(deployment.issuer, resource_server.audience, revocation_poll_interval=1.0) as verifier:
        yield verifier


def test_the_resource_server_serves_the_dpop_requests_openid_client_makes(dpop_session):
    served = {answer["url"].rsplit("/", 1)[-1]: answer for answer in dpop_session["result"]["resources"]}
    for name in ("hello", "profile"):
        assert served[name]["status"] == 200, served[name]
        body = json.loads(served[name]["body"])
        assert body["sub"] == dpop_session["user"]["sub"]
    assert dpop_session["recorded"]["authorization"] == "DPoP " + dpop_session["token"]


def test_verify_accepts_the_proof_openid_client_made_once_and_refuses_its_replay(dpop_session, verifier):
    recorded = dpop_session["recorded"]
    claims = verifier.verify(dpop_session["token"], dpop_proof=recorded["proof"], method="GET", url=recorded["url"])
    assert claims["sub"] == dpop_session["user"]["sub"]
    assert claims["cnf"] == {"jkt": dpop_session["key"].jkt}
    with pytest.raises(InvalidDPoPProof):
        verifier.verify(dpop_session["token"], dpop_proof=recorded["proof"], method="GET", url=recorded["url"])


def refused_proofs(session, url: str) -> dict:
    """Proofs that must be refused for ``GET url`` with the session's token, each wrong in one way."""
    key, token = session["key"], session["token"]
    return {
        "made for another URL": key.proof("GET", url.replace("/hello", "/admin"), access_token=token),
        "made for another method": key.proof("POST", url, access_token=token),
        "signed by another key": DPoPKey("ES256").proof("GET", url, access_token=token),
        "made by openid-client for another server": session["recorded"]["proof"],
    }


def test_verify_refuses_proofs_replayed_for_another_url_or_method_or_by_another_key(dpop_session, verifier):
    url, token, key = "https://api.example/hello", dpop_session["token"], dpop_session["key"]
    for case, proof in refused_proofs(dpop_session, url).items():
        with pytest.raises(InvalidToken) as refused:
            verifier.verify(token, dpop_proof=proof, method="GET", url=url)
        assert refused.value.error == "invalid_dpop_proof", case
    # The same token with a proof by the client's key, made for this request, once.
    good = key.proof("GET", url, access_token=token)
    assert verifier.verify(token, dpop_proof=good, method="GET", url=url)["sub"] == dpop_session["user"]["sub"]
    with pytest.raises(InvalidDPoPProof):
        verifier.verify(token, dpop_proof=good, method="GET", url=url)


def test_the_resource_server_refuses_proofs_replayed_for_another_url_or_method_or_by_another_key(
    dpop_session, resource_server
):
    url, token, key = resource_server.url + "/hello", dpop_session["token"], dpop_session["key"]

    def call(proof, scheme="DPoP"):
        headers = {"Authorization": f"{scheme} {token}"}
        if proof is not None:
            headers["DPoP"] = proof
        return requests.get(url, headers=headers, timeout=10)

    for case, proof in refused_proofs(dpop_session, url).items():
        response = call(proof)
        assert response.status_code == 401, (case, response.text)
        assert response.headers["WWW-Authenticate"].startswith('DPoP error="invalid_dpop_proof"'), case
    # RFC 9449 §7.2: the bound token without its proof, as a Bearer token, is refused too.
    downgraded = call(None, scheme="Bearer")
    assert downgraded.status_code == 401, downgraded.text

    good = key.proof("GET", url, access_token=token)
    served = call(good)
    assert served.status_code == 200, served.text
    assert served.json()["sub"] == dpop_session["user"]["sub"]
    replayed = call(good)
    assert replayed.status_code == 401, replayed.text
    assert replayed.headers["WWW-Authenticate"].startswith('DPoP error="invalid_dpop_proof"')
