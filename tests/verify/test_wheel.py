"""The built wheel, installed alone in a fresh virtualenv, verifies a token.

This is the downstream promise: ``pip install authsvc`` brings PyJWT and cryptography and
nothing of the server, and ``authsvc.verify`` works with just that.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from .conftest import AUDIENCE

ROOT = Path(__file__).resolve().parents[2]

CHECK = """
import importlib.util, json, sys
from authsvc.verify import TokenVerifier
issuer, audience, token = sys.argv[1:4]
with TokenVerifier(issuer, audience) as verifier:
    claims = verifier.verify(token, scopes=["read"])
absent = [name for name in ("flask", "authlib", "sqlalchemy", "redis", "gunicorn")
          if importlib.util.find_spec(name) is not None]
print(json.dumps({"claims": claims, "installed": absent}))
"""


def pip(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
        check=True,
        capture_output=True,
        timeout=300,
    )


@pytest.mark.slow
def test_wheel_installs_and_verifies_alone(tmp_path, issuer):
    # Build from a copy so the work tree gets no build/ or egg-info droppings.
    source = tmp_path / "src"
    source.mkdir()
    shutil.copy(ROOT / "pyproject.toml", source)
    shutil.copytree(ROOT / "authsvc", source / "authsvc", ignore=shutil.ignore_patterns("__pycache__"))
    pip("wheel", "--no-deps", "-w", str(tmp_path / "dist"), str(source))
    wheel = next((tmp_path / "dist").glob("authsvc-0.1.0-*.whl"))

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False, system_site_packages=False)
    python = env_dir / "bin" / "python"
    # The outer pip installs into the new interpreter; with_pip would cost seconds.
    pip("--python", str(python), "install", "--quiet", str(wheel))

    token = issuer.mint(scope="read")
    result = subprocess.run(
        [str(python), "-c", CHECK, issuer.issuer, AUDIENCE, token],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    report = json.loads(result.stdout)
    assert report["claims"]["sub"] == json.loads(_payload(token))["sub"]
    assert report["installed"] == []


def _payload(token: str) -> bytes:
    import base64

    segment = token.split(".")[1]
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
