"""Public documents: discovery, JWKS and the revocation list.

They are served from the key ring and the store alone, with ETags, so
verifiers can poll them cheaply.
"""

import json
import weakref

from flask import Blueprint
from flask import Response
from flask import current_app
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
    since = int(since)
    # The list changes only with a new version (entries that expire meanwhile match only expired
    # tokens), so a poller that is up to date gets its 304 from two counters, never the whole list.
    current, purged = services().store.revocation_versions()
    etag = _revocation_etag(current, since, full=since <= 0 or since > current or since < purged)
    if _not_modified(etag):
        return _not_modified_response(etag, 0)
    full = since <= 0 or since > current or since < purged
    app = current_app._get_current_object()
    cached = _FULL_LIST_CACHE.get(app)
    if full and cached and cached[0] == current and services().clock() < cached[2]:
        version, body = cached[0], cached[1]
    else:
        doc = services().revocations.document(since)
        version, full = doc["version"], "since" not in doc
        body = json.dumps(doc, separators=(",", ":"))
        if full:
            # Reusable until the first of its entries expires, when the list would lose it.
            first_exp = min((e["exp"] for kind in ("jti", "sid", "sub", "client_id") for e in doc[kind]), default=None)
            until = services().clock() + FULL_LIST_REUSE_SECONDS
            _FULL_LIST_CACHE[app] = (version, body, until if first_exp is None else min(until, first_exp))
    headers = {"ETag": _revocation_etag(version, since, full=full), "Cache-Control": "no-cache"}
    return Response(body, mimetype="application/json", headers=headers)


# The full list of one version is the same for every poller that starts from scratch: it is built
# once and reused for a few seconds, never past the expiry of one of its entries.
FULL_LIST_REUSE_SECONDS = 5.0
_FULL_LIST_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _revocation_etag(version: int, since: int, *, full: bool) -> str:
    return f'"r{version}"' if full else f'"r{version}-{since}"'


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
