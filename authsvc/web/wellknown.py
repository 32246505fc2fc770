"""Public documents: discovery, JWKS and the revocation list.

They are served from the key ring and the store alone, with ETags, so
verifiers can poll them cheaply.
"""

import hashlib
import json

from flask import Blueprint
from flask import Response
from flask import request
from werkzeug.http import unquote_etag

from ..keyring import Status
from ..oauth.discovery import metadata
from . import services

bp = Blueprint("wellknown", __name__)


@bp.get("/.well-known/openid-configuration")
@bp.get("/.well-known/oauth-authorization-server")
def discovery():
    svc = services()
    svc.keyring.reload_if_changed()
    # Only what can be signed right now: an alg without an active key would give unusable ID tokens.
    signing = {key.alg for key in svc.keyring.keys() if key.status is Status.ACTIVE}
    return _json(metadata(svc.settings, signing), max_age=3600)


@bp.get("/jwks.json")
def jwks():
    keyring = services().keyring
    keyring.reload_if_changed()
    etag = keyring.jwks_etag()
    if _not_modified(etag):
        return _not_modified_response(etag, keyring.jwks_max_age)
    headers = {"Cache-Control": f"public, max-age={keyring.jwks_max_age}", "ETag": etag}
    return Response(keyring.jwks_json(), mimetype="application/json", headers=headers)


@bp.get("/revocations")
def revocation_list():
    """This project's revocation list; ``?since=N`` returns what changed after version N."""
    since = request.args.get("since", "0")
    if not since.isdigit() or len(since) > 18:
        return _json({"error": "invalid_request", "error_description": "since must be a version number"}, status=400)
    doc = services().revocations.document(int(since))
    body = json.dumps(doc, separators=(",", ":"))
    etag = '"' + hashlib.sha256(body.encode()).hexdigest()[:32] + '"'
    if _not_modified(etag):
        return _not_modified_response(etag, 0)
    return Response(body, mimetype="application/json", headers={"ETag": etag, "Cache-Control": "no-cache"})


def _json(doc, *, max_age=0, etag=None, status=200):
    headers = {"Cache-Control": f"public, max-age={max_age}" if max_age else "no-store"}
    if etag:
        headers["ETag"] = etag
    return Response(json.dumps(doc), status=status, mimetype="application/json", headers=headers)


def _not_modified(etag: str) -> bool:
    # Werkzeug holds the tags unquoted; If-None-Match compares weakly (RFC 9110 §13.1.2).
    return request.if_none_match.contains_weak(unquote_etag(etag)[0])


def _not_modified_response(etag, max_age):
    cache = f"public, max-age={max_age}" if max_age else "no-cache"
    return Response(status=304, headers={"ETag": etag, "Cache-Control": cache})
