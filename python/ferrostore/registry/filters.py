"""MLflow's search filter strings, parsed and compiled to SQLAlchemy expressions.

A filter is comparisons joined by ``AND`` (case-insensitive)::

    name = 'fraud' AND tags.team != 'x' AND version_number >= 3
    metrics.accuracy > 0.9 AND params.model = 'xgb' AND attributes.status = 'FINISHED'
    run_id IN ('a1', 'b2') AND name ILIKE 'Fraud%'

Operators: ``=``, ``!=``, ``<``, ``<=``, ``>``, ``>=``, ``LIKE``, ``ILIKE``, ``IN``, ``NOT IN``.
Identifiers are ``attribute``, or ``<prefix>.<key>`` with prefix ``tags``, ``params`` or
``metrics`` (also their singular forms); a key with spaces or dots is quoted with backticks
or double quotes (``tags.`my key```). The whole filter runs in SQL; nothing is filtered in
Python. Unlike SQLite's default, ``LIKE`` is case-sensitive on every backend.

Example:
    >>> [c.key for c in parse_filter("name = 'a' AND tags.t LIKE 'x%'")]
    ['name', 't']
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.sql.elements import ColumnElement

from ferrostore.errors import InvalidArgument

__all__ = [
    "Comparison",
    "OrderKey",
    "check_value_type",
    "compare",
    "parse_filter",
    "parse_order_by",
]

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^']|'')*'|"(?:[^"]|"")*")
      | (?P<backtick>`[^`]*`)
      | (?P<number>[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?![\w.]))
      | (?P<op>!=|<>|<=|>=|=|<|>)
      | (?P<punct>[(),])
      | (?P<word>[A-Za-z_][\w.]*)
    )""",
    re.VERBOSE,
)

_PREFIXES = {
    "tag": "tag",
    "tags": "tag",
    "param": "param",
    "params": "param",
    "parameter": "param",
    "parameters": "param",
    "metric": "metric",
    "metrics": "metric",
    "attribute": "attribute",
    "attributes": "attribute",
    "attr": "attribute",
    "run": "attribute",
}
_KEYWORD_OPS = {"LIKE", "ILIKE", "IN"}


@dataclasses.dataclass(frozen=True)
class Comparison:
    """One parsed comparison: ``<kind>.<key> <op> <value>``.

    ``kind`` is ``"attribute"``, ``"tag"``, ``"param"`` or ``"metric"``; ``op`` is one of
    ``= != < <= > >= LIKE ILIKE IN NOT IN``; ``value`` a string, a number, or a tuple of
    them for ``IN``.
    """

    kind: str
    key: str
    op: str
    value: Any


@dataclasses.dataclass(frozen=True)
class OrderKey:
    """One ``order_by`` term: ``kind``, ``key`` and whether it sorts ascending."""

    kind: str
    key: str
    ascending: bool


def _tokens(text: str, what: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise InvalidArgument(
                f"malformed {what} {text!r}: unexpected text at position {pos}: "
                f"{text[pos : pos + 20]!r}"
            )
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind)))
        pos = match.end()
    return out


def _unquote(token: str) -> str:
    quote = token[0]
    if quote == "`":
        return token[1:-1]
    return token[1:-1].replace(quote * 2, quote)


def _identifier(
    tokens: list[tuple[str, str]], i: int, text: str, what: str
) -> tuple[str, str, int]:
    """Read ``prefix.key`` or ``attribute`` at ``tokens[i]``; return kind, key, next index."""
    kind, value = tokens[i]
    if kind == "backtick":
        return "attribute", _unquote(value), i + 1
    if kind != "word":
        raise InvalidArgument(f"malformed {what} {text!r}: expected an identifier, got {value!r}")
    if value.endswith(".") and i + 1 < len(tokens) and tokens[i + 1][0] in ("string", "backtick"):
        prefix, key, nxt = value[:-1], _unquote(tokens[i + 1][1]), i + 2
    elif "." in value:
        prefix, _, key = value.partition(".")
        nxt = i + 1
    else:
        return "attribute", value, i + 1
    entity = _PREFIXES.get(prefix.lower())
    if entity is None:
        raise InvalidArgument(
            f"malformed {what} {text!r}: unknown identifier prefix {prefix!r}; expected "
            "tags., params., metrics. or attributes."
        )
    if not key:
        raise InvalidArgument(f"malformed {what} {text!r}: {prefix!r} needs a key after the dot")
    return entity, key, nxt


def _literal(token: tuple[str, str], text: str) -> str | float | int:
    kind, value = token
    if kind == "string":
        return _unquote(value)
    if kind == "number":
        number = float(value)
        return int(number) if re.fullmatch(r"[+-]?\d+", value) else number
    raise InvalidArgument(
        f"malformed filter {text!r}: expected a quoted string or a number, got {value!r}"
    )


def parse_filter(filter_string: str | None) -> list[Comparison]:
    """Parse an MLflow filter string into comparisons joined by AND.

    Args:
        filter_string: The filter; ``None`` or blank means no filter.

    Returns:
        The comparisons, in order.

    Raises:
        InvalidArgument: The string is malformed (the message quotes it and says what was
            expected), or uses ``OR``.

    Example:
        >>> parse_filter("version_number IN (1, 2)")[0].value
        (1, 2)
    """
    if filter_string is None:
        return []
    if not isinstance(filter_string, str):
        raise InvalidArgument(f"filter_string must be a string, got {filter_string!r}")
    text = filter_string
    tokens = _tokens(text, "filter")
    comparisons: list[Comparison] = []
    i = 0
    while i < len(tokens):
        kind, key, i = _identifier(tokens, i, text, "filter")
        if i >= len(tokens):
            raise InvalidArgument(f"malformed filter {text!r}: missing operator after {key!r}")
        tok_kind, tok = tokens[i]
        if tok_kind == "op":
            op = "!=" if tok == "<>" else tok
            i += 1
        elif tok_kind == "word" and tok.upper() in _KEYWORD_OPS:
            op = tok.upper()
            i += 1
        elif (
            tok_kind == "word"
            and tok.upper() == "NOT"
            and i + 1 < len(tokens)
            and tokens[i + 1][1].upper() == "IN"
        ):
            op = "NOT IN"
            i += 2
        else:
            raise InvalidArgument(
                f"malformed filter {text!r}: expected an operator (=, !=, <, <=, >, >=, LIKE, "
                f"ILIKE, IN, NOT IN) after {key!r}, got {tok!r}"
            )
        if i >= len(tokens):
            raise InvalidArgument(f"malformed filter {text!r}: missing value after {op!r}")
        value: Any
        if op in ("IN", "NOT IN"):
            if tokens[i] != ("punct", "("):
                raise InvalidArgument(f"malformed filter {text!r}: {op} needs a list in (...)")
            i += 1
            items: list[Any] = []
            while True:
                if i >= len(tokens):
                    raise InvalidArgument(f"malformed filter {text!r}: unclosed '('")
                items.append(_literal(tokens[i], text))
                i += 1
                if i < len(tokens) and tokens[i] == ("punct", ","):
                    i += 1
                    continue
                if i < len(tokens) and tokens[i] == ("punct", ")"):
                    i += 1
                    break
                raise InvalidArgument(f"malformed filter {text!r}: expected ',' or ')' in list")
            value = tuple(items)
        else:
            value = _literal(tokens[i], text)
            i += 1
            if op in ("LIKE", "ILIKE") and not isinstance(value, str):
                raise InvalidArgument(
                    f"malformed filter {text!r}: {op} needs a quoted pattern, got {value!r}"
                )
        comparisons.append(Comparison(kind, key, op, value))
        if i < len(tokens):
            if tokens[i][0] == "word" and tokens[i][1].upper() == "AND":
                i += 1
                if i >= len(tokens):
                    raise InvalidArgument(f"malformed filter {text!r}: nothing after AND")
                continue
            raise InvalidArgument(
                f"malformed filter {text!r}: expected AND between comparisons, got "
                f"{tokens[i][1]!r} (OR is not supported)"
            )
    return comparisons


def parse_order_by(order_by: Sequence[str] | None) -> list[OrderKey]:
    """Parse ``order_by`` terms such as ``"metrics.acc DESC"`` or ``"name"``.

    Args:
        order_by: The terms; ``None`` means the default order.

    Returns:
        The parsed terms.

    Raises:
        InvalidArgument: A term is malformed.
    """
    if order_by is None:
        return []
    if isinstance(order_by, str) or not isinstance(order_by, Sequence):
        raise InvalidArgument(f"order_by must be a list of strings, got {order_by!r}")
    keys: list[OrderKey] = []
    for term in order_by:
        if not isinstance(term, str):
            raise InvalidArgument(f"order_by terms must be strings, got {term!r}")
        tokens = _tokens(term, "order_by term")
        if not tokens:
            raise InvalidArgument(f"malformed order_by term {term!r}: empty")
        kind, key, i = _identifier(tokens, 0, term, "order_by term")
        ascending = True
        if i < len(tokens) and tokens[i][0] == "word" and tokens[i][1].upper() in ("ASC", "DESC"):
            ascending = tokens[i][1].upper() == "ASC"
            i += 1
        if i != len(tokens):
            raise InvalidArgument(f"malformed order_by term {term!r}: expected '<key> [ASC|DESC]'")
        keys.append(OrderKey(kind, key, ascending))
    return keys


def _glob_pattern(pattern: str) -> str:
    out = []
    for ch in pattern:
        if ch == "%":
            out.append("*")
        elif ch == "_":
            out.append("?")
        elif ch in "*?[":
            out.append(f"[{ch}]")
        else:
            out.append(ch)
    return "".join(out)


def compare(column: ColumnElement[Any], op: str, value: Any, dialect: str) -> ColumnElement[bool]:
    """Return the SQL expression ``column <op> value`` (LIKE case-sensitive everywhere)."""
    if op == "=":
        return column == value
    if op == "!=":
        return column != value
    if op == "<":
        return column < value
    if op == "<=":
        return column <= value
    if op == ">":
        return column > value
    if op == ">=":
        return column >= value
    if op == "IN":
        return column.in_(list(value))
    if op == "NOT IN":
        return column.not_in(list(value))
    if op == "ILIKE":
        return column.ilike(value)
    if op == "LIKE":
        if dialect == "sqlite":
            return column.op("GLOB")(_glob_pattern(value))
        return column.like(value)
    raise InvalidArgument(f"unsupported operator {op!r}")  # pragma: no cover - parser checks


def check_value_type(cmp: Comparison, *, numeric: bool, text: str | None) -> None:
    """Raise InvalidArgument when ``cmp``'s value type does not fit its identifier."""
    values = cmp.value if isinstance(cmp.value, tuple) else (cmp.value,)
    for value in values:
        is_number = isinstance(value, int | float)
        if numeric and not is_number:
            raise InvalidArgument(
                f"invalid filter {text!r}: {cmp.kind}.{cmp.key} is numeric; "
                f"expected a number, got {value!r}"
            )
        if not numeric and is_number:
            raise InvalidArgument(
                f"invalid filter {text!r}: {cmp.key!r} is a string; expected a quoted string, "
                f"got {value!r}"
            )
    if numeric and cmp.op in ("LIKE", "ILIKE"):
        raise InvalidArgument(f"invalid filter {text!r}: {cmp.op} does not apply to {cmp.key!r}")


ClauseBuilder = Callable[[Comparison], ColumnElement[bool]]
