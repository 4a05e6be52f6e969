"""Feature repo commands: init, apply, plan, materialize, feature-views, entities.

``ferrostore init``, ``apply``, ``plan``, ``materialize``, ``materialize-incremental``,
``feature-views list`` and ``entities list``. Each command but ``init`` works on the repo
in the working directory, or the one named by ``--repo PATH``.
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Sequence
from typing import Any

from ferrostore.errors import InvalidArgument

__all__ = ["add_feature_commands"]


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(line.rstrip() for line in lines)


def _when(text: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidArgument(
            f"{text!r} is not an ISO 8601 date or datetime (e.g. 2024-01-15T00:00:00)"
        ) from exc
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def _store(args: argparse.Namespace) -> Any:
    from ferrostore.features import FeatureStore

    return FeatureStore(repo_path=args.repo)


def _discover(store: Any) -> list[Any]:
    from ferrostore.features.repo_discovery import discover_objects

    return discover_objects(store.repo_path)


def _init(args: argparse.Namespace) -> int:
    from ferrostore.features.scaffold import init_repo

    root = init_repo(args.dir, customers=args.customers)
    print(f"created feature repo {root.absolute()}")
    print(f"  next: cd {args.dir} && ferrostore apply && ferrostore materialize-incremental NOW")
    return 0


def _apply(args: argparse.Namespace) -> int:
    from ferrostore.cli.stack_commands import run_stack, stack_wanted

    if stack_wanted(args):  # a ferrostore.yaml here, or --file: the declared stack
        return run_stack("apply", args)
    with _store(args) as store:
        diff = store.apply(_discover(store), partial=False)
        for line in diff.lines():
            print(line)
        print("applied" if diff.has_changes else "no changes")
    return 0


def _plan(args: argparse.Namespace) -> int:
    from ferrostore.cli.stack_commands import run_stack, stack_wanted

    if stack_wanted(args):
        return run_stack("plan", args)
    with _store(args) as store:
        diff = store.plan(_discover(store), partial=False)
        for line in diff.lines():
            print(line)
        print("changes pending" if diff.has_changes else "no changes")
    return 0


def _report(done: dict[str, int]) -> None:
    if not done:
        print("no online feature views")
    for view, rows in done.items():
        print(f"{view}: {rows:,} rows materialized")


def _materialize(args: argparse.Namespace) -> int:
    with _store(args) as store:
        _report(store.materialize(_when(args.start), _when(args.end), feature_views=args.views))
    return 0


def _materialize_incremental(args: argparse.Namespace) -> int:
    end = dt.datetime.now(dt.UTC) if args.end.lower() == "now" else _when(args.end)
    with _store(args) as store:
        _report(store.materialize_incremental(end, feature_views=args.views))
    return 0


def _views_list(args: argparse.Namespace) -> int:
    with _store(args) as store:
        rows = [
            [
                v.name,
                ", ".join(e.name for e in v.entities),
                len(v.features),
                str(v.ttl) if v.ttl else "none",
                v.online,
                v.source.path,
            ]
            for v in store.list_feature_views()
        ]
    print(_table(["name", "entities", "features", "ttl", "online", "source"], rows))
    return 0


def _entities_list(args: argparse.Namespace) -> int:
    with _store(args) as store:
        rows = [
            [e.name, ", ".join(e.join_keys), e.value_type or "", e.description]
            for e in store.list_entities()
        ]
    print(_table(["name", "join keys", "type", "description"], rows))
    return 0


def _repo_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--repo", default=".", help="the feature repo folder (default: the working directory)"
    )


def add_feature_commands(subparsers: Any) -> None:
    """Add the feature repo commands to the ``ferrostore`` command's subparsers.

    ``apply`` and ``plan`` also take the stack's options: with ``--file`` or a
    ``ferrostore.yaml`` in the working directory they run the declared stack instead.

    Args:
        subparsers: What ``ArgumentParser.add_subparsers`` returned.
    """
    from ferrostore.cli.stack_commands import add_stack_options

    init = subparsers.add_parser(
        "init",
        help="create a feature repo with the customer_transactions example",
        description="Scaffold feature_store.yaml, features.py and synthetic Parquet data.",
    )
    init.add_argument("dir", nargs="?", default="feature_repo", help="default: feature_repo")
    init.add_argument("--customers", type=int, default=10, help="synthetic customers (10)")
    init.set_defaults(run=_init)

    apply = subparsers.add_parser(
        "apply",
        help="register the repo's feature definitions",
        description="Import the repo's Python files, validate the definitions against their "
        "sources and store them in the registry (removed definitions are deleted).",
    )
    _repo_option(apply)
    add_stack_options(apply, "apply")
    apply.set_defaults(run=_apply)

    plan = subparsers.add_parser(
        "plan", help="show what apply would change", description="Validate and diff."
    )
    _repo_option(plan)
    add_stack_options(plan, "plan")
    plan.set_defaults(run=_plan)

    mat = subparsers.add_parser(
        "materialize",
        help="load feature rows of a time window into the online store",
        description="Load, per entity, the latest row with event time in [START, END].",
    )
    mat.add_argument("start", help="ISO 8601 start (naive: UTC)")
    mat.add_argument("end", help="ISO 8601 end, inclusive (naive: UTC)")
    mat.add_argument("--views", nargs="+", default=None, help="feature views (default: all)")
    _repo_option(mat)
    mat.set_defaults(run=_materialize)

    inc = subparsers.add_parser(
        "materialize-incremental",
        help="materialize from the last materialized time up to END",
        description="Continue each view from its last materialization (or now - ttl).",
    )
    inc.add_argument("end", help="ISO 8601 end (naive: UTC), or 'now'")
    inc.add_argument("--views", nargs="+", default=None, help="feature views (default: all)")
    _repo_option(inc)
    inc.set_defaults(run=_materialize_incremental)

    views = subparsers.add_parser("feature-views", help="list the registered feature views")
    views_sub = views.add_subparsers(dest="action", metavar="ACTION", required=True)
    views_list = views_sub.add_parser("list", help="list feature views")
    _repo_option(views_list)
    views_list.set_defaults(run=_views_list)

    entities = subparsers.add_parser("entities", help="list the registered entities")
    entities_sub = entities.add_subparsers(dest="action", metavar="ACTION", required=True)
    entities_list = entities_sub.add_parser("list", help="list entities")
    _repo_option(entities_list)
    entities_list.set_defaults(run=_entities_list)
