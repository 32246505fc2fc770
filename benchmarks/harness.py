"""What benchmarks/run.py measures with: loopback servers, wrk, process CPU time, seeded data.

- ``BenchData``: one SQLite store and key ring in a temporary folder, with an active key
  of each algorithm asked for and one client-credentials client, shared by every server
  the run starts (each with its own port and issuer URL).
- ``AuthsvcServer``: ``python -m authsvc serve`` with its defaults (workers = cores).
- ``PeerServer``: node-oidc-provider under ``node:cluster`` (``peer_server.mjs``),
  installed from npm into ``benchmarks/.peer`` by ``install_peer``.
- ``wrk``: one bounded load run through ``request.lua``; ``tree_cpu_seconds``: user +
  system CPU of a server's whole process tree, read from /proc.
- ``set_revocation_count``: exactly N live entries in the revocation list.
"""

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from tests.servers import LoopbackProcess  # noqa: E402
from tests.servers import cli_json  # noqa: E402
from tests.servers import free_port  # noqa: E402
from tests.servers import run_cli  # noqa: E402
from tests.servers import server_env  # noqa: E402

ALGS = ("ES256", "EdDSA", "RS256")
AUDIENCE = "https://api.bench"
SCOPE = "api:read"
TOKEN_BODY = f"grant_type=client_credentials&scope={SCOPE}"
CORES = os.cpu_count() or 1

PEER_PACKAGE = "oidc-provider"
PEER_VERSION = "9.13.3"
PEER_DIR = HERE / ".peer"
LUA_SCRIPT = HERE / "request.lua"


def basic_auth(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


class BenchData:
    """A fresh store and key ring, an active key per algorithm, one client, and the servers started on them.

    The client is what both token endpoints serve: client credentials, ``client_secret_basic``,
    scope ``api:read`` and the audience ``https://api.bench``. Set up through the CLI, as an
    operator would: ``db upgrade``, ``keys rotate --alg X`` on the empty ring (which creates
    and activates a key of X), ``clients create``.
    """

    def __init__(self, algs):
        self._tmp = tempfile.TemporaryDirectory(prefix="authsvc-bench-")
        self.path = Path(self._tmp.name)
        self.env = server_env(self.path, issuer="http://127.0.0.1:8000")
        self._servers = {}
        # The store and the key ring are apart: set them up side by side.
        keys = threading.Thread(target=self._activate_all, args=(algs,))
        keys.start()
        try:
            cli_json(self.env, "db", "upgrade")
            client = cli_json(
                self.env,
                "clients",
                "create",
                "--name",
                "bench",
                "--grant-type",
                "client_credentials",
                "--scope",
                SCOPE,
                "--audience",
                AUDIENCE,
            )
        finally:
            keys.join()
        if self._key_error:
            raise self._key_error
        self.client_id = client["client_id"]
        self.client_secret = client["client_secret"]
        self.auth = basic_auth(self.client_id, self.client_secret)

    @property
    def database_url(self) -> str:
        return self.env["AUTHSVC_DATABASE_URL"]

    def _activate_all(self, algs) -> None:
        self._key_error = None
        try:
            # RS256 signs ID tokens by default, whatever signs access tokens.
            for alg in dict.fromkeys(("RS256", *algs)):
                self._activate(alg)
        except Exception as exc:  # re-raised in the constructor's thread
            self._key_error = exc

    def _activate(self, alg: str) -> None:
        rotated = cli_json(self.env, "keys", "rotate", "--alg", alg)
        active = rotated.get("active") or {}
        if not rotated.get("rotated") or active.get("alg") != alg or active.get("status") != "active":
            raise RuntimeError(f"keys rotate --alg {alg} did not make an active {alg} key: {rotated}")

    def add_user(self, username: str, password: str) -> None:
        result = run_cli(self.env, "users", "create", "--username", username, "--password-stdin", stdin=password + "\n")
        if result.returncode != 0:
            raise RuntimeError(f"users create: {result.stderr.strip()}")

    def server(self, alg: str, http_server: str = "gunicorn", **extra_env) -> "AuthsvcServer":
        """An authsvc server signing with ``alg``; started once, then shared by the sections that ask alike."""
        key = (alg, http_server, tuple(sorted(extra_env.items())))
        if key not in self._servers:
            self._servers[key] = AuthsvcServer(self, alg, http_server, **extra_env)
        return self._servers[key]

    def close(self, *, show_logs: bool = False) -> None:
        """Stop the servers and remove the folder; with ``show_logs``, print each server log's tail first."""
        for server in self._servers.values():
            server.stop()
        if show_logs:
            for log in sorted(self.path.glob("*.log")):
                tail = log.read_text(errors="replace").splitlines()[-15:]
                print(f"--- {log.name} (last lines)", *tail, sep="\n", file=sys.stderr)
        self._tmp.cleanup()


class AuthsvcServer(LoopbackProcess):
    """``python -m authsvc serve [--server granian]`` on a free port, workers left to their default (one per core)."""

    name = "authsvc"

    def __init__(self, data: BenchData, alg: str = "RS256", http_server: str = "gunicorn", **extra_env):
        port = free_port()
        env = dict(data.env, AUTHSVC_ISSUER=f"http://127.0.0.1:{port}", AUTHSVC_SIGNING_ALG=alg, **extra_env)
        argv = [sys.executable, "-m", "authsvc", "serve", "--bind", f"127.0.0.1:{port}", "--server", http_server]
        if http_server != "gunicorn":
            self.name = f"authsvc ({http_server})"
        super().__init__(argv, env, port, data.path / f"authsvc-{port}.log")


def install_peer() -> None:
    """npm-install the pinned node-oidc-provider into benchmarks/.peer (git-ignored); raise with the reason."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise RuntimeError("node and npm are not on PATH")
    PEER_DIR.mkdir(exist_ok=True)
    installed = PEER_DIR / "node_modules" / PEER_PACKAGE / "package.json"
    if not installed.exists() or json.loads(installed.read_text()).get("version") != PEER_VERSION:
        manifest = {"private": True, "type": "module", "dependencies": {PEER_PACKAGE: PEER_VERSION}}
        (PEER_DIR / "package.json").write_text(json.dumps(manifest, indent=2) + "\n")
        try:
            result = subprocess.run(
                ["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=PEER_DIR,
                capture_output=True,
                text=True,
                timeout=300,
            )
        except subprocess.TimeoutExpired:
            raise RuntimeError("npm install did not finish within 300 s") from None
        if result.returncode != 0:
            lines = (result.stderr or result.stdout).strip().splitlines() or ["no output"]
            raise RuntimeError(f"npm install {PEER_PACKAGE}@{PEER_VERSION} failed: {lines[-1]}")
    # The script resolves `oidc-provider` from its own folder, so it runs from beside node_modules.
    shutil.copyfile(HERE / "peer_server.mjs", PEER_DIR / "server.mjs")


class PeerServer(LoopbackProcess):
    """node-oidc-provider with ``workers`` cluster workers, signing with ``alg``, serving ``data``'s client."""

    name = "node-oidc-provider"
    ready_path = "/.well-known/openid-configuration"

    def __init__(self, data: BenchData, alg: str, workers: int = CORES):
        port = free_port()
        env = dict(
            os.environ,
            NODE_ENV="production",
            PEER_PORT=str(port),
            PEER_WORKERS=str(workers),
            PEER_ALG=alg,
            PEER_CLIENT_ID=data.client_id,
            PEER_CLIENT_SECRET=data.client_secret,
            PEER_SCOPE=SCOPE,
            PEER_AUDIENCE=AUDIENCE,
        )
        argv = ["node", str(PEER_DIR / "server.mjs")]
        super().__init__(argv, env, port, data.path / f"peer-{port}.log")


def tree_cpu_seconds(session: int) -> float:
    """User + system CPU seconds of every live process in ``session`` (a server and its workers)."""
    ticks = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                text = stat.read()
        except OSError:
            continue  # exited meanwhile
        # Fields after the command name, which may itself hold spaces and parentheses.
        fields = text[text.rindex(b")") + 2 :].split()
        if int(fields[3]) == session:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def wrk(
    url: str, *, seconds: int, connections: int, threads: int = 1, method="GET", body="", authorization="", etag=""
) -> dict:
    """One wrk run through request.lua; returns its summary with requests/s added."""
    env = dict(
        os.environ,
        WRK_METHOD=method,
        WRK_BODY=body,
        WRK_AUTHORIZATION=authorization,
        WRK_IF_NONE_MATCH=etag,
    )
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(LUA_SCRIPT), url]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=seconds + 60)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({result.returncode}): {(result.stderr or result.stdout).strip()[-500:]}")
    summary = json.loads(lines[-1])
    summary["rps"] = summary["requests"] / (summary["duration_us"] / 1e6)
    return summary


def loaded_round(server: LoopbackProcess, path: str, **wrk_args) -> dict:
    """wrk against ``server`` with its process tree's CPU time read before and after."""
    before = tree_cpu_seconds(server.pid)
    result = wrk(server.url + path, **wrk_args)
    cpu = tree_cpu_seconds(server.pid) - before
    result["cpu_ms_per_request"] = 1000 * cpu / result["requests"] if result["requests"] else None
    settle(server)
    failed = result["errors"] + result["non_2xx_3xx"]
    if not result["requests"]:
        raise RuntimeError(f"{server.name} {path}: no request completed in {wrk_args['seconds']} s")
    if failed:
        raise RuntimeError(
            f"{server.name} {path}: {failed} of {result['requests']} requests failed; see {server.log.name}"
        )
    return result


def settle(server: LoopbackProcess, timeout: float = 120.0) -> None:
    """Wait until ``server`` has worked off the requests still queued when wrk stopped.

    wrk stops counting at its deadline, but up to one request per connection is still in
    the server; the next round must not start while they run.
    """
    deadline = time.monotonic() + timeout
    before = tree_cpu_seconds(server.pid)
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = tree_cpu_seconds(server.pid)
        if now - before < 0.02:  # under 8% of one core: idle but for housekeeping
            return
        before = now
    raise RuntimeError(f"{server.name} still busy {timeout} s after a round")


def set_revocation_count(database_url: str, count: int, *, exp: float) -> None:
    """Make the revocation list hold exactly ``count`` live ``jti`` entries, expiring at ``exp``.

    Written straight into the store's tables in one transaction, as ``add_revocations`` would
    write them (a version each, the store_meta counter bumped): ``add_revocations`` upserts
    row by row, about a millisecond each here, so 100k entries would take minutes. Earlier
    entries are deleted and the purge watermark moved past them, so a poller holding an
    older version is sent the full list, as after housekeeping.
    """
    from authsvc.store.schema import revocations
    from authsvc.store.schema import store_meta

    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as conn:
            version = conn.execute(
                sa.select(store_meta.c.value).where(store_meta.c.key == "revocation_version")
            ).scalar_one()
            conn.execute(sa.delete(revocations))
            rows = [
                {"version": version + i, "kind": "jti", "value": f"bench-{version + i}", "exp": exp, "before": None}
                for i in range(1, count + 1)
            ]
            if rows:
                conn.execute(sa.insert(revocations), rows)
            meta = {"revocation_version": version + count, "revocation_purged": version + 1}
            for key, value in meta.items():
                conn.execute(sa.update(store_meta).where(store_meta.c.key == key).values(value=value))
    finally:
        engine.dispose()


def tool_versions() -> dict:
    def first_line(argv):
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return ((result.stdout or result.stderr).strip().splitlines() or [None])[0]

    return {
        "python": sys.version.split()[0],
        "wrk": first_line(["wrk", "-v"]),
        "node": first_line(["node", "--version"]),
    }


def cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None
