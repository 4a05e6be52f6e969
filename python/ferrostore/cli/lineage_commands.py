"""Lineage commands: ``ferrostore lineage why | serving | uses | graph``.

Each command reads the metadata database named by ``--db`` (a path or URL), else the one of
``--tracking-uri`` / ``$FERROSTORE_TRACKING_URI`` (default ``./.ferrostore``), and prints a
readable tree, or ``--format json | dot | mermaid``, or draws ``--format png`` with Graphviz
to ``--output`` (default ``lineage.png``).
"""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from ferrostore.errors import InvalidArgument

__all__ = ["add_lineage_commands"]


def open_db(args: argparse.Namespace) -> Any:
    """Open the metadata database the command's options name."""
    from ferrostore.metadata import MetadataDB
    from ferrostore.registry import tracking

    if getattr(args, "db", None):
        return MetadataDB(args.db)
    uri = args.tracking_uri if args.tracking_uri is not None else tracking.get_tracking_uri()
    db_url, _ = tracking._locations(str(uri))
    return MetadataDB(db_url)


def _when(ms: int | None) -> str:
    if ms is None:
        return "unknown time"
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _emit_graph(
    args: argparse.Namespace, answer: Any, graph: Any, tree: str, roots: list[Any]
) -> None:
    from ferrostore.lineage import render

    if args.format == "tree":
        print(tree)
    elif args.format == "json":
        print(render.to_json(answer))
    elif args.format == "dot":
        print(render.to_dot(graph, highlight=roots))
    elif args.format == "mermaid":
        print(render.to_mermaid(graph))
    else:
        path = render.to_png(render.to_dot(graph, highlight=roots), args.output)
        print(f"wrote {path}")


def why_text(answer: Any) -> str:
    """Render :func:`ferrostore.lineage.questions.why`'s answer as the terminal report."""
    from ferrostore.lineage import render

    aliases = f", aliases {', '.join(answer.aliases)}" if answer.aliases else ""
    none = "none recorded"
    lines = [
        f"{answer.uri} -> {answer.name} version {answer.version} (stage {answer.stage}{aliases})",
        f"  approved by: {answer.approved_by or 'not recorded'}",
        f"  run:         {', '.join(r.name or '?' for r in answer.runs) or none}",
        f"  dataset:     {', '.join(a.uri or '?' for a in answer.training_sets) or none}",
        f"  features:    {', '.join(answer.features) or none}",
        f"  raw data:    {', '.join(a.uri or '?' for a in answer.data_sources) or none}",
        "  history:",
    ]
    for ex in answer.approvals:
        p = ex.properties
        what = (
            f"{p.get('from_stage')} -> {p.get('to_stage')}"
            if ex.type == "ferrostore.StageTransition"
            else f"alias @{p.get('alias')} {p.get('action')}"
        )
        lines.append(f"    {_when(p.get('timestamp'))}  {what}  by {p.get('approved_by')}")
    lines.append("")
    lines.append(render.to_tree(answer.graph, [answer.model], "UPSTREAM"))
    return "\n".join(lines)


def _why(args: argparse.Namespace) -> int:
    from ferrostore.lineage.questions import why

    with open_db(args) as db:
        answer = why(db, args.model_uri)
    _emit_graph(args, answer, answer.graph, why_text(answer), [answer.model])
    return 0


def _serving(args: argparse.Namespace) -> int:
    from ferrostore.lineage import render
    from ferrostore.lineage.questions import serving

    with open_db(args) as db:
        entries = serving(db)
    if args.format == "json":
        print(render.to_json(entries))
        return 0
    if args.format != "tree":
        raise InvalidArgument("lineage serving prints a table or --format json")
    if not entries:
        print("no model version is in Production or holds an alias")
        return 0
    width = max(len(e.model) for e in entries)
    for e in entries:
        print(
            f"{e.model:<{width}}  {e.slot:<12} v{e.version:<4} approved by "
            f"{e.approved_by or 'unknown'} at {_when(e.approved_at)}"
            + (f"  (run {e.run_id})" if e.run_id else "")
        )
    return 0


def _uses(args: argparse.Namespace) -> int:
    from ferrostore.lineage import render
    from ferrostore.lineage.questions import uses

    with open_db(args) as db:
        answer = uses(db, args.source)
    summary = [
        f"built from {args.source}:",
        f"  feature views:  {', '.join(a.name or '?' for a in answer.feature_views) or 'none'}",
        f"  training sets:  {', '.join(a.uri or '?' for a in answer.training_sets) or 'none'}",
        f"  runs:           {', '.join(e.name or '?' for e in answer.runs) or 'none'}",
        f"  model versions: {', '.join(a.name or '?' for a in answer.model_versions) or 'none'}",
        f"  online tables:  {', '.join(a.name or '?' for a in answer.online_tables) or 'none'}",
        "",
        render.to_tree(answer.graph, answer.sources, "DOWNSTREAM"),
    ]
    _emit_graph(args, answer, answer.graph, "\n".join(summary), answer.sources)
    return 0


def _graph(args: argparse.Namespace) -> int:
    from ferrostore.lineage import MetadataStore, render

    kind = "artifact" if args.artifact is not None else "execution"
    node_id = args.artifact if args.artifact is not None else args.execution
    with open_db(args) as db:
        store = MetadataStore(db)
        graph = store.get_lineage_subgraph((kind, node_id), args.hops, args.direction)
        root = (store.get_artifacts_by_id if kind == "artifact" else store.get_executions_by_id)(
            [node_id]
        )
    direction = "DOWNSTREAM" if args.direction == "DOWNSTREAM" else "UPSTREAM"
    _emit_graph(args, graph, graph, render.to_tree(graph, root, direction), list(root))
    return 0


def _common(parser: argparse.ArgumentParser, *, graph: bool = True) -> None:
    from ferrostore.lineage.render import FORMATS

    parser.add_argument("--db", default=None, help="metadata database path or URL")
    parser.add_argument(
        "--tracking-uri",
        default=None,
        help="tracking URI whose database to read (default: $FERROSTORE_TRACKING_URI or "
        "./.ferrostore)",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS if graph else ("tree", "json"),
        default="tree",
        help="output: a readable tree (default), json, dot, mermaid, or png (Graphviz)",
    )
    if graph:
        parser.add_argument("--output", default="lineage.png", help="file written by --format png")


def add_lineage_commands(subparsers: Any) -> None:
    """Add ``ferrostore lineage ...`` to the ``ferrostore`` command's subparsers.

    Args:
        subparsers: What ``ArgumentParser.add_subparsers`` returned.
    """
    lineage = subparsers.add_parser(
        "lineage",
        help="lineage and provenance: why, serving, uses, graph",
        description="Answer lineage questions from the metadata database.",
    )
    sub = lineage.add_subparsers(dest="action", metavar="ACTION", required=True)

    why = sub.add_parser(
        "why",
        help="which dataset, features, raw data and run made a model; who approved it",
        description="Trace a model version back to its run, training set, feature views "
        "and data sources, with its approvals.",
    )
    why.add_argument(
        "model_uri", help="models:/name/Production, models:/name/3, models:/name@alias"
    )
    _common(why)
    why.set_defaults(run=_why)

    serve = sub.add_parser(
        "serving",
        help="which version of each model is in Production or holds each alias now",
    )
    _common(serve, graph=False)
    serve.set_defaults(run=_serving)

    uses = sub.add_parser("uses", help="what was built from a data source")
    uses.add_argument("source", help="a data source's path or name, or an artifact name/URI")
    _common(uses)
    uses.set_defaults(run=_uses)

    graph = sub.add_parser("graph", help="the lineage subgraph around one node")
    node = graph.add_mutually_exclusive_group(required=True)
    node.add_argument("--artifact", type=int, default=None, help="start artifact id")
    node.add_argument("--execution", type=int, default=None, help="start execution id")
    graph.add_argument("--hops", type=int, default=3, help="max hops (default 3)")
    graph.add_argument("--direction", choices=("UPSTREAM", "DOWNSTREAM", "BOTH"), default="BOTH")
    _common(graph)
    graph.set_defaults(run=_graph)
