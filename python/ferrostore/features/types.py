"""Feature value types, named as Feast's ``feast.types``.

Each type knows its online store type name and its Arrow type, and whether an Arrow column
found in a source can hold it.

Example:
    >>> from ferrostore.features.types import Array, Float32, Int64
    >>> Int64.online_type, Array(Float32).online_type
    ('int64', 'list_float32')
"""

from __future__ import annotations

import abc
import enum
from typing import Any

import pyarrow as pa
import pyarrow.types as pat

from ferrostore.errors import InvalidArgument

__all__ = [
    "Array",
    "Bool",
    "Bytes",
    "FeastType",
    "Float32",
    "Float64",
    "Int32",
    "Int64",
    "PrimitiveFeastType",
    "String",
    "UnixTimestamp",
    "ValueType",
    "from_arrow_type",
    "from_name",
]


class FeastType(abc.ABC):
    """Base class of feature value types."""

    name: str

    @property
    @abc.abstractmethod
    def online_type(self) -> str:
        """The online store's name of this type (``int64``, ``list_float32``...)."""

    @abc.abstractmethod
    def to_arrow(self) -> pa.DataType:
        """The Arrow type of this value type."""

    @abc.abstractmethod
    def accepts(self, arrow_type: pa.DataType) -> bool:
        """Whether a source column of ``arrow_type`` can be read as this type.

        Args:
            arrow_type: The column's Arrow type.

        Returns:
            ``True`` for the same kind of value: integers for integer types, integers or
            floats for float types, strings, binaries, booleans, timestamps, and lists of
            an accepted item type.
        """

    def __repr__(self) -> str:
        return self.name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FeastType) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)


def _is_int(t: pa.DataType) -> bool:
    return pat.is_integer(t)


def _is_float(t: pa.DataType) -> bool:
    return pat.is_floating(t) or pat.is_integer(t)


def _is_string(t: pa.DataType) -> bool:
    return pat.is_string(t) or pat.is_large_string(t) or pat.is_string_view(t)


def _is_bytes(t: pa.DataType) -> bool:
    return pat.is_binary(t) or pat.is_large_binary(t) or pat.is_fixed_size_binary(t)


_KINDS: dict[str, tuple[str, pa.DataType, Any]] = {
    "Int32": ("int32", pa.int32(), _is_int),
    "Int64": ("int64", pa.int64(), _is_int),
    "Float32": ("float32", pa.float32(), _is_float),
    "Float64": ("float64", pa.float64(), _is_float),
    "String": ("string", pa.string(), _is_string),
    "Bytes": ("bytes", pa.binary(), _is_bytes),
    "Bool": ("bool", pa.bool_(), pat.is_boolean),
    "UnixTimestamp": ("timestamp", pa.timestamp("us", tz="UTC"), pat.is_timestamp),
}


class PrimitiveFeastType(FeastType):
    """A scalar value type such as :data:`Int64`.

    Args:
        name: One of ``Int32``, ``Int64``, ``Float32``, ``Float64``, ``String``, ``Bytes``,
            ``Bool``, ``UnixTimestamp``.
    """

    def __init__(self, name: str) -> None:
        if name not in _KINDS:
            raise InvalidArgument(f"unknown value type {name!r}: expected one of {list(_KINDS)}")
        self.name = name

    @property
    def online_type(self) -> str:
        """The online store's name of this type."""
        return _KINDS[self.name][0]

    def to_arrow(self) -> pa.DataType:
        """The Arrow type of this value type."""
        return _KINDS[self.name][1]

    def accepts(self, arrow_type: pa.DataType) -> bool:
        """Whether a source column of ``arrow_type`` can be read as this type."""
        if pat.is_dictionary(arrow_type):
            arrow_type = arrow_type.value_type
        return bool(_KINDS[self.name][2](arrow_type))


class Array(FeastType):
    """A list of a primitive type, such as ``Array(Float32)`` for embeddings.

    Args:
        base_type: The item type: ``Int64``, ``Float32``, ``Float64`` or ``String``.

    Raises:
        InvalidArgument: Another item type (the online store cannot hold it).
    """

    def __init__(self, base_type: FeastType) -> None:
        if not isinstance(base_type, PrimitiveFeastType) or base_type.name not in (
            "Int64",
            "Float32",
            "Float64",
            "String",
        ):
            raise InvalidArgument(
                f"Array({base_type!r}) is not supported: expected Array(Int64), "
                "Array(Float32), Array(Float64) or Array(String)"
            )
        self.base_type = base_type
        self.name = f"Array({base_type.name})"

    @property
    def online_type(self) -> str:
        """The online store's name of this type."""
        return f"list_{self.base_type.online_type}"

    def to_arrow(self) -> pa.DataType:
        """The Arrow type of this value type."""
        return pa.list_(self.base_type.to_arrow())

    def accepts(self, arrow_type: pa.DataType) -> bool:
        """Whether a source column of ``arrow_type`` can be read as this type."""
        if not (
            pat.is_list(arrow_type)
            or pat.is_large_list(arrow_type)
            or pat.is_fixed_size_list(arrow_type)
        ):
            return False
        return self.base_type.accepts(arrow_type.value_type)


Int32 = PrimitiveFeastType("Int32")
"""32-bit signed integer."""
Int64 = PrimitiveFeastType("Int64")
"""64-bit signed integer."""
Float32 = PrimitiveFeastType("Float32")
"""32-bit float."""
Float64 = PrimitiveFeastType("Float64")
"""64-bit float."""
String = PrimitiveFeastType("String")
"""UTF-8 string."""
Bytes = PrimitiveFeastType("Bytes")
"""Binary value."""
Bool = PrimitiveFeastType("Bool")
"""Boolean."""
UnixTimestamp = PrimitiveFeastType("UnixTimestamp")
"""A point in time (UTC, microseconds)."""


class ValueType(enum.Enum):
    """Entity key value types, as Feast's ``ValueType`` (for ``Entity(value_type=...)``)."""

    INT32 = "Int32"
    INT64 = "Int64"
    STRING = "String"
    BYTES = "Bytes"

    def to_type(self) -> PrimitiveFeastType:
        """The matching value type."""
        return PrimitiveFeastType(self.value)


def from_name(name: str) -> FeastType:
    """Parse a type name as written by ``repr`` (``Int64``, ``Array(Float32)``).

    Args:
        name: The type's name.

    Returns:
        The type.

    Raises:
        InvalidArgument: Not a known type name.
    """
    if not isinstance(name, str):
        raise InvalidArgument(f"type name {name!r} is not a string")
    if name.startswith("Array(") and name.endswith(")"):
        return Array(from_name(name[6:-1]))
    return PrimitiveFeastType(name)


def from_arrow_type(arrow_type: pa.DataType) -> FeastType | None:
    """The value type that best holds an Arrow type, or ``None`` when none does.

    Args:
        arrow_type: An Arrow column type.

    Returns:
        ``Int64`` for integers, ``Float64``/``Float32`` for floats, and so on.
    """
    if pat.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    if pat.is_int32(arrow_type):
        return Int32
    if pat.is_integer(arrow_type):
        return Int64
    if pat.is_float32(arrow_type):
        return Float32
    if pat.is_floating(arrow_type):
        return Float64
    if pat.is_boolean(arrow_type):
        return Bool
    if pat.is_timestamp(arrow_type):
        return UnixTimestamp
    if _is_string(arrow_type):
        return String
    if _is_bytes(arrow_type):
        return Bytes
    if pat.is_list(arrow_type) or pat.is_large_list(arrow_type):
        item = from_arrow_type(arrow_type.value_type)
        if item is Int32:
            item = Int64
        try:
            return Array(item) if item is not None else None
        except InvalidArgument:
            return None
    return None
