"""Checks every protocol request passes before it reaches Authlib.

RFC 6749 §3.1/§3.2: a parameter must not be repeated; the token, revocation
and introspection endpoints take form-encoded bodies only. Werkzeug's
``MultiDict.get`` would silently keep the first copy, so repetition is
checked here, across the query string and the body together.
"""

from flask import request

from ..oauth.errors import InvalidRequestError

FORM_TYPE = "application/x-www-form-urlencoded"
MAX_PARAM_CHARS = 4096


def check_form_post() -> None:
    """Refuse a token-style request that is not a clean form POST."""
    if request.mimetype != FORM_TYPE:
        raise InvalidRequestError("Send parameters as application/x-www-form-urlencoded.")
    check_params(request.form, request.args)
    if request.args:
        # RFC 6749 §3.2: the body carries the parameters; a URL ends up in logs and caches.
        raise InvalidRequestError("Send parameters in the request body, not the query string.")


def check_params(*multidicts) -> None:
    seen = set()
    for params in multidicts:
        for key, values in params.lists():
            if len(values) > 1 or key in seen:
                raise InvalidRequestError(f"Parameter {_printable(key)} is repeated.")
            seen.add(key)
            if any(len(v) > MAX_PARAM_CHARS for v in values):
                raise InvalidRequestError(f"Parameter {_printable(key)} is too long.")
            if any("\x00" in v for v in values):
                raise InvalidRequestError(f"Parameter {_printable(key)} contains a NUL byte.")


def _printable(name: str) -> str:
    name = "".join(c for c in name if 0x20 < ord(c) < 0x7F and c not in '"\\')[:40]
    return repr(name).replace('"', "")
