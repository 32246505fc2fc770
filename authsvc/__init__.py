"""authsvc: a stateless OAuth 2.0 / OpenID Connect issuer.

Nothing is imported here so that ``import authsvc.verify`` in a downstream
service stays light: no Flask, no SQLAlchemy, no Authlib.
"""

__version__ = "0.1.0"
