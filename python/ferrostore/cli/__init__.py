"""The ``ferrostore`` command line: ``ferrostore quickstart`` and, per area, its commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ferrostore import __version__
from ferrostore.errors import FerrostoreError

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ferrostore",
        description="ferrostore: feature store, registry, vectors and lineage in one package.",
    )
    parser.add_argument("--version", action="version", version=f"ferrostore {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    quickstart = commands.add_parser(
        "quickstart",
        help="run the main job on the embedded defaults, printing each step",
        description="Write customer features to the online store in a fresh folder, read "
        "them back and print the read latency.",
    )
    quickstart.add_argument(
        "--dir",
        default=None,
        help="a folder to create (must not exist); default: a new temporary folder",
    )
    quickstart.add_argument(
        "--customers", type=int, default=5000, help="customers to generate (default 5000)"
    )
    quickstart.set_defaults(run=_run_quickstart)

    from ferrostore.cli.feature_commands import add_feature_commands
    from ferrostore.cli.lineage_commands import add_lineage_commands
    from ferrostore.cli.registry_commands import add_registry_commands
    from ferrostore.cli.stack_commands import add_stack_commands

    add_feature_commands(commands)
    add_registry_commands(commands)
    add_lineage_commands(commands)
    add_stack_commands(commands)
    return parser


def _run_quickstart(args: argparse.Namespace) -> int:
    from ferrostore.cli.quickstart import run_quickstart

    run_quickstart(args.dir, customers=args.customers)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    args = _parser().parse_args(argv)
    try:
        return int(args.run(args))
    except FerrostoreError as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
