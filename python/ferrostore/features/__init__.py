"""Feature store: the LMDB online store, and (growing) a Feast-shaped API over it.

Example:
    >>> from ferrostore.features import OnlineStore
"""

from __future__ import annotations

from ferrostore.features.online_store import (
    FieldStatus,
    OnlineRead,
    OnlineStore,
    ViewSchema,
    WriteSummary,
)

__all__ = ["FieldStatus", "OnlineRead", "OnlineStore", "ViewSchema", "WriteSummary"]
