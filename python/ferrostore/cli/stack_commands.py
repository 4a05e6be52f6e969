"""Stack commands: ``ferrostore stack plan | apply | destroy | history``.

The top-level ``ferrostore plan`` / ``apply`` / ``destroy`` run these too when the working
directory holds a ``ferrostore.yaml`` or ``--file`` is given (see :func:`stack_wanted`);
otherwise ``plan`` and ``apply`` keep working on the feature repo.

Exit codes of ``plan``: 0 no changes, 2 changes, 1 error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Any

from ferrostore.errors import InvalidArgument
from ferrostore.stack.spec import STACK_FILE

__all__ = ["add_stack_commands", "add_stack_options", "run_stack", "stack_wanted"]


def stack_wanted(args: argparse.Namespace) -> bool:
    """Whether a top-level ``plan`` / ``apply`` means the stack rather than the feature repo.

    Yes when ``--file`` is given, or when no ``--repo`` is and the working directory holds a
    ``ferrostore.yaml``.
    """
    if getattr(args, "file", None):
        return True
    if getattr(args, "repo", ".") not in (".", None):
        return False
    return Path(STACK_FILE).is_file()


def _file(args: argparse.Namespace) -> str:
    return str(args.file or STACK_FILE)


def _plan(args: argparse.Namespace) -> int:
    from ferrostore.stack import plan_stack

    plan = plan_stack(_file(args))
    print(plan.render())
    if getattr(args, "out", None):
        plan.save(args.out)
        print(f"\nSaved the plan to {args.out}: apply it with `ferrostore apply {args.out}`.")
    return 2 if plan.has_changes else 0


def _apply(args: argparse.Namespace) -> int:
    from ferrostore.stack import apply_stack

    result = apply_stack(_file(args), getattr(args, "planfile", None), prune=args.prune)
    if result.plan.has_changes:
        print(result.plan.render())
        print()
    print(result.summary())
    return 0


def _destroy(args: argparse.Namespace) -> int:
    from ferrostore.stack import destroy_stack

    planned = destroy_stack(_file(args), plan_only=True).plan
    if not planned.has_changes:
        print("Nothing to destroy.")
        return 0
    print(planned.render())
    if not args.yes:
        if not sys.stdin.isatty():
            raise InvalidArgument("destroy needs confirmation: pass --yes to run it unattended")
        answer = input(f'\nDestroy stack "{planned.stack}"? Only "yes" is accepted: ')
        if answer.strip() != "yes":
            print("Destroy cancelled.")
            return 1
    result = destroy_stack(_file(args))
    print(f"Destroy complete! Resources: {len(result.applied)} destroyed.")
    return 0


def _history(args: argparse.Namespace) -> int:
    from ferrostore.stack import diff_history, stack_history

    entries = stack_history(_file(args))
    if args.diff:
        by_id = {e.id: e for e in entries}
        missing = [i for i in args.diff if i not in by_id]
        if missing:
            raise InvalidArgument(
                f"no apply {missing[0]} in the history (known: {', '.join(map(str, by_id))})"
            )
        rows = diff_history(by_id[args.diff[0]], by_id[args.diff[1]])
        for key, old, new in rows:
            print(f"  ~ {key}: {old!r} -> {new!r}")
        print(f"{len(rows)} key(s) differ." if rows else "The two applies have the same spec.")
        return 0
    if not entries:
        print("No applies recorded.")
    for e in entries:
        when = dt.datetime.fromtimestamp(e.applied_at / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        counts: dict[str, int] = {}
        for c in e.changes:
            counts[c["action"]] = counts.get(c["action"], 0) + 1
        what = ", ".join(f"{n} {a}" for a, n in sorted(counts.items()))
        kind = "destroy" if e.destroy else "apply"
        print(f"{e.id:>5}  {when}  {kind:<7}  {e.applied_by:<12}  {e.fingerprint[:12]}  {what}")
    return 0


def _file_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--file", "-f", default=None, help=f"the stack file (default: ./{STACK_FILE})"
    )


def add_stack_options(parser: argparse.ArgumentParser, command: str) -> None:
    """Add the stack options of ``command`` (plan, apply or destroy) to a parser."""
    _file_option(parser)
    if command == "plan":
        parser.add_argument("-out", "--out", dest="out", default=None, help="save the plan")
    elif command == "apply":
        parser.add_argument("planfile", nargs="?", default=None, help="a plan saved by -out")
        parser.add_argument(
            "--prune", action="store_true", help="delete resources no longer declared"
        )
    elif command == "destroy":
        parser.add_argument("--yes", "-y", action="store_true", help="do not ask to confirm")


def run_stack(command: str, args: argparse.Namespace) -> int:
    """Run a stack command (``plan``, ``apply``, ``destroy``) with parsed ``args``."""
    return {"plan": _plan, "apply": _apply, "destroy": _destroy}[command](args)


def add_stack_commands(subparsers: Any) -> None:
    """Add ``ferrostore stack ...`` and the top-level ``ferrostore destroy``.

    Args:
        subparsers: What ``ArgumentParser.add_subparsers`` returned.
    """
    stack = subparsers.add_parser(
        "stack",
        help="plan, apply and destroy the stack declared in ferrostore.yaml",
        description="The declared stack: plan shows the diff with the current state, apply "
        "makes it so (journaled, resumable), destroy removes it.",
    )
    sub = stack.add_subparsers(dest="action", metavar="ACTION", required=True)
    plan = sub.add_parser("plan", help="show what apply would change (exit 2 if anything)")
    add_stack_options(plan, "plan")
    plan.set_defaults(run=_plan)
    apply = sub.add_parser("apply", help="apply ferrostore.yaml, or a saved plan")
    add_stack_options(apply, "apply")
    apply.set_defaults(run=_apply)
    destroy = sub.add_parser("destroy", help="remove what the stack declared")
    add_stack_options(destroy, "destroy")
    destroy.set_defaults(run=_destroy)
    history = sub.add_parser("history", help="list the recorded applies, or diff two")
    _file_option(history)
    history.add_argument(
        "--diff", nargs=2, type=int, metavar=("OLD", "NEW"), help="diff two applies' specs"
    )
    history.set_defaults(run=_history)

    top = subparsers.add_parser(
        "destroy",
        help="remove what the stack in ferrostore.yaml declared",
        description="Same as `ferrostore stack destroy`.",
    )
    add_stack_options(top, "destroy")
    top.set_defaults(run=_destroy)
