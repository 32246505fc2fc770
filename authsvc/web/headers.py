"""Security headers on every response (SECURITY.md B.31–33), and CORS where browser apps call (``cors.py``)."""

CSP = "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; frame-ancestors 'none'"


def init_app(app) -> None:
    from .cors import add_cors_headers

    app.after_request(add_security_headers)
    app.after_request(add_cors_headers)


def add_security_headers(response):
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    # Pages, token responses and errors are never cached; public documents say otherwise themselves.
    headers.setdefault("Cache-Control", "no-store")
    if "Cookie" in headers.get("Vary", "") or response.headers.getlist("Set-Cookie"):
        headers.add("Vary", "Cookie")
    return response
