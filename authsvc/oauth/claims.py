"""Which user claims each scope releases (OpenID Connect Core 1.0 §5.4)."""

SCOPE_DESCRIPTIONS = {
    "openid": "Sign you in and know who you are",
    "profile": "See your username",
    "email": "See your email address",
    "offline_access": "Stay signed in and act for you while you are away",
}


def user_claims(user, scope: str) -> dict:
    """Return the claims ``scope`` allows about ``user`` (``sub`` always)."""
    scopes = set((scope or "").split())
    claims = {"sub": user.sub}
    if "profile" in scopes:
        claims["preferred_username"] = user.username
        claims["name"] = user.username
    if "email" in scopes and user.email:
        claims["email"] = user.email
        # authsvc does not verify addresses; say so rather than imply it.
        claims["email_verified"] = False
    return claims


def describe_scopes(scope: str) -> list[tuple[str, str]]:
    """Return ``(scope, words)`` pairs for the consent page."""
    return [(s, SCOPE_DESCRIPTIONS.get(s, f"Use the “{s}” permission")) for s in scope.split()]
