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
    from . import account
    from . import device
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
    for module in (login, oauth, device, account, wellknown, ops):
        app.register_blueprint(module.bp)
    errors.init_app(app)
    # On the first request, in the worker: a thread started before gunicorn forks would not survive the fork.
    # Housekeeping runs in that thread, so no request waits for a purge.
    app.before_request(services.start_housekeeping)
    if services.logout_sender is not None:
        app.before_request(services.logout_sender.start)
    headers.init_app(app)
    metrics.init_app(app)


def services():
    return current_app.extensions[EXTENSION]


def server():
    return current_app.extensions["authsvc.server"]


def sessions() -> Sessions:
    return current_app.extensions["authsvc.sessions"]
