"""Lineage graphs as a terminal tree, JSON, Graphviz dot, Mermaid, or a PNG picture.

Example:
    >>> from ferrostore.lineage import LineageGraph
    >>> to_mermaid(LineageGraph())
    'flowchart LR'
"""

from __future__ import annotations

import dataclasses
import enum
import json
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ferrostore.errors import InvalidArgument, StorageError
from ferrostore.lineage.types import Artifact, Direction, Execution, LineageGraph

__all__ = ["FORMATS", "label", "to_dot", "to_json", "to_mermaid", "to_png", "to_tree"]

FORMATS = ("tree", "json", "dot", "mermaid", "png")
"""The output formats of the lineage commands."""

_KEY_PROPS = (
    "run_name",
    "status",
    "to_stage",
    "alias",
    "action",
    "approved_by",
    "row_count",
    "rows",
    "start",
    "end",
    "applied_by",
)


def _short(type_name: str | None) -> str:
    return (type_name or "?").removeprefix("ferrostore.")


def label(node: Artifact | Execution) -> str:
    """Return a one-line description of a node: its type, name or uri, and key properties."""
    props = {**node.custom_properties, **node.properties}
    details = ", ".join(f"{k}={props[k]}" for k in _KEY_PROPS if k in props)
    if isinstance(node, Artifact):
        text = f"{_short(node.type)} {node.name or node.uri or f'#{node.id}'}"
        if node.uri and node.uri != node.name:
            text += f" ({node.uri})"
    else:
        text = f"[{_short(node.type)}] {node.name or f'#{node.id}'} {node.last_known_state}"
    return f"{text} {{{details}}}" if details else text


def _key(node: Artifact | Execution) -> tuple[str, int]:
    return ("artifact" if isinstance(node, Artifact) else "execution", int(node.id or 0))


def _adjacency(graph: LineageGraph) -> dict[tuple[str, int], list[tuple[str, int]]]:
    """Data-flow edges: artifact -> execution for inputs, execution -> artifact for outputs."""
    out: dict[tuple[str, int], list[tuple[str, int]]] = {}
    for ev in graph.events:
        a, e = ("artifact", int(ev.artifact_id or 0)), ("execution", int(ev.execution_id or 0))
        src, dst = (a, e) if ev.type.is_input else (e, a)
        out.setdefault(src, []).append(dst)
    return out


def to_tree(
    graph: LineageGraph,
    roots: Sequence[Artifact | Execution],
    direction: Direction | str = Direction.UPSTREAM,
) -> str:
    """Render the graph as an indented tree from ``roots``, following ``direction``.

    A node reached again is printed once more with ``(see above)`` and not expanded.

    Args:
        graph: The graph.
        roots: Where the tree starts.
        direction: ``UPSTREAM`` shows what each node came from; ``DOWNSTREAM`` what came
            from it.

    Returns:
        The tree, one node per line.
    """
    way = Direction(direction)
    forward = _adjacency(graph)
    edges: dict[tuple[str, int], list[tuple[str, int]]] = {}
    if way is Direction.DOWNSTREAM:
        edges = forward
    else:
        for src, dsts in forward.items():
            for dst in dsts:
                edges.setdefault(dst, []).append(src)
    nodes: dict[tuple[str, int], Artifact | Execution] = {
        **{_key(a): a for a in graph.artifacts},
        **{_key(e): e for e in graph.executions},
    }
    lines: list[str] = []
    seen: set[tuple[str, int]] = set()

    def walk(key: tuple[str, int], prefix: str, last: bool, top: bool) -> None:
        node = nodes.get(key)
        text = label(node) if node is not None else f"{key[0]} #{key[1]}"
        branch = "" if top else ("└── " if last else "├── ")
        if key in seen:
            lines.append(f"{prefix}{branch}{text} (see above)")
            return
        seen.add(key)
        lines.append(f"{prefix}{branch}{text}")
        children = sorted(k for k in dict.fromkeys(edges.get(key, [])) if k in nodes)
        child_prefix = prefix if top else prefix + ("    " if last else "│   ")
        for i, child in enumerate(children):
            walk(child, child_prefix, i == len(children) - 1, False)

    for root in roots:
        walk(_key(root), "", True, True)
    return "\n".join(lines)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {
            (k if isinstance(k, str) else ":".join(map(str, k))): _plain(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def to_json(value: Any) -> str:
    """Render a graph (or a question's answer) as indented JSON."""
    return json.dumps(_plain(value), indent=2, sort_keys=True, default=str)


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def to_dot(graph: LineageGraph, *, highlight: Sequence[Artifact | Execution] = ()) -> str:
    """Render the graph as Graphviz ``dot``: artifacts as ellipses, executions as boxes."""
    marked = {_key(n) for n in highlight}
    lines = ["digraph lineage {", "  rankdir=LR;", '  node [fontname="Helvetica"];']
    for node in [*graph.artifacts, *graph.executions]:
        kind, node_id = _key(node)
        shape = "ellipse" if kind == "artifact" else "box"
        style = ', style=filled, fillcolor="#ffe08a"' if (kind, node_id) in marked else ""
        lines.append(f'  {kind[0]}{node_id} [shape={shape}, label="{_quote(label(node))}"{style}];')
    for src, dsts in _adjacency(graph).items():
        for dst in dsts:
            lines.append(f"  {src[0][0]}{src[1]} -> {dst[0][0]}{dst[1]};")
    lines.append("}")
    return "\n".join(lines)


def to_mermaid(graph: LineageGraph) -> str:
    """Render the graph as a Mermaid flowchart (artifacts rounded, executions as boxes)."""
    lines = ["flowchart LR"]
    for node in [*graph.artifacts, *graph.executions]:
        kind, node_id = _key(node)
        text = label(node).replace('"', "#quot;")
        shape = f'("{text}")' if kind == "artifact" else f'["{text}"]'
        lines.append(f"  {kind[0]}{node_id}{shape}")
    for src, dsts in _adjacency(graph).items():
        for dst in dsts:
            lines.append(f"  {src[0][0]}{src[1]} --> {dst[0][0]}{dst[1]}")
    return "\n".join(lines)


def to_png(dot_source: str, output: str | Path) -> Path:
    """Draw ``dot_source`` to a PNG file with Graphviz's ``dot`` program.

    Raises:
        InvalidArgument: Graphviz is not installed (``apt-get install graphviz``).
        StorageError: ``dot`` failed or the file cannot be written.
    """
    exe = shutil.which("dot")
    if exe is None:
        raise InvalidArgument(
            "--format png needs Graphviz's dot program: apt-get install graphviz "
            "(or use --format dot and render it elsewhere)"
        )
    path = Path(output)
    try:
        subprocess.run(
            [exe, "-Tpng", "-o", str(path)],
            input=dot_source.encode(),
            check=True,
            capture_output=True,
            timeout=120,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as err:
        detail = getattr(err, "stderr", b"") or b""
        raise StorageError(
            f"dot could not draw {str(path)!r}: {err} {detail.decode(errors='replace')}"
        ) from err
    return path
