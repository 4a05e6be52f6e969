"""Chroma's input rules, checked in Python before anything reaches the engine.

Messages follow Chroma's wording ("Expected IDs to be unique, found duplicates of: a in add.")
and every failure raises :class:`ferrostore.errors.InvalidArgument`. The engine validates
filters again (it is the authority on them); these checks exist so that messages read like
Chroma's and so that nothing is embedded or written for a call that is going to fail.
"""

from __future__ import annotations

import json
import math
import numbers
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ferrostore.errors import InvalidArgument
from ferrostore.vectors.types import INCLUDE_VALUES

__all__ = [
    "COLLECTION_PARAM_KEYS",
    "check_collection_metadata",
    "check_collection_name",
    "check_documents",
    "check_ids",
    "check_include",
    "check_limit_offset",
    "check_metadatas",
    "check_n_results",
    "context",
    "dump_metadatas",
    "normalize_embeddings",
    "one_or_many",
]

_RESERVED_METADATA_KEY = "chroma:document"
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{1,510}[a-zA-Z0-9]$")
_IPV4_RE = re.compile(r"^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$")
_FLOAT32 = np.dtype(np.float32)
# Valid include lists already seen, by their items and whether distances are allowed; bounded,
# as callers may repeat items.
_CHECKED_INCLUDES: dict[tuple[tuple[str, ...], bool], tuple[str, ...]] = {}
_CHECKED_INCLUDES_MAX = 256

QUANTIZATION_KEY = "ferrostore:quantization"
"""Collection metadata key choosing how the graph stores vectors (ferrostore's own)."""
_QUANTIZATIONS = ("bf16", "f16", "f32", "i8")

COLLECTION_PARAM_KEYS: dict[str, str] = {
    "hnsw:space": "space",
    "hnsw:M": "m",
    "hnsw:construction_ef": "ef_construction",
    "hnsw:search_ef": "ef_search",
    QUANTIZATION_KEY: "quantization",
}
"""Collection metadata keys that configure the index, and the engine argument of each."""

# Chroma accepts these tuning keys of hnswlib; they mean nothing to our engine and are kept as
# plain metadata. Any other "hnsw:" key is a typo and is refused.
_IGNORED_HNSW_KEYS = frozenset(
    ("hnsw:num_threads", "hnsw:batch_size", "hnsw:sync_threshold", "hnsw:resize_factor")
)
_SPACES = ("cosine", "l2", "ip")


class context:  # lower case: used like a function, ``with context("add"):``
    """Suffix the message of an ``InvalidArgument`` raised inside with `` in <operation>.``.

    Chroma names the call the same way, which matters when several calls share a helper. A
    class rather than a ``contextlib.contextmanager``: it wraps every call, and a generator
    costs a microsecond more.
    """

    __slots__ = ("operation",)

    def __init__(self, operation: str) -> None:
        self.operation = operation

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: Any
    ) -> None:
        if kind is not None and issubclass(kind, InvalidArgument):
            raise in_operation(err, self.operation) from None


def in_operation(err: BaseException | None, operation: str) -> InvalidArgument:
    """The ``InvalidArgument`` that :class:`context` raises for ``err`` in ``operation``."""
    return InvalidArgument(f"{err} in {operation}.")


def _short(value: object, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_int(value: object) -> bool:
    if type(value) is int:  # the common case, without the slower abstract-class check
        return True
    return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)


def one_or_many(value: Any) -> list[Any] | None:
    """Wrap a single value in a list, as Chroma does (a str or a dict is one value).

    Lists pass through; tuples become lists; ``None`` stays ``None``.
    """
    if value is None:
        return None
    if isinstance(value, list):
        return value
    if isinstance(value, tuple):
        return list(value)
    return [value]


def check_ids(ids: Any) -> list[str]:
    """Validate ids: a non-empty list of non-empty, unique strings (a single str is one id).

    Raises:
        InvalidArgument: The ids are not a list of strings, empty, or have duplicates.
    """
    listed = one_or_many(ids)
    if listed is None or not isinstance(ids, str | list | tuple):
        raise InvalidArgument(f"Expected IDs to be a list, got {type(ids).__name__} as IDs")
    if not listed:
        raise InvalidArgument("Expected IDs to be a non-empty list, got 0 IDs")
    for id_ in listed:
        if not isinstance(id_, str):
            raise InvalidArgument(
                f"Expected ID to be a str, got {_short(id_)} which is a {type(id_).__name__}"
            )
        if not id_:
            raise InvalidArgument("Expected ID to be a non-empty str, got ''")
    if len(set(listed)) != len(listed):
        seen: set[str] = set()
        dups: dict[str, None] = {}
        for id_ in listed:
            if id_ in seen:
                dups[id_] = None
            seen.add(id_)
        unique = list(dups)
        shown = ", ".join(unique[:10]) + (", ..." if len(unique) > 10 else "")
        raise InvalidArgument(
            f"Expected IDs to be unique, found {len(unique)} duplicated IDs: {shown}"
        )
    return listed


def normalize_embeddings(
    embeddings: Any, what: str = "embeddings", *, check_finite: bool = True
) -> NDArray[np.float32]:
    """Turn one embedding or many (lists, arrays, lists of arrays) into a float32 (n, d) array.

    Args:
        embeddings: The embeddings as given.
        what: Their name in error messages.
        check_finite: Refuse NaN and infinity here; ``False`` where the engine refuses them
            itself (queries), which saves a pass over the values.

    Raises:
        InvalidArgument: Empty, ragged, non-numeric, or containing NaN or infinity, or values
            beyond the float32 range.
    """
    if (
        type(embeddings) is np.ndarray
        and embeddings.dtype is _FLOAT32
        and embeddings.ndim == 2
        and embeddings.size != 0
        and embeddings.flags.c_contiguous
        and not check_finite
    ):
        return embeddings  # what queries pass: nothing to convert or check
    if isinstance(embeddings, np.ndarray):
        array = embeddings
        if array.ndim == 1:
            array = array[np.newaxis, :]
    elif isinstance(embeddings, list | tuple):
        if len(embeddings) == 0:
            raise InvalidArgument(f"Expected {what} to be a non-empty list or numpy array, got []")
        first = embeddings[0]
        if isinstance(first, numbers.Real) and not isinstance(first, bool | np.bool_):
            embeddings = [embeddings]  # one embedding given as a flat list of numbers
        rows = embeddings
        lengths = {len(row) if isinstance(row, Sequence | np.ndarray) else -1 for row in rows}
        if -1 in lengths:
            raise InvalidArgument(
                f"Expected {what} to be a list of floats or ints, a list of lists, a numpy "
                f"array, or a list of numpy arrays, got {_short(embeddings)}"
            )
        if len(lengths) > 1:
            raise InvalidArgument(
                f"Expected every embedding to have the same dimension, got dimensions "
                f"{sorted(lengths)}"
            )
        try:
            array = np.asarray(rows)
        except (TypeError, ValueError) as err:
            raise InvalidArgument(f"Expected {what} to be numeric, got {_short(rows)}") from err
    else:
        raise InvalidArgument(
            f"Expected {what} to be a list of floats or ints, a list of lists, a numpy array, "
            f"or a list of numpy arrays, got {type(embeddings).__name__}"
        )
    if array.ndim != 2:
        raise InvalidArgument(
            f"Expected {what} to be 1-D (one embedding) or 2-D (several), got an array of "
            f"shape {array.shape}"
        )
    if array.shape[0] == 0:
        raise InvalidArgument(f"Expected {what} to be a non-empty list or numpy array, got []")
    if array.shape[1] == 0:
        raise InvalidArgument(
            f"Expected each embedding in the {what} to have at least 1 value, got 0 values"
        )
    if array.dtype.kind not in "iuf":
        raise InvalidArgument(
            f"Expected each value in the {what} to be an int or a float, got values of dtype "
            f"{array.dtype}"
        )
    if array.dtype == np.float32:
        converted = np.ascontiguousarray(array)
    else:  # values beyond the float32 range become infinity, refused below
        with np.errstate(over="ignore", invalid="ignore"):
            converted = np.ascontiguousarray(array, dtype=np.float32)
    if check_finite:
        require_finite(converted, what)
    return converted


def require_finite(embeddings: NDArray[np.float32], what: str = "embeddings") -> None:
    """Refuse NaN and infinity (float32 embeddings, one per row).

    Raises:
        InvalidArgument: Naming the first row that holds one.
    """
    if not np.isfinite(embeddings).all():
        bad_row = int(np.nonzero(~np.isfinite(embeddings).all(axis=1))[0][0])
        raise InvalidArgument(
            f"Expected {what} to be finite float32 values, got NaN, infinity or a value beyond "
            f"the float32 range in embedding {bad_row}"
        )


def check_documents(documents: Any, *, nullable: bool) -> list[str | None] | None:
    """Validate documents: a list of strings (``None`` items allowed when ``nullable``).

    Raises:
        InvalidArgument: Not a list of strings, or empty.
    """
    listed = one_or_many(documents)
    if listed is None:
        return None
    if not listed:
        raise InvalidArgument("Expected documents to be a non-empty list, got 0 documents")
    for document in listed:
        if document is None and nullable:
            continue
        if not isinstance(document, str):
            raise InvalidArgument(
                f"Expected document to be a str, got {_short(document)} which is a "
                f"{type(document).__name__}"
            )
    return listed


def _check_metadata_value(key: str, value: Any, *, allow_none: bool, what: str) -> None:
    kind = type(value)
    # Plain Python scalars first: the abstract-class checks below cost more than the rest.
    if kind is str or kind is bool:
        return
    if kind is int and _INT64_MIN <= value <= _INT64_MAX:
        return
    if kind is float and math.isfinite(value):
        return
    if value is None:
        if allow_none:
            return
        raise InvalidArgument(
            f"Expected {what} value to be a str, int, float or bool, got None for key "
            f"{key!r} (None deletes a key in update only)"
        )
    if isinstance(value, bool | np.bool_ | str):
        return
    if _is_int(value):
        if not _INT64_MIN <= int(value) <= _INT64_MAX:
            raise InvalidArgument(
                f"Expected {what} int value for key {key!r} to fit in 64 bits, got {value}"
            )
        return
    if isinstance(value, numbers.Real):
        if not math.isfinite(float(value)):
            raise InvalidArgument(
                f"Expected {what} float value for key {key!r} to be finite, got {value}"
            )
        return
    raise InvalidArgument(
        f"Expected {what} value to be a str, int, float or bool, got {_short(value)} which is "
        f"a {type(value).__name__} for key {key!r}"
    )


def check_metadata(metadata: Any, *, allow_none_values: bool, what: str = "metadata") -> None:
    """Validate one metadata dict: non-empty, str keys, scalar values.

    Raises:
        InvalidArgument: Not a dict, empty, a non-str or reserved key, or a bad value.
    """
    if type(metadata) is not dict and not isinstance(metadata, Mapping):
        raise InvalidArgument(
            f"Expected {what} to be a dict or None, got {type(metadata).__name__} as {what}"
        )
    if len(metadata) == 0:
        raise InvalidArgument(f"Expected {what} to be a non-empty dict, got 0 metadata attributes")
    for key, value in metadata.items():
        kind = type(value)
        # The common case inline: a call per value costs more than its checks.
        if (
            type(key) is str
            and key != _RESERVED_METADATA_KEY
            and (
                kind is str
                or kind is bool
                or (kind is float and math.isfinite(value))
                or (kind is int and _INT64_MIN <= value <= _INT64_MAX)
            )
        ):
            continue
        if not isinstance(key, str):
            raise InvalidArgument(
                f"Expected {what} key to be a str, got {_short(key)} which is a "
                f"{type(key).__name__}"
            )
        if key == _RESERVED_METADATA_KEY:
            raise InvalidArgument(
                f"Expected {what} to not contain the reserved key {_RESERVED_METADATA_KEY}"
            )
        _check_metadata_value(key, value, allow_none=allow_none_values, what=what)


def check_metadatas(metadatas: Any, *, allow_none_values: bool) -> list[Any] | None:
    """Validate a list of metadata dicts (a single dict is one); ``None`` items are allowed.

    Raises:
        InvalidArgument: Not a list of dicts, or a bad dict.
    """
    if metadatas is not None and not isinstance(metadatas, Mapping | list | tuple):
        raise InvalidArgument(f"Expected metadatas to be a list, got {_short(metadatas)}")
    listed = one_or_many(metadatas)
    if listed is None:
        return None
    if not listed:
        raise InvalidArgument("Expected metadatas to be a non-empty list, got 0 metadatas")
    for metadata in listed:
        if metadata is not None:
            check_metadata(metadata, allow_none_values=allow_none_values)
    return listed


def _json_scalar(value: Any) -> Any:
    kind = type(value)
    if kind is str or kind is int or kind is float or kind is bool:
        return value
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if _is_int(value):
        return int(value)
    if isinstance(value, numbers.Real) and not isinstance(value, str):
        return float(value)
    return value


def _json_default(value: Any) -> Any:
    """The JSON value of a NumPy scalar (``json`` asks only for types it cannot encode)."""
    scalar = _json_scalar(value)
    if scalar is value:
        raise TypeError(f"{type(value).__name__} is not a metadata value")
    return scalar


def dump_metadatas(metadatas: list[Any] | None) -> str | None:
    """Encode validated metadata dicts (or ``None``) as the engine's one JSON array.

    One ``json.dumps`` of the list runs in the C encoder; a call per dict cost more than the
    encoding. NumPy scalars are unwrapped.
    """
    if metadatas is None:
        return None
    return json.dumps(metadatas, allow_nan=False, default=_json_default)


def check_lengths(**fields: list[Any] | NDArray[Any] | None) -> None:
    """Check that every given field has as many entries as ``ids``.

    Raises:
        InvalidArgument: Unequal lengths, naming each field's length.
    """
    lengths = {name: len(value) for name, value in fields.items() if value is not None}
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{name}: {n}" for name, n in lengths.items())
        raise InvalidArgument(f"Unequal lengths for fields: {detail}")


def check_include(include: Any, *, allow_distances: bool) -> list[str]:
    """Validate ``include=``: a list of known items; ``distances`` only in ``query``.

    Raises:
        InvalidArgument: Not a list, an unknown item, ``distances`` in ``get``, or ``data``
            (there is no data loader).
    """
    if not isinstance(include, list | tuple):
        raise InvalidArgument(f"Expected include to be a list, got {_short(include)}")
    try:
        key = (tuple(include), allow_distances)
        return list(_CHECKED_INCLUDES[key])
    except (KeyError, TypeError):  # not seen yet, or unhashable items (refused below)
        pass
    valid = "documents, embeddings, metadatas, distances, uris, data"
    for item in include:
        if not isinstance(item, str):
            raise InvalidArgument(f"Expected include item to be a str, got {_short(item)}")
        if item not in INCLUDE_VALUES:
            raise InvalidArgument(f"Expected include item to be one of {valid}, got {item}")
        if item == "distances" and not allow_distances:
            raise InvalidArgument("Include item cannot be one of distances, got distances")
        if item == "data":
            raise InvalidArgument(
                "You must set a data loader on the collection if loading from URIs; "
                "ferrostore collections have none, so include cannot contain data"
            )
    if len(_CHECKED_INCLUDES) < _CHECKED_INCLUDES_MAX:
        _CHECKED_INCLUDES[(tuple(include), allow_distances)] = tuple(include)
    return list(include)


def check_n_results(n_results: Any) -> int:
    """Validate ``n_results``: an int of at least 1.

    Raises:
        InvalidArgument: Not an int, or below 1.
    """
    if not _is_int(n_results):
        raise InvalidArgument(
            f"Expected requested number of results to be a int, got {_short(n_results)}"
        )
    if int(n_results) < 1:
        raise InvalidArgument(
            f"Number of requested results {n_results}, cannot be negative, or zero"
        )
    return int(n_results)


def check_limit_offset(limit: Any, offset: Any) -> tuple[int | None, int]:
    """Validate ``limit`` (None or an int >= 0) and ``offset`` (None or an int >= 0).

    Raises:
        InvalidArgument: Not an int, or negative.
    """
    if limit is not None and (not _is_int(limit) or int(limit) < 0):
        raise InvalidArgument(f"Expected limit to be a non-negative int or None, got {limit!r}")
    if offset is not None and (not _is_int(offset) or int(offset) < 0):
        raise InvalidArgument(f"Expected offset to be a non-negative int or None, got {offset!r}")
    return (None if limit is None else int(limit)), (0 if offset is None else int(offset))


def check_collection_name(name: Any) -> str:
    """Validate a collection name with Chroma's rules.

    3-512 characters from ``[a-zA-Z0-9._-]``, starting and ending with a letter or digit, no
    ``..``, not an IPv4 address.

    Raises:
        InvalidArgument: The name breaks a rule.
    """
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InvalidArgument(
            "Expected a name containing 3-512 characters from [a-zA-Z0-9._-], starting and "
            f"ending with a character in [a-zA-Z0-9]. Got: {_short(name)}"
        )
    if ".." in name:
        raise InvalidArgument(
            f"Expected a name that does not contains two consecutive periods (..). Got {name}"
        )
    if _IPV4_RE.match(name):
        raise InvalidArgument(f"Expected a name that is not a valid ip address. Got {name}")
    return name


def check_collection_metadata(metadata: Any) -> dict[str, Any]:
    """Validate collection metadata and return the engine parameters it sets.

    Returns:
        A dict with the engine arguments given (``space``, ``m``, ``ef_construction``,
        ``ef_search``, ``quantization``); absent keys are absent.

    Raises:
        InvalidArgument: A bad dict, an unknown ``hnsw:`` key, a space other than cosine,
            l2 or ip, a quantization other than bf16, f16, f32 or i8, or a non-positive HNSW
            parameter.
    """
    if metadata is None:
        return {}
    check_metadata(metadata, allow_none_values=False, what="collection metadata")
    params: dict[str, Any] = {}
    for key, value in metadata.items():
        if key in COLLECTION_PARAM_KEYS:
            if key == "hnsw:space":
                if value not in _SPACES:
                    raise InvalidArgument(
                        f"Expected hnsw:space to be one of cosine, l2, ip, got {_short(value)}"
                    )
            elif key == QUANTIZATION_KEY:
                if value not in _QUANTIZATIONS:
                    raise InvalidArgument(
                        f"Expected {QUANTIZATION_KEY} to be one of {', '.join(_QUANTIZATIONS)}, "
                        f"got {_short(value)}"
                    )
            elif not _is_int(value) or not 1 <= int(value) <= 1_000_000:
                raise InvalidArgument(
                    f"Expected {key} to be a positive int (at most 1000000), got {_short(value)}"
                )
            textual = key in ("hnsw:space", QUANTIZATION_KEY)
            params[COLLECTION_PARAM_KEYS[key]] = value if textual else int(value)
        elif key.startswith("hnsw:") and key not in _IGNORED_HNSW_KEYS:
            known = ", ".join([*COLLECTION_PARAM_KEYS, *sorted(_IGNORED_HNSW_KEYS)])
            raise InvalidArgument(
                f"Unknown collection metadata key {key!r}: expected one of {known}"
            )
    return params
