"""The deployment files and the command-line tools that check them.

hadolint, kubectl (for ``kubectl kustomize``) and kubernetes-validate come from PyPI through
requirements-dev.txt, so they sit next to the test interpreter; HAProxy comes from Debian.
A missing tool skips its test with the reason, except under CI=true, where it fails: CI must
never pass by skipping (the rule of tests/dbs.py).
"""

import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKERFILE = ROOT / "Dockerfile"


def require_tool(name: str, install_hint: str) -> str:
    """Return the path of the executable ``name``; skip (fail under CI) when it is absent."""
    beside_python = Path(sys.executable).parent / name
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which(name)
    if found:
        return found
    message = f"{name} not found beside {sys.executable} or on PATH: {install_hint}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def deployment_files() -> list[Path]:
    """Every file an operator deploys with: the image's, compose's and Kubernetes'."""
    files = [DOCKERFILE, ROOT / ".dockerignore"]
    files += sorted(path for path in DEPLOY.rglob("*") if path.is_file() and "secrets" not in path.parts)
    return files
