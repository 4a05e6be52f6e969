"""``ferrostore runs`` and ``ferrostore models``: list runs, list/show/promote models.

Each command takes ``--tracking-uri`` (default: ``$FERROSTORE_TRACKING_URI``, else
``.ferrostore`` in the working directory) and prints a plain-text table.
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Sequence
from typing import Any

__all__ = ["add_registry_commands"]


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)


def _when(ms: int | None) -> str:
    if ms is None:
        return ""
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _add_uri(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tracking-uri",
        default=None,
        help="folder or database URL (default: $FERROSTORE_TRACKING_URI or ./.ferrostore)",
    )


def _client(args: argparse.Namespace) -> Any:
    from ferrostore.registry import Client

    return Client(args.tracking_uri)


def _runs_list(args: argparse.Namespace) -> int:
    from ferrostore.registry import tracking

    if args.tracking_uri is not None:
        tracking.set_tracking_uri(args.tracking_uri)
    client = _client(args)
    if args.experiment is not None:
        exp = client.get_experiment_by_name(args.experiment)
        if exp is None:
            from ferrostore.errors import NotFound

            raise NotFound(f"experiment {args.experiment!r} does not exist")
        ids: list[str] | None = [exp.experiment_id]
    else:
        ids = None
    store = tracking.store_for(args.tracking_uri)
    runs = store.search_runs(ids, args.filter, None, args.max_results)
    rows = []
    for run in runs:
        metrics = ", ".join(f"{k}={v:.4g}" for k, v in sorted(run.data.metrics.items())[:4])
        rows.append(
            [
                run.info.run_id,
                run.info.experiment_id,
                run.info.run_name,
                run.info.status,
                _when(run.info.start_time),
                metrics,
            ]
        )
    print(_table(["run_id", "experiment", "name", "status", "started (UTC)", "metrics"], rows))
    return 0


def _models_list(args: argparse.Namespace) -> int:
    models = _client(args).search_registered_models(args.filter, max_results=args.max_results)
    rows = []
    for m in models:
        stages = ", ".join(f"{v.current_stage}:v{v.version}" for v in m.latest_versions)
        aliases = ", ".join(f"{a}->v{v}" for a, v in m.aliases.items())
        rows.append([m.name, stages, aliases, _when(m.last_updated_timestamp)])
    print(_table(["name", "latest per stage", "aliases", "updated (UTC)"], rows))
    return 0


def _models_show(args: argparse.Namespace) -> int:
    client = _client(args)
    model = client.get_registered_model(args.name)
    print(f"model {model.name}" + (f": {model.description}" if model.description else ""))
    if model.tags:
        print("tags: " + ", ".join(f"{k}={v}" for k, v in sorted(model.tags.items())))
    versions = client.search_model_versions(f"name = '{_quote(args.name)}'")
    rows = [
        [
            v.version,
            v.current_stage,
            ", ".join(v.aliases),
            v.run_id,
            v.user_id,
            _when(v.creation_timestamp),
            v.description or "",
        ]
        for v in versions
    ]
    print(
        _table(
            ["version", "stage", "aliases", "run_id", "user", "created (UTC)", "description"], rows
        )
    )
    events = client.get_model_version_history(args.name)
    print("\nhistory:")
    hist = [
        [
            _when(e.timestamp),
            "" if e.version is None else e.version,
            e.kind,
            f"{e.from_stage or ''} -> {e.to_stage}" if e.kind == "stage" else (e.alias or ""),
            e.approved_by,
        ]
        for e in events
    ]
    print(_table(["when (UTC)", "version", "event", "change", "by"], hist))
    return 0


def _models_promote(args: argparse.Namespace) -> int:
    from ferrostore.errors import InvalidArgument

    client = _client(args)
    if (args.stage is None) == (args.alias is None):
        raise InvalidArgument("give either a STAGE or --alias ALIAS (not both)")
    if args.alias is not None:
        client.set_registered_model_alias(
            args.name, args.alias, args.version, approved_by=args.approved_by
        )
        print(f"alias {args.alias!r} of {args.name} -> version {args.version}")
    else:
        mv = client.transition_model_version_stage(
            args.name,
            args.version,
            args.stage,
            archive_existing_versions=args.archive_existing,
            approved_by=args.approved_by,
        )
        print(f"{args.name} version {mv.version} -> {mv.current_stage}")
    return 0


def _quote(value: str) -> str:
    return value.replace("'", "''")


def add_registry_commands(subparsers: Any) -> None:
    """Add the ``runs`` and ``models`` commands to the main CLI's subparsers.

    Args:
        subparsers: What ``ArgumentParser.add_subparsers()`` returned; each leaf command
            sets ``run=callable(args) -> int``.
    """
    runs = subparsers.add_parser("runs", help="tracking runs", description="Tracking runs.")
    runs_sub = runs.add_subparsers(dest="runs_command", metavar="ACTION", required=True)
    runs_list = runs_sub.add_parser("list", help="list runs (newest first)")
    _add_uri(runs_list)
    runs_list.add_argument("--experiment", default=None, help="experiment name (default: all)")
    runs_list.add_argument("--filter", default="", help='MLflow filter, e.g. "metrics.acc > 0.9"')
    runs_list.add_argument("--max-results", type=int, default=50)
    runs_list.set_defaults(run=_runs_list)

    models = subparsers.add_parser(
        "models", help="registered models", description="The model registry."
    )
    models_sub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    models_list = models_sub.add_parser("list", help="list registered models")
    _add_uri(models_list)
    models_list.add_argument("--filter", default=None, help="e.g. \"name LIKE 'fraud%%'\"")
    models_list.add_argument("--max-results", type=int, default=100)
    models_list.set_defaults(run=_models_list)

    show = models_sub.add_parser("show", help="a model's versions, stages, aliases and history")
    _add_uri(show)
    show.add_argument("name")
    show.set_defaults(run=_models_show)

    promote = models_sub.add_parser(
        "promote", help="move a version to a stage, or point an alias at it"
    )
    _add_uri(promote)
    promote.add_argument("name")
    promote.add_argument("version")
    promote.add_argument(
        "stage", nargs="?", default=None, help="None, Staging, Production, Archived"
    )
    promote.add_argument("--alias", default=None, help="set this alias instead of a stage")
    promote.add_argument(
        "--archive-existing", action="store_true", help="archive other versions in the stage"
    )
    promote.add_argument("--approved-by", default=None, help="approver (default: the OS user)")
    promote.set_defaults(run=_models_promote)
