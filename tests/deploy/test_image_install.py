"""The Dockerfile's install steps, run here in a fresh virtualenv from the built wheel, give a
server that starts and serves.

deploy/install-server.sh is what the Dockerfile's build stage runs; this test runs the same
script, then starts the result the way the image does: from a working directory holding only
wsgi.py (the Dockerfile copies it to /app), with nothing of the source tree importable.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.servers import free_port

from .tools import DEPLOY
from .tools import DOCKERFILE
from .tools import ROOT


def build_wheel(tmp_path):
    # From a copy, as tests/verify/test_wheel.py does: no build/ or egg-info in the work tree.
    source = tmp_path / "src"
    source.mkdir()
    shutil.copy(ROOT / "pyproject.toml", source)
    shutil.copytree(ROOT / "authsvc", source / "authsvc", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--disable-pip-version-check",
            "wheel",
            "--no-deps",
            "-w",
            str(tmp_path / "dist"),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return next((tmp_path / "dist").glob("authsvc-*.whl"))


def healthcheck_argv() -> list[str]:
    """The HEALTHCHECK command of the Dockerfile, exactly as the image runs it."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    match = re.search(r"(?m)^HEALTHCHECK\b.*?\bCMD (\[.*\])$", text)
    assert match, "no HEALTHCHECK ... CMD [...] in the Dockerfile"
    return json.loads(match.group(1))


def wait_until_ready(url: str, process: subprocess.Popen, log, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    pytest.fail(f"not ready after {timeout} s: {log.read_text()[-2000:]}")


@pytest.mark.slow
def test_image_install_steps_give_a_working_server(tmp_path):
    wheel = build_wheel(tmp_path)
    venv = tmp_path / "opt-authsvc"
    install = subprocess.run(
        ["sh", str(DEPLOY / "install-server.sh"), str(venv), str(ROOT / "requirements.txt"), str(wheel)],
        env=dict(os.environ, PYTHON=sys.executable),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stdout + install.stderr

    # The image's working directory: wsgi.py and nothing else.
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    shutil.copy(ROOT / "wsgi.py", app_dir)
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AUTHSVC_", "PYTHON"))}
    env.update(
        PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        PYTHONUNBUFFERED="1",
        PYTHONDONTWRITEBYTECODE="1",
        AUTHSVC_BIND=f"127.0.0.1:{port}",
        AUTHSVC_DATABASE_URL=f"sqlite:///{tmp_path / 'authsvc.db'}",
        AUTHSVC_KEYS_DIR=str(tmp_path / "keys"),
    )

    def authsvc(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["python", "-m", "authsvc", *args], cwd=app_dir, env=env, capture_output=True, text=True, timeout=120
        )

    found = subprocess.run(
        ["python", "-c", "import authsvc; print(authsvc.__file__)"],
        cwd=app_dir,
        env=env,
        capture_output=True,
        text=True,
    )
    assert found.stdout.startswith(str(venv)), f"authsvc imported from {found.stdout or found.stderr}"
    usage = authsvc("--help")
    assert usage.returncode == 0, usage.stderr
    assert "serve" in usage.stdout
    for step in (["db", "upgrade"], ["keys", "rotate", "--if-older-than", "30d"]):
        result = authsvc(*step)
        assert result.returncode == 0, f"{step}: {result.stderr}"

    log = tmp_path / "serve.log"
    with open(log, "wb") as output:
        server = subprocess.Popen(
            ["python", "-m", "authsvc", "serve", "--workers", "1"],
            cwd=app_dir,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until_ready(f"http://127.0.0.1:{port}", server, log)
        health = subprocess.run(healthcheck_argv(), cwd=app_dir, env=env, capture_output=True, text=True, timeout=30)
        assert health.returncode == 0, health.stderr
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(timeout=10)
