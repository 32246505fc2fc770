"""Token latency while the key ring reloads, with 50 retired keys in the ring.

    .venv/bin/python benchmarks/keyring_reload.py [files|database]

Builds a ring, rotates it 50 times (--force; nothing is old enough to prune), then
serves client-credentials tokens from 4 threads of one app (its ring watched, as in
gunicorn) while another ring object, as the CLI would, rotates every 0.5 s. Prints the
latency of every token request during the run: median, p99 and worst, and the
worst among requests that overlapped a reload.
"""

import secrets
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from authsvc import accounts  # noqa: E402
from authsvc.app import create_app  # noqa: E402
from authsvc.config import Settings  # noqa: E402
from authsvc.services import build  # noqa: E402
from authsvc.services import open_keyring  # noqa: E402
from authsvc.store import open_store  # noqa: E402


def main(kind="files"):
    tmp = Path(tempfile.mkdtemp(prefix="authsvc-reload-"))
    settings = Settings().with_overrides(
        database_url=f"sqlite:///{tmp / 'db.sqlite'}",
        keys_dir=str(tmp / "keys"),
        key_store=kind,
        key_encryption_key=(secrets.token_bytes(32),),
    )
    store = open_store(settings.database_url)
    store.upgrade()
    admin = open_keyring(settings, manage=True)
    for _ in range(51):
        admin.rotate("RS256")
    print(
        f"{kind}: ring of {len(admin.keys())} keys ({sum(k.status.value == 'retired' for k in admin.keys())} retired)"
    )
    services = build(settings)
    app = create_app(services=services)
    record, client_secret = _make_client(services)
    latencies, reloads, stop = [], [], threading.Event()
    auth = _basic(record.client_id, client_secret)

    def serve():
        http = app.test_client()
        while not stop.is_set():
            started = time.perf_counter()
            response = http.post("/token", data={"grant_type": "client_credentials"}, headers=auth)
            assert response.status_code == 200, response.json
            latencies.append((started, time.perf_counter() - started))

    def rotate():
        # Another process, as the CLI is: key generation must not share this process's GIL.
        import multiprocessing

        context = multiprocessing.get_context("fork")
        while not stop.is_set():
            time.sleep(0.5)
            started = time.perf_counter()
            child = context.Process(target=_rotate_once, args=(settings,))
            child.start()
            child.join()
            # The watcher swaps within its 1 s interval: the window that can overlap a reload.
            reloads.append((started, time.perf_counter() + 1.1))

    threads = [threading.Thread(target=serve) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(3)
    quiet = [s for _, s in latencies]
    print(
        f"baseline, no rotation: {len(quiet)} requests, worst {max(quiet) * 1000:.1f} ms, "
        f"p99 {sorted(quiet)[int(len(quiet) * 0.99)] * 1000:.1f} ms"
    )
    latencies.clear()
    rotator = threading.Thread(target=rotate)
    rotator.start()
    time.sleep(10)
    stop.set()
    for thread in [*threads, rotator]:
        thread.join()
    times = sorted(seconds for _, seconds in latencies)
    during = [s for start, s in latencies if any(a <= start <= b for a, b in reloads)]
    print(
        f"{len(times)} token requests, {len(reloads)} rotations: median {statistics.median(times) * 1000:.1f} ms, "
        f"p99 {times[int(len(times) * 0.99)] * 1000:.1f} ms, worst {times[-1] * 1000:.1f} ms; "
        f"worst during a reload {max(during) * 1000:.1f} ms"
    )
    services.close()


def _rotate_once(settings):
    open_keyring(settings, manage=True).rotate("RS256")


def _make_client(services):
    client, secret = accounts.new_client("bench", now=time.time(), grant_types=("client_credentials",), scope="api")
    services.store.create_client(client)
    return client, secret


def _basic(client_id, secret):
    import base64

    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


if __name__ == "__main__":
    main(*sys.argv[1:])
