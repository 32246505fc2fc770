"""The client's address behind reverse proxies named by CIDR (AUTHSVC_TRUSTED_PROXIES).

werkzeug's ``ProxyFix`` trusts a fixed number of ``X-Forwarded-For`` values
(``x_for=N``: the N-th from the right becomes ``REMOTE_ADDR``). Proxies here
are named by address instead, so for each request ``TrustedProxies`` works out
that N and lets ``ProxyFix`` apply it:

- a request whose socket peer is not a trusted proxy keeps its peer address,
  whatever ``X-Forwarded-For`` says (the client wrote it);
- from a trusted peer, the values are read from the right while each one is
  itself a trusted proxy; the first that is not is the client. When every
  value is a trusted proxy, the leftmost is the best known.

The chosen value must be an IP address, or the peer stays: a well-behaved
proxy appends the address it saw, so anything else means the header is not
to be believed. Only ``X-Forwarded-For`` is used: ``Host``,
``X-Forwarded-Host``/``-Proto``/``-Port``/``-Prefix`` never change a URL the
issuer builds (SECURITY.md B.35).
"""

import ipaddress

from werkzeug.http import parse_list_header
from werkzeug.middleware.proxy_fix import ProxyFix


class TrustedProxies:
    """WSGI middleware: ``REMOTE_ADDR`` becomes the rightmost ``X-Forwarded-For`` hop that is not a trusted proxy."""

    def __init__(self, app, cidrs):
        self.app = app
        self.networks = tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)

    def __call__(self, environ, start_response):
        hops = self.trusted_hops(environ)
        if not hops:
            return self.app(environ, start_response)
        only_for = ProxyFix(self.app, x_for=hops, x_proto=0, x_host=0, x_port=0, x_prefix=0)
        return only_for(environ, start_response)

    def trusted_hops(self, environ) -> int:
        """ProxyFix's ``x_for`` for this request: how many values from the right to step over, 0 for none."""
        if not self.is_trusted(environ.get("REMOTE_ADDR")):
            return 0
        values = parse_list_header(environ.get("HTTP_X_FORWARDED_FOR", ""))
        hops = 1
        while hops < len(values) and self.is_trusted(values[-hops]):
            hops += 1
        if hops > len(values) or _address(values[-hops]) is None:
            return 0
        return hops

    def is_trusted(self, value: str | None) -> bool:
        address = _address(value)
        return address is not None and any(address in network for network in self.networks)


def _address(value: str | None):
    try:
        address = ipaddress.ip_address((value or "").strip())
    except ValueError:
        return None
    # A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; compare them as IPv4.
    return getattr(address, "ipv4_mapped", None) or address
