"""``serve``: run gunicorn with the project's configuration."""

import os
import sys

import click

from .output import emit
from .output import json_option


@click.command("serve")
@click.option("--bind", default=None, help="HOST:PORT (default: AUTHSVC_BIND or 127.0.0.1:8000).")
@click.option("--workers", type=click.IntRange(1, 64), default=None, help="Default: number of cores.")
@json_option
def command(bind, workers, as_json):
    """Serve the issuer with gunicorn."""
    from ..config import Settings
    from ..services import open_keyring

    settings = Settings.from_env(**({"bind": bind} if bind else {}))
    # Refuse here, in one line, rather than after gunicorn has started logging.
    open_keyring(settings)
    env = dict(os.environ, AUTHSVC_BIND=settings.bind)
    if workers:
        env["AUTHSVC_WORKERS"] = str(workers)
    argv = [sys.executable, "-m", "gunicorn", "-c", "python:authsvc.gunicorn_config"]
    if as_json:
        # Stdout carries the one JSON document; gunicorn's access log goes to stderr instead.
        argv += ["--access-logfile", "/dev/stderr"]
        count = workers or int(os.environ.get("AUTHSVC_WORKERS") or os.cpu_count() or 2)
        emit({"issuer": settings.issuer, "bind": settings.bind, "workers": count}, True)
    sys.stdout.flush()
    os.execve(sys.executable, argv, env)
