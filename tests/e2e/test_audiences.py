"""Access tokens are bound to the service that may accept them (RFC 8707 audiences).

Real processes on loopback: the session's gunicorn authsvc and two copies of
``examples/resource_server.py``, service A and service B, each verifying with its own
audience (its own URL, the example's default). A client registered for one service
gets tokens that the other refuses, whatever their scopes; a client registered with no
audience gets tokens for the issuer's own endpoints, which neither service accepts.
"""

import pytest
import requests

from tests.e2e.test_resource_server import POLL
from tests.e2e.test_resource_server import ResourceServer

CC = {"grant_type": "client_credentials"}
NOT_FOR_US = {"error": "invalid_token", "error_description": "the access token is not meant for this audience"}


@pytest.fixture(scope="module")
def issuer_url(sqlite_issuer):
    return sqlite_issuer.instances[0].url


@pytest.fixture(scope="module")
def services(issuer_url, tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("audiences")
    started = []
    try:
        for _ in range(2):
            started.append(ResourceServer(issuer_url, log_dir, poll=POLL))
        yield tuple(started)
    finally:
        for server in started:
            server.stop()


def service_client(deployment, *audiences: str) -> tuple[str, str]:
    args = ["--grant-type", "client_credentials", "--scope", "api:read api:admin"]
    for audience in audiences:
        args += ["--audience", audience]
    created = deployment.client(*args)
    return created["client_id"], created["client_secret"]


def token_for(issuer_url: str, auth: tuple[str, str], **form) -> requests.Response:
    return requests.post(issuer_url + "/token", data={**CC, **form}, auth=auth, timeout=10)


def access_token(issuer_url: str, auth: tuple[str, str], **form) -> str:
    response = token_for(issuer_url, auth, **form)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def assert_not_for_this_service(response: requests.Response) -> None:
    assert response.status_code == 401, f"accepted: {response.status_code} {response.text[:200]}"
    assert response.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
    assert response.json() == NOT_FOR_US


def test_a_client_credentials_token_for_service_a_cannot_be_used_at_service_b(sqlite_issuer, issuer_url, services):
    service_a, service_b = services
    assert service_a.audience != service_b.audience
    caller_a = service_client(sqlite_issuer, service_a.audience)
    caller_b = service_client(sqlite_issuer, service_b.audience)

    # No resource parameter: the client's registered audience is the default.
    for_a = access_token(issuer_url, caller_a, scope="api:admin")
    for_b = access_token(issuer_url, caller_b, scope="api:admin")

    served = service_a.hello(for_a)
    assert served.status_code == 200, served.text
    assert served.json()["client_id"] == caller_a[0] and served.json()["scopes"] == ["api:admin"]
    assert service_b.hello(for_b).status_code == 200
    # Each service refuses the other's token, admin scope or not.
    assert_not_for_this_service(service_b.hello(for_a))
    assert_not_for_this_service(service_a.hello(for_b))


def test_a_client_without_an_audience_gets_tokens_no_service_accepts(sqlite_issuer, issuer_url, services):
    caller = service_client(sqlite_issuer)
    token = access_token(issuer_url, caller, scope="api:admin")

    for service in services:
        assert_not_for_this_service(service.hello(token))
    # It is good at the issuer's own endpoints: introspection by the client that holds it.
    introspected = requests.post(issuer_url + "/introspect", data={"token": token}, auth=caller, timeout=10).json()
    assert introspected["active"] is True and introspected["aud"] == issuer_url


def test_a_client_of_both_services_names_the_other_one_with_resource(sqlite_issuer, issuer_url, services):
    service_a, service_b = services
    caller = service_client(sqlite_issuer, service_a.audience, service_b.audience)

    default = access_token(issuer_url, caller)
    assert service_a.hello(default).status_code == 200
    assert_not_for_this_service(service_b.hello(default))

    for_b = access_token(issuer_url, caller, resource=service_b.audience)
    assert service_b.hello(for_b).status_code == 200
    assert_not_for_this_service(service_a.hello(for_b))

    unknown = token_for(issuer_url, caller, resource=issuer_url)
    assert unknown.status_code == 400 and unknown.json()["error"] == "invalid_target"
