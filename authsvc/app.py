"""The application factory."""

import logging

from flask import Flask

from .config import Settings
from .services import Services
from .services import build
from .web import init_app
from .web.proxies import TrustedProxies
from .web.request_id import RequestId
from .web.token_path import ClientCredentialsPath

# Small bodies only: every protocol request fits in a few kilobytes, and a
# cap keeps multipart and form parsing cheap (SECURITY.md E.52).
MAX_BODY_BYTES = 64 * 1024


def create_app(settings: Settings | None = None, *, services: Services | None = None) -> Flask:
    """Build the Flask app for ``settings`` (default: the environment)."""
    if services is None:
        services = build(settings or Settings.from_env())
    app = Flask("authsvc.web")
    # "//path" is a 404, not a 308 whose absolute Location is built from the
    # client's Host header (SECURITY.md B.35).
    app.url_map.merge_slashes = False
    app.config.update(
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        MAX_FORM_MEMORY_SIZE=MAX_BODY_BYTES,
        MAX_FORM_PARTS=64,
        JSON_SORT_KEYS=False,
        TRAP_HTTP_EXCEPTIONS=False,
    )
    init_app(app, services)
    # In front of Flask: plain client-credentials token requests skip the framework (see token_path).
    app.wsgi_app = ClientCredentialsPath(app.wsgi_app, app.extensions["authsvc.server"], services)
    is_trusted_proxy = None
    if services.settings.trusted_proxies:
        proxies = TrustedProxies(app.wsgi_app, services.settings.trusted_proxies)
        app.wsgi_app = proxies
        is_trusted_proxy = proxies.is_trusted
    # Outside TrustedProxies: the request id is believed from the socket peer, not from X-Forwarded-For.
    app.wsgi_app = RequestId(app.wsgi_app, is_trusted_proxy)
    logging.getLogger("authsvc").setLevel(logging.INFO)
    return app
