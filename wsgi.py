"""The gunicorn target: ``gunicorn wsgi:app``."""

from authsvc.app import create_app

app = create_app()
