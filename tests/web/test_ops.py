"""Operations endpoints and housekeeping, in process."""

import pytest

from tests.conftest import basic_auth

METRICS_TOKEN = "metrics-token-for-tests-0123456789"


@pytest.fixture
def settings(settings):
    """/metrics is served on the main bind only behind a token (tests/web/test_metrics_access.py)."""
    return settings.with_overrides(metrics_token=METRICS_TOKEN)


def test_metrics_count_requests_by_endpoint_and_status(client, make_client):
    record, secret = make_client("svc", grant_types=("client_credentials",), redirect_uris=(), scope="api:read")
    token = client.post(
        "/token", data={"grant_type": "client_credentials"}, headers=basic_auth(record.client_id, secret)
    )
    client.post("/token", data={"grant_type": "client_credentials"}, headers=basic_auth(record.client_id, "wrong"))
    response = client.get("/metrics", headers={"Authorization": "Bearer " + METRICS_TOKEN})
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert 'authsvc_http_requests_total{endpoint="/token",status="200"}' in body
    assert 'authsvc_http_requests_total{endpoint="/token",status="401"}' in body
    assert "authsvc_http_request_seconds_bucket" in body
    # Labels are endpoints and statuses only: nothing a request carried.
    assert secret not in body and record.client_id not in body
    assert token.json["access_token"].split(".")[2] not in body


def test_healthz_is_up_whatever_the_store(client):
    assert client.get("/healthz").json == {"status": "ok"}


def test_housekeeping_purges_from_a_thread_of_its_own_not_from_requests(client, services, clock):
    """A purge can take a while on a large store: no request waits for it (it used to run in a teardown)."""
    import threading
    import time

    purges = []
    real = services.store.purge_expired
    services.store.purge_expired = lambda now: purges.append(threading.current_thread()) or real(now)
    services.housekeeping_interval = 0.05
    services.revocations.revoke_jtis([("old", clock() + 1)])
    clock.advance(services.settings.leeway + 2)

    client.get("/healthz")  # the first request starts the thread, in the process that serves
    deadline = time.monotonic() + 10
    while len(purges) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)

    assert len(purges) >= 2, "housekeeping did not run again after its interval"
    assert {thread.name for thread in purges} == {"authsvc-housekeeping"}
    assert real(clock()) == 0  # the expired entry went
    services.close()
    assert not any(thread.is_alive() for thread in purges)
