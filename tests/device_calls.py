"""Helpers for the device authorization grant tests (RFC 8628): a device client, its
requests to ``/device_authorization`` and ``/token``, and the user's steps at ``/device``.
"""

import re

from tests.oauth_calls import client_auth

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
FORM = "application/x-www-form-urlencoded"


def make_device_client(make_client, *, public=True, grant_types=(DEVICE_GRANT, "refresh_token"), **kwargs):
    """A TV app: no redirect URI, the device grant (and refresh tokens, under the offline_access rule)."""
    kwargs.setdefault("name", "Living-room TV")
    name = kwargs.pop("name")
    return make_client(name, redirect_uris=(), grant_types=grant_types, public=public, **kwargs)


def start(client, rp, secret, **fields):
    """POST /device_authorization; the raw response."""
    headers, form = client_auth(rp, secret)
    return client.post("/device_authorization", data={**form, **fields}, headers=headers, content_type=FORM)


def started(client, rp, secret, scope="openid profile offline_access", **fields) -> dict:
    response = start(client, rp, secret, scope=scope, **fields)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json


def poll(client, rp, secret, device_code, **fields):
    """One poll of the token endpoint with the device code."""
    headers, form = client_auth(rp, secret)
    data = {"grant_type": DEVICE_GRANT, "device_code": device_code, **form, **fields}
    return client.post("/token", data=data, headers=headers)


def csrf_of(response) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', response.get_data(as_text=True))
    assert match, "no csrf_token on the page: " + response.get_data(as_text=True)[:300]
    return match.group(1)


def enter_code(client, user_code):
    """The signed-in user opens /device and submits ``user_code``; the consent page (or an error)."""
    page = client.get("/device")
    return client.post("/device", data={"csrf_token": csrf_of(page), "user_code": user_code})


def decide(client, user_code, decision="allow"):
    """Enter the code, then press Allow or Deny; the final response."""
    consent = enter_code(client, user_code)
    assert consent.status_code == 200, consent.get_data(as_text=True)[:500]
    return client.post("/device", data={"csrf_token": csrf_of(consent), "user_code": user_code, "decision": decision})
