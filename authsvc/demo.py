"""First-start set-up for ``make run``: schema, first key, demo user and client.

Run as ``python -m authsvc.demo``. It changes nothing that exists already:
the key ring keeps its keys, and the demo accounts are created only in an
empty store. Their credentials are printed once, when they are created.
"""

import secrets
import sys
import time
from dataclasses import replace

from . import accounts
from .config import Settings
from .errors import AuthsvcError
from .services import open_keyring
from .store import open_store

DEMO_REDIRECT_URI = "http://127.0.0.1:8001/callback"
# The audience of examples/resource_server.py: the demo client's tokens are for that service.
DEMO_AUDIENCE = "http://127.0.0.1:8001"


def main() -> None:
    settings = Settings.from_env()
    open_keyring(settings, create=True)
    store = open_store(settings.database_url)
    try:
        store.upgrade()
        if store.list_users() or store.list_clients():
            print("authsvc: store already set up; demo accounts unchanged")
            return
        password = secrets.token_urlsafe(12)
        now = time.time()
        user = accounts.new_user("demo", password, "demo@example.com", now, settings)
        store.create_user(user)
        client, secret = accounts.new_client(
            "Demo app",
            now=now,
            redirect_uris=(DEMO_REDIRECT_URI,),
            post_logout_redirect_uris=("http://127.0.0.1:8001/",),
            grant_types=("authorization_code", "refresh_token", "client_credentials"),
            scope="api:read api:write",
        )
        client = replace(client, audiences=(DEMO_AUDIENCE,))
        store.create_client(client)
    finally:
        store.close()
    print(
        "authsvc: created demo accounts (shown once, keep them):\n"
        f"  user      demo / {password}\n"
        f"  client    {client.client_id} / {secret}\n"
        f"  redirect  {DEMO_REDIRECT_URI}\n"
        f"  audience  {DEMO_AUDIENCE}"
    )


if __name__ == "__main__":
    try:
        main()
    except (AuthsvcError, ValueError) as exc:
        print(f"authsvc: {exc}", file=sys.stderr)
        sys.exit(1)
