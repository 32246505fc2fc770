"""A downstream service's verifier, run inside its own network namespace.

Reads one JSON request per line on stdin and answers one JSON line on stdout,
so a test in another namespace can drive it through a pipe, not the network:

    {"token": "eyJ…"}  →  {"ok": true, "sub": …} | {"ok": false, "error": "RevokedToken"}
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from authsvc.verify import TokenVerifier  # noqa: E402


def main() -> None:
    issuer, audience, redis_url, poll, staleness = sys.argv[1:6]
    verifier = TokenVerifier(
        issuer,
        audience,
        revocation_poll_interval=float(poll),
        max_revocation_staleness=float(staleness),
        redis_url=redis_url or None,
        http_timeout=1.0,
    )
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        try:
            claims = verifier.verify(request["token"])
            answer = {"ok": True, "sub": claims.get("sub"), "kid": None}
        except Exception as error:  # noqa: BLE001 - every refusal is reported by its class name
            answer = {"ok": False, "error": type(error).__name__}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
