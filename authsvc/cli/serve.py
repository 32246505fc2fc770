"""``serve``: run gunicorn (the default) or granian with the project's configuration."""

import os
import sys

import click

from .output import emit
from .output import json_option


@click.command("serve")
@click.option("--bind", default=None, help="HOST:PORT (default: AUTHSVC_BIND or 127.0.0.1:8000).")
@click.option("--workers", type=click.IntRange(1, 64), default=None, help="Default: number of cores.")
@click.option(
    "--server",
    "server_name",
    type=click.Choice(["gunicorn", "granian"]),
    default="gunicorn",
    show_default=True,
    help="HTTP server: gunicorn, or granian (faster; see the reference for what differs).",
)
@json_option
def command(bind, workers, server_name, as_json):
    """Serve the issuer with gunicorn (default) or granian."""
    from ..config import Settings
    from ..services import open_keyring

    settings = Settings.from_env(**({"bind": bind} if bind else {}))
    # Refuse here, in one line, rather than after the server has started logging.
    open_keyring(settings)
    env = dict(os.environ, AUTHSVC_BIND=settings.bind)
    if workers:
        env["AUTHSVC_WORKERS"] = str(workers)
    argv = [sys.executable, "-m", "gunicorn", "-c", "python:authsvc.gunicorn_config"]
    if server_name == "granian":
        argv = [sys.executable, "-m", "authsvc.granian_server"]
    elif as_json:
        # Stdout carries the one JSON document; gunicorn's access log goes to stderr instead.
        argv += ["--access-logfile", "/dev/stderr"]
    if as_json:
        count = workers or int(os.environ.get("AUTHSVC_WORKERS") or os.cpu_count() or 2)
        emit({"issuer": settings.issuer, "bind": settings.bind, "workers": count, "server": server_name}, True)
    sys.stdout.flush()
    os.execve(sys.executable, argv, env)
