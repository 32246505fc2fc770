"""The benchmark runner still runs: a one-second pass over its cheapest sections.

``benchmarks/run.py --quick --skip-peer`` against a real ``python -m authsvc serve`` and wrk:
the ES256 token endpoint for one round of 1 s, the signing limit, and ``authsvc.verify``
with an empty revocation list. It checks that the JSON file holds every figure the table
is made of and that each was measured (non-zero); it never judges a speed.
"""

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _wrk():
    if shutil.which("wrk") is None:
        message = "wrk is not installed (apt-get install wrk)"
        # CI installs it (.ci/run): there a missing wrk is a failure, never a skip.
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def measured(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_quick_run_writes_every_figure(tmp_path):
    results_file = tmp_path / "bench.json"
    argv = [
        sys.executable,
        "benchmarks/run.py",
        "--quick",
        "--skip-peer",
        "--only",
        "token,limit,verify",
        "--algs",
        "ES256",
        "--verify-alg",
        "ES256",
        "--verify-entries",
        "0",
        "--json",
        str(results_file),
    ]
    run = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "| Token endpoint ES256 (gunicorn): tokens/s" in run.stdout
    assert "| Token endpoint ES256 (granian): tokens/s" in run.stdout

    doc = json.loads(results_file.read_text())
    assert doc["machine"]["cores"] >= 1
    results = doc["results"]
    assert set(results) == {"token", "limit", "verify"}

    token = results["token"]["ES256"]
    for server in ("authsvc", "authsvc_granian"):
        for key in ("rps", "p50_ms", "p99_ms", "cpu_ms_per_request"):
            assert measured(token[server][key]), (key, token[server])
        assert token[server]["rounds"][0]["requests"] > 0
    assert token["peer"] == {"not_run": "--skip-peer"}

    limit = results["limit"]["ES256"]
    assert measured(limit["signatures_per_cpu_second"])
    assert measured(limit["jwt_encode_per_cpu_second"])

    verify = results["verify"]
    assert verify["alg"] == "ES256"
    empty = verify["entries"]["0"]
    for key in (
        "verify_per_cpu_second",
        "jwt_decode_per_cpu_second",
        "introspections_per_second",
        "verify_vs_jwt_decode",
        "verify_vs_introspection",
    ):
        assert measured(empty[key]), (key, empty)
    assert empty["verifier_memory_bytes"] >= 0
    assert measured(verify["dpop"]["dpop_per_cpu_second"]) and measured(verify["dpop"]["bearer_per_cpu_second"])


def test_unknown_section_is_a_usage_error():
    run = subprocess.run(
        [sys.executable, "benchmarks/run.py", "--only", "tokens"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 2
    assert "choose from token, limit" in run.stderr
