"""authsvc.web.proxies: which X-Forwarded-For hop is the client (ProxyFix's x_for, chosen per request)."""

import pytest

from authsvc.web.proxies import TrustedProxies

TRUSTED = ("10.0.0.0/8", "fd00::/8")


def client_address(peer, forwarded=None):
    seen = {}

    def app(environ, start_response):
        seen.update(environ)
        return []

    environ = {"REMOTE_ADDR": peer, "REQUEST_METHOD": "GET", "wsgi.url_scheme": "http", "HTTP_HOST": "issuer"}
    if forwarded is not None:
        environ["HTTP_X_FORWARDED_FOR"] = forwarded
    TrustedProxies(app, TRUSTED)(environ, lambda *a: None)
    return seen["REMOTE_ADDR"]


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        # Not from a proxy: the header is the client's own words.
        ("203.0.113.9", "198.51.100.1", "203.0.113.9"),
        ("203.0.113.9", "10.0.0.1", "203.0.113.9"),
        # From a proxy: the rightmost hop that is not a proxy.
        ("10.0.0.7", None, "10.0.0.7"),
        ("10.0.0.7", "198.51.100.7", "198.51.100.7"),
        ("10.0.0.7", "1.1.1.1, 198.51.100.7", "198.51.100.7"),
        ("10.0.0.7", "1.1.1.1, 198.51.100.7, 10.0.0.3, 10.9.9.9", "198.51.100.7"),
        ("10.0.0.7", "10.0.0.2, 10.0.0.3", "10.0.0.2"),
        ("10.0.0.7", "2001:db8::1, fd00::5", "2001:db8::1"),
        ("::ffff:10.0.0.7", "198.51.100.7", "198.51.100.7"),
        # A hop that is no address: the header is not believed.
        ("10.0.0.7", "198.51.100.7, unknown", "10.0.0.7"),
        ("10.0.0.7", "evil\r\nPOST /token, 10.0.0.3", "10.0.0.7"),
        ("10.0.0.7", "", "10.0.0.7"),
    ],
)
def test_the_client_is_the_rightmost_untrusted_hop(peer, forwarded, client):
    assert client_address(peer, forwarded) == client
