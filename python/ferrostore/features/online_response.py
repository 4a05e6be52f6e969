"""The result of :meth:`FeatureStore.get_online_features`: values plus per-value status."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from ferrostore.features.online_store import FieldStatus

__all__ = ["OnlineResponse"]


def _as_list(values: Any) -> list[Any]:
    if type(values) is list:
        return list(values)
    if isinstance(values, pa.Array | pa.ChunkedArray):
        return values.to_pylist()
    return list(values)


class OnlineResponse:
    """Online feature values, shaped like Feast's ``OnlineResponse``.

    Columns are the entity keys of the request followed by one column per feature (named
    ``feature`` or ``view__feature``). Unlike Feast's SQLite/Redis stores, a value older than
    its view's ttl is returned as null with status ``OUTSIDE_MAX_AGE``.

    Args:
        columns: Column name to values (lists or Arrow arrays), entity keys first.
        statuses: Feature column name to one status per entity row.
        feature_columns: The names of the feature columns, in order.
    """

    def __init__(
        self,
        columns: Mapping[str, Any],
        statuses: Mapping[str, Any],
        feature_columns: list[str],
    ) -> None:
        self._columns = dict(columns)
        self._statuses = dict(statuses)
        self.feature_columns = feature_columns
        self._lists = False

    @classmethod
    def _of(
        cls, columns: dict[str, Any], statuses: dict[str, Any], feature_columns: list[str]
    ) -> OnlineResponse:
        """A response owning dicts of lists nobody else holds (no copies): the serving path."""
        response = cls.__new__(cls)
        response._columns = columns
        response._statuses = statuses
        response.feature_columns = feature_columns
        response._lists = True
        return response

    @property
    def statuses(self) -> dict[str, list[FieldStatus]]:
        """Feature column name to the :class:`FieldStatus` of each entity row's value."""
        return {
            name: [FieldStatus(int(s)) for s in _as_list(values)]
            for name, values in self._statuses.items()
        }

    def to_dict(self, *, include_status: bool = False) -> dict[str, list[Any]]:
        """Feast's column-oriented shape: ``{"customer_id": [1001], "feature": [42], ...}``.

        Args:
            include_status: Also add ``<feature>__status`` columns holding status names
                (``PRESENT``, ``NULL_VALUE``, ``NOT_FOUND``, ``OUTSIDE_MAX_AGE``).

        Returns:
            Column name to a list with one value per entity row.
        """
        if self._lists:  # every column a list: copied without checks
            out = {name: values.copy() for name, values in self._columns.items()}
        else:
            out = {name: _as_list(values) for name, values in self._columns.items()}
        if include_status:
            for name, statuses in self.statuses.items():
                out[f"{name}__status"] = [s.name for s in statuses]
        return out

    def to_arrow(self) -> pa.Table:
        """The values as a :class:`pyarrow.Table`."""
        arrays = {
            name: values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(values)
            for name, values in self._columns.items()
        }
        return pa.table(arrays)

    def to_df(self) -> Any:
        """The values as a pandas DataFrame."""
        return self.to_arrow().to_pandas()

    def __repr__(self) -> str:
        return f"OnlineResponse({self.to_dict()!r})"
