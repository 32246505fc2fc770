"""authsvc.verify must stay installable alone: no server-side module is imported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SERVER_SIDE = {"flask", "sqlalchemy", "authlib", "redis", "requests", "werkzeug", "gunicorn"}


def run(code: str) -> None:
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, cwd=ROOT)


def test_importing_the_verifier_loads_no_server_dependency():
    run(
        "import authsvc.verify, sys; "
        f"loaded = {SERVER_SIDE!r} & {{name.split('.')[0] for name in sys.modules}}; "
        "assert not loaded, loaded"
    )


def test_the_verifier_imports_no_other_authsvc_module():
    run(
        "import authsvc.verify, sys; "
        "others = [m for m in sys.modules if m.startswith('authsvc') "
        "and m != 'authsvc' and not m.startswith('authsvc.verify')]; "
        "assert not others, others"
    )


def test_building_a_verifier_without_redis_url_loads_no_redis():
    run(
        "import sys; from authsvc.verify import TokenVerifier; "
        "TokenVerifier('http://127.0.0.1:9', 'api', start=False).close(); "
        "assert 'redis' not in sys.modules"
    )
