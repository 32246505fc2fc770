"""A resource server that accepts authsvc access tokens, verified offline.

Register the clients that call it with this service's audience (the demo client that
``make run`` creates already is), then start it:

    python -m authsvc clients create --name demo --grant-type client_credentials \
        --scope api:read --audience http://127.0.0.1:8001
    AUTHSVC_ISSUER=http://127.0.0.1:8000 python examples/resource_server.py
    curl -H "Authorization: Bearer $ACCESS_TOKEN" http://127.0.0.1:8001/hello

AUDIENCE is this service's own identifier, the ``aud`` it accepts: by default its own
URL, http://127.0.0.1:PORT. Tokens of clients registered for another audience, or
for none (``aud`` = the issuer, meant for the issuer's own endpoints), get 401.
DPoP-bound tokens (``token_type: DPoP``, RFC 9449) are accepted too, sent as
``Authorization: DPoP $ACCESS_TOKEN`` with a ``DPoP`` proof header made for this request
(``htm`` GET, ``htu`` http://127.0.0.1:8001/hello, ``ath`` the token's hash); such a token
sent as Bearer gets 401. ``require_token`` does both, nothing here is DPoP-specific.
Set AUTHSVC_REDIS_URL to hear revocations within a second instead of a poll interval.
PORT (8001) is where it listens; AUTHSVC_POLL_INTERVAL (5 s) is how often it fetches
the revocation list.
"""

import logging
import os
import sys
from pathlib import Path

import flask

# Run from a checkout without installing: make the repository importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from authsvc.verify import TokenVerifier  # noqa: E402
from authsvc.verify import require_token  # noqa: E402

ISSUER = os.environ.get("AUTHSVC_ISSUER", "http://127.0.0.1:8000")
PORT = int(os.environ.get("PORT", "8001"))
# The service's own identifier, never the issuer's: a token for another service must not pass here.
AUDIENCE = os.environ.get("AUDIENCE", f"http://127.0.0.1:{PORT}")
POLL_INTERVAL = float(os.environ.get("AUTHSVC_POLL_INTERVAL", "5"))

verifier = TokenVerifier(
    ISSUER,
    AUDIENCE,
    revocation_poll_interval=POLL_INTERVAL,
    # Fail closed only once several polls in a row have failed, never after one.
    max_revocation_staleness=max(60.0, 3 * POLL_INTERVAL),
    redis_url=os.environ.get("AUTHSVC_REDIS_URL"),
)
app = flask.Flask(__name__)


@app.get("/hello")
@require_token(verifier)
def hello():
    token = flask.g.token
    return {"sub": token["sub"], "client_id": token["client_id"], "scopes": token["scope"].split()}


@app.get("/hello/profile")
@require_token(verifier, scopes=["profile"])
def hello_profile():
    # A view that needs a scope: without "profile" the caller gets 403 insufficient_scope.
    return {"sub": flask.g.token["sub"], "scopes": flask.g.token["scope"].split()}


@app.get("/callback")
def callback():
    # Not part of a resource server: the demo client's redirect URI points here so
    # the README walkthrough can pick up the authorization code from the browser.
    return {"code": flask.request.args.get("code"), "error": flask.request.args.get("error")}


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    app.run(host="127.0.0.1", port=PORT)
