"""Exceptions raised by ferrostore.

Every failure of a public call raises a subclass of :class:`FerrostoreError` whose message
names the offending value and what was expected. The compiled core raises the same classes:
each Rust error variant maps onto exactly one of them.

Example:
    >>> from ferrostore import errors
    >>> issubclass(errors.NotFound, errors.FerrostoreError)
    True
"""

from __future__ import annotations

__all__ = [
    "AlreadyExists",
    "Conflict",
    "FerrostoreError",
    "InvalidArgument",
    "NotFound",
    "SchemaMismatch",
    "StorageError",
    "StorageFull",
]


class FerrostoreError(Exception):
    """Base class of every error ferrostore raises on purpose."""


class NotFound(FerrostoreError, LookupError):
    """A named object (view, entity, model, version, collection, run...) does not exist."""


class AlreadyExists(FerrostoreError):
    """An object with this name or id exists already and the call would not replace it."""


class InvalidArgument(FerrostoreError, ValueError):
    """An argument has the wrong type, shape or value."""


class SchemaMismatch(FerrostoreError, TypeError):
    """Data does not match the declared schema: a missing column, a wrong type, a null key."""


class Conflict(FerrostoreError):
    """A concurrent change or the current state prevents the operation; retrying may succeed."""


class StorageError(FerrostoreError, OSError):
    """The underlying storage failed: an unusable path, permissions, corruption, I/O."""


class StorageFull(StorageError):
    """The store reached its configured size (LMDB map size); nothing of the batch was written."""
