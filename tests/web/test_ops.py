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


def test_requests_purge_expired_rows_at_most_once_an_interval(client, services, clock):
    services.revocations.revoke_jtis([("old", clock() + 1)])
    clock.advance(services.settings.leeway + 2)
    client.get("/healthz")
    # The entry was purged by the request's housekeeping: nothing is left to purge.
    assert services.store.purge_expired(clock()) == 0
    services.revocations.revoke_jtis([("next", clock() + 1)])
    clock.advance(services.settings.leeway + 2)
    client.get("/healthz")
    # Within the interval a request does not purge again.
    assert services.store.purge_expired(clock()) == 1
