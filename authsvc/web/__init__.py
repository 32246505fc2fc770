"""The HTTP layer (Flask): blueprints that translate HTTP to the protocol
layer and back, the login and consent pages, and the one place where
exceptions become responses.
"""

from flask import current_app

from .session import Sessions

EXTENSION = "authsvc"


def init_app(app, services) -> None:
    """Register authsvc's blueprints, error handlers and security headers on ``app``."""
    from ..oauth import create_authorization_server
    from . import errors
    from . import headers
    from . import login
    from . import metrics
    from . import oauth
    from . import ops
    from . import wellknown

    app.extensions[EXTENSION] = services
    app.extensions["authsvc.server"] = create_authorization_server(services)
    app.extensions["authsvc.sessions"] = Sessions(services)
    for module in (login, oauth, wellknown, ops):
        app.register_blueprint(module.bp)
    errors.init_app(app)
    app.teardown_request(lambda exc: services.housekeeping())
    headers.init_app(app)
    metrics.init_app(app)


def services():
    return current_app.extensions[EXTENSION]


def server():
    return current_app.extensions["authsvc.server"]


def sessions() -> Sessions:
    return current_app.extensions["authsvc.sessions"]
