"""Persistence for authsvc: users, clients, codes, refresh tokens, revocations, consents, counters.

``open_store(url)`` returns a ``Store`` over SQLite (the default, one host) or
PostgreSQL (several instances). Its vocabulary follows dex's storage
interface: create_/get_/list_/update_(fn)/delete_ per record, NotFound and
AlreadyExists from ``authsvc.errors``, and StoreUnavailable whenever the
database cannot answer. The few operations that must happen exactly once
across instances (consume_code, spend_refresh_token, acquire_entry) are each a single
conditional statement. Nothing here knows about OAuth or HTTP; one
conformance suite (tests/test_store.py) runs against both backends.
"""

from .records import AuthorizationCode
from .records import Client
from .records import Consent
from .records import RefreshToken
from .records import Revocation
from .records import RevocationPage
from .records import User
from .sql import Store
from .sql import open_store

__all__ = [
    "AuthorizationCode",
    "Client",
    "Consent",
    "RefreshToken",
    "Revocation",
    "RevocationPage",
    "Store",
    "User",
    "open_store",
]
