"""Real gunicorn processes on loopback for end-to-end tests.

Each ``Instance`` is a separate ``python -m authsvc serve`` process with its
own port, sharing the database and key ring it is given, as instances behind
a load balancer would. Only processes started here are stopped, by PID.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LoopbackProcess:
    """A server process on a loopback port, logging to a file, in its own process group.

    Subclasses say how to start it (``argv``) and how it shows it is ready
    (``ready_path`` answering ``ready_status``). Only this process group is
    ever signalled.
    """

    ready_path = "/healthz"
    ready_status = 200
    name = "server"

    def __init__(self, argv: list, env: dict, port: int, log_path: Path):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.env = env
        self.log = open(log_path, "wb")
        self.process = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.wait_ready()

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}: {self.read_log()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + self.ready_path, timeout=1) as response:
                    if response.status == self.ready_status:
                        return
            except urllib.error.HTTPError as error:
                if error.code == self.ready_status:
                    return
                time.sleep(0.1)
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} on {self.url} not ready after {timeout} s")

    def read_log(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the whole process group (arbiter and workers): a crash, not a shutdown."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


class Instance(LoopbackProcess):
    """``python -m authsvc serve`` on ``port`` with the environment ``env``."""

    name = "gunicorn"

    def __init__(self, env: dict, port: int, workers: int = 1, server: str = "gunicorn"):
        argv = [sys.executable, "-m", "authsvc", "serve", "--bind", f"127.0.0.1:{port}", "--workers", str(workers)]
        if server != "gunicorn":
            argv += ["--server", server]
        self.name = server
        super().__init__(argv, env, port, Path(env["AUTHSVC_KEYS_DIR"]).parent / f"{server}-{port}.log")


def server_env(
    tmp_path, *, issuer: str, database_url: str | None = None, redis_url: str | None = None, **extra
) -> dict:
    """The environment of an instance: its own tmp database and keys unless told otherwise."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHSVC_")}
    env.update(
        AUTHSVC_ISSUER=issuer,
        AUTHSVC_DATABASE_URL=database_url or f"sqlite:///{tmp_path / 'authsvc.db'}",
        AUTHSVC_KEYS_DIR=str(tmp_path / "keys"),
        PYTHONPATH=str(ROOT),
    )
    if redis_url:
        env["AUTHSVC_REDIS_URL"] = redis_url
    env.update(extra)
    return env


def run_cli(env: dict, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "authsvc", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def cli_json(env: dict, *args: str, stdin: str | None = None):
    result = run_cli(env, *args, "--json", stdin=stdin)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def prepare(env: dict) -> None:
    """Schema and first key, as ``make run`` does."""
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from authsvc.services import open_keyring; from authsvc.config import Settings; "
            "open_keyring(Settings.from_env(), create=True)",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    cli_json(env, "db", "upgrade")
