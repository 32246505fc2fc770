"""Security headers on every response (SECURITY.md B.31–33), and CORS where browser apps call (``cors.py``)."""

CSP = "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'"
# Each is added unless the view set its own.
DEFAULTS = (
    ("Content-Security-Policy", CSP),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    # Pages, token responses and errors are never cached; public documents say otherwise themselves.
    ("Cache-Control", "no-store"),
)
_DEFAULTS_LOWER = tuple((name.lower(), name, value) for name, value in DEFAULTS)


def init_app(app) -> None:
    from .cors import add_cors_headers

    app.after_request(add_security_headers)
    app.after_request(add_cors_headers)


def add_security_headers(response):
    headers = response.headers
    # One pass over the headers the view set (Headers.setdefault scans them three times per name).
    present = {name.lower() for name, _ in headers.items()}
    for lower, name, value in _DEFAULTS_LOWER:
        if lower not in present:
            headers.add(name, value)
    if "set-cookie" in present or ("vary" in present and "Cookie" in headers.get("Vary", "")):
        headers.add("Vary", "Cookie")
    return response
