"""``serve``: run gunicorn with the project's configuration."""

import os
import sys

import click


@click.command("serve")
@click.option("--bind", default=None, help="HOST:PORT (default: AUTHSVC_BIND or 127.0.0.1:8000).")
@click.option("--workers", type=click.IntRange(1, 64), default=None, help="Default: number of cores.")
def command(bind, workers):
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
    sys.stdout.flush()
    os.execve(sys.executable, argv, env)
