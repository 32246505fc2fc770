"""Profile the client-credentials token path in process (Flask test client, no HTTP server).

    .venv/bin/python benchmarks/profile_token.py [--alg ES256] [--requests 3000] [--profile]

Prints microseconds per request; with ``--profile``, pyinstrument's call tree
(``pip install pyinstrument``; not a project dependency).
"""

import argparse
import base64
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def build_app(tmp: Path, alg: str):
    from authsvc import accounts
    from authsvc.app import create_app
    from authsvc.config import Settings
    from authsvc.services import build
    from authsvc.services import open_keyring

    settings = Settings(
        issuer="http://127.0.0.1:8000",
        database_url=f"sqlite:///{tmp / 'authsvc.db'}",
        keys_dir=str(tmp / "keys"),
        signing_alg=alg,
    )
    open_keyring(settings, create=True).close()
    services = build(settings)
    services.store.upgrade()
    client, secret = accounts.new_client("bench", now=time.time(), scope="api:read")
    services.store.create_client(client)
    app = create_app(settings, services=services)
    auth = "Basic " + base64.b64encode(f"{client.client_id}:{secret}".encode()).decode()
    return app, auth


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alg", default="ES256")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        app, auth = build_app(Path(tmp), args.alg)
        client = app.test_client()
        headers = {"Authorization": auth}
        body = {"grant_type": "client_credentials"}

        def run(count):
            for _ in range(count):
                response = client.post("/token", data=body, headers=headers)
                assert response.status_code == 200, response.data

        run(200)
        profiler = None
        if args.profile:
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0002)
            profiler.start()
        started = time.process_time()
        run(args.requests)
        elapsed = time.process_time() - started
        if profiler is not None:
            profiler.stop()
            print(profiler.output_text(unicode=False, color=False, show_all=False))
        print(f"{args.alg}: {elapsed / args.requests * 1e6:.0f} us CPU per request (test client, in process)")


if __name__ == "__main__":
    main()
