"""Domain errors of the server side.

    AuthsvcError
    ├── ConfigError        a bad AUTHSVC_* value; start-up stops with its message
    ├── KeyRingError       the key ring is missing, unreadable or malformed
    ├── StoreUnavailable   the shared store cannot be reached right now (answer 503)
    ├── NotFound           a record that was asked for does not exist
    ├── AlreadyExists      a record with that identity exists already
    └── Conflict           a compare-and-set lost: someone else changed the record first

Every message is one line meant for an operator: it names the thing that is
wrong and never carries a secret.
"""


class AuthsvcError(Exception):
    """Base of every error authsvc raises on purpose."""


class ConfigError(AuthsvcError):
    """A configuration value is invalid."""


class KeyRingError(AuthsvcError):
    """The key ring cannot be used."""


class StoreUnavailable(AuthsvcError):
    """The store did not answer."""


class NotFound(AuthsvcError):
    """The record does not exist."""


class AlreadyExists(AuthsvcError):
    """The record exists already."""


class Conflict(AuthsvcError):
    """A concurrent change won."""
