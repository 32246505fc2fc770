"""``/metrics`` on its own address (``AUTHSVC_METRICS_BIND``), served by the gunicorn arbiter.

The arbiter is the one process that outlives every worker, and the workers
already write their samples to the shared multiprocess directory, so a small
threaded HTTP server in the arbiter reads that directory on each scrape.
gunicorn itself offers no way to tell its listeners apart (``SERVER_PORT``
comes from the client's ``Host`` header), so a second gunicorn bind could not
keep the issuer's endpoints off the metrics address or ``/metrics`` off the
main one.

The thread only reads metric files and answers scrapes: it takes no lock a
forked worker needs, and each worker closes its inherited copy of the
listening socket (``close_in_worker``). This module imports neither Flask
views nor the app's metric objects, which must first be created in the
workers.
"""

import hashlib
import hmac
import logging
import socket
import socketserver
import threading
from wsgiref.simple_server import WSGIRequestHandler
from wsgiref.simple_server import WSGIServer

from ..events import security_event

PATH = "/metrics"


def bearer_token_matches(authorization: str | None, token: str) -> bool:
    """True when ``authorization`` is ``Bearer <token>``, compared in constant time.

    Both sides are hashed first so the comparison does not reveal the token's length either.
    """
    scheme, _, presented = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    presented_digest = hashlib.sha256(presented.strip().encode()).digest()
    return hmac.compare_digest(presented_digest, hashlib.sha256(token.encode()).digest())


def metrics_app(token: str | None):
    """A WSGI app answering ``GET /metrics`` with every worker's samples, and 404 for anything else."""
    from prometheus_client import CollectorRegistry
    from prometheus_client import make_wsgi_app
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    exposition = make_wsgi_app(registry)

    def app(environ, start_response):
        if environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return _plain(start_response, "404 Not Found", b"not found\n")
        if token and not bearer_token_matches(environ.get("HTTP_AUTHORIZATION"), token):
            security_event("metrics.unauthorized", logging.WARNING, address=environ.get("REMOTE_ADDR"))
            return _plain(
                start_response,
                "401 Unauthorized",
                b"bearer token required\n",
                [("WWW-Authenticate", 'Bearer realm="metrics"')],
            )
        return exposition(environ, start_response)

    return app


def _plain(start_response, status: str, body: bytes, extra=()):
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))), *extra])
    return [body]


class _Server(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True

    def server_bind(self):
        # HTTPServer.server_bind would resolve the host's FQDN: a DNS lookup nothing here needs.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = host, port
        self.setup_environ()


class _Handler(WSGIRequestHandler):
    # A scraper that connects and sends nothing must not hold a thread for long.
    timeout = 10

    def log_message(self, format, *args):
        pass


def start(bind: str, token: str | None = None) -> WSGIServer:
    """Listen on ``bind`` (HOST:PORT) and serve scrapes from a daemon thread; return the server."""
    host, _, port = bind.rpartition(":")
    host = host.strip("[]")
    family = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)[0][0]
    server_class = type("MetricsServer", (_Server,), {"address_family": family})
    server = server_class((host, int(port)), _Handler)
    server.set_app(metrics_app(token))
    threading.Thread(target=server.serve_forever, name="authsvc-metrics", daemon=True).start()
    return server


def close_in_worker(server: WSGIServer) -> None:
    """Close a forked worker's copy of the listening socket (the serving thread was not forked)."""
    server.socket.close()
