r"""``apply`` / ``destroy``: run a plan as journaled, idempotent steps, then one transaction.

An apply turns the plan into steps in dependency order: side effects first (open the
metadata database, create folders, delete / create / modify vector collections, register or
drop online tables), then one ``metadata`` step that writes every metadata change (feature
definitions, registered models and aliases, the ``stack_resources`` ownership rows and the
lineage record of the apply) in a single transaction. Each step is idempotent; the list of
steps and the ones completed are kept in a journal next to ``ferrostore.yaml``
(``.ferrostore.yaml.journal``), so an interrupted apply is resumed by running it again: the
completed steps are skipped. The journal is removed when the apply completes.

Setting ``FERROSTORE_STACK_CRASH_AFTER=N`` makes the process exit (``os._exit``) right after
its N-th completed step: tests use it to interrupt an apply midway.

Example:
    >>> import pathlib, tempfile
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (root / "ferrostore.yaml").write_text("name: demo\nmodels:\n  - name: m\n")
    >>> apply_stack(root).plan.count("create")
    3
    >>> apply_stack(root).plan.has_changes
    False
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ferrostore.errors import Conflict, InvalidArgument, NotFound
from ferrostore.metadata import tables as t
from ferrostore.stack.plan import (
    Change,
    Observed,
    Plan,
    Resource,
    StackContext,
    _digest,
    flatten,
    make_plan,
    mask,
)
from ferrostore.stack.spec import STACK_FILE, load_stack

__all__ = [
    "CRASH_AFTER_ENV",
    "ApplyResult",
    "HistoryEntry",
    "apply_stack",
    "destroy_stack",
    "diff_history",
    "journal_path",
    "plan_stack",
    "stack_history",
]

CRASH_AFTER_ENV = "FERROSTORE_STACK_CRASH_AFTER"
"""Test hook: exit the process right after this many completed apply steps."""
_FEATURE_KINDS = ("entity", "feature_view", "feature_service")
_JOURNAL_FORMAT = "ferrostore.stack.journal/1"


@dataclass
class ApplyResult:
    """What an apply or destroy did.

    Attributes:
        plan: The plan executed.
        applied: The changes made.
        skipped: Deletes left out (no ``--prune``).
        resumed: Whether an interrupted apply was resumed.
        steps_skipped: Steps already completed by the interrupted apply.
        execution_id: The lineage execution recording the apply (``None`` if nothing changed).
    """

    plan: Plan
    applied: list[Change] = field(default_factory=list)
    skipped: list[Change] = field(default_factory=list)
    resumed: bool = False
    steps_skipped: int = 0
    execution_id: int | None = None

    def summary(self) -> str:
        """The closing line, e.g. ``Apply complete! Resources: 1 added, ...``."""
        if not self.applied:
            note = f" ({len(self.skipped)} delete(s) skipped: use --prune)" if self.skipped else ""
            return f"No changes.{note}"
        n = {a: sum(1 for c in self.applied if c.action == a) for a in _ACTIONS}
        text = (
            f"Apply complete! Resources: {n['create']} added, {n['update']} changed, "
            f"{n['replace']} replaced, {n['delete']} destroyed."
        )
        if self.skipped:
            text += f" {len(self.skipped)} delete(s) skipped: use --prune."
        if self.resumed:
            text += f" (resumed an interrupted apply: {self.steps_skipped} step(s) were done)"
        return text


_ACTIONS = ("create", "update", "replace", "delete")


def _file(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    return p / STACK_FILE if p.is_dir() else p


def journal_path(stack_file: str | os.PathLike[str]) -> Path:
    """The journal of an apply in progress: ``.<file name>.journal`` next to the stack file."""
    f = _file(stack_file).absolute()
    return f.with_name(f".{f.name}.journal")


def plan_stack(path: str | os.PathLike[str] = ".") -> Plan:
    """Plan the stack of ``ferrostore.yaml`` (or a folder holding it) without changing it.

    Raises:
        NotFound: No stack file, a missing Parquet source, an undeclared entity.
        InvalidArgument: An invalid stack file (message starts with ``file:line:column``).
        Conflict: A protected resource would be replaced.
    """
    with StackContext(load_stack(path)) as ctx:
        return make_plan(ctx)[0]


# --------------------------------------------------------------------------- steps


def _steps(plan: Plan, prune: bool) -> list[str]:
    """The steps of a plan: ``action:resource`` ids, side effects first, ``metadata`` last."""
    steps: list[str] = []
    for c in plan.changes:
        if c.action == "delete" and not prune:
            continue
        if c.kind == "metadata_database" and c.action != "delete":
            steps.append(f"open-db:{c.id}")
        elif c.kind in ("artifact_store", "feature_repo") and c.action != "delete":
            steps.append(f"mkdir:{c.id}")
        elif c.kind == "collection":
            if c.action in ("delete", "replace"):
                steps.append(f"collection-delete:{c.id}")
            if c.action in ("create", "replace"):
                steps.append(f"collection-create:{c.id}")
            if c.action == "update":
                steps.append(f"collection-modify:{c.id}")
        elif c.kind == "feature_view":
            if c.action in ("delete", "replace"):
                steps.append(f"online-drop:{c.id}")
            if c.action != "delete":
                steps.append(f"online-register:{c.id}")
    steps.append("metadata:transaction")
    return steps


def _collection_metadata(res: Resource, existing: Mapping[str, Any] | None) -> dict[str, Any]:
    f = res.fields
    managed = {k[9:] for k in f if k.startswith("metadata.")}
    meta = {k: v for k, v in (existing or {}).items() if not k.startswith(("hnsw:", "ferrostore:"))}
    meta = {k: v for k, v in meta.items() if k not in managed or f"metadata.{k}" in f}
    meta.update({k[9:]: v for k, v in f.items() if k.startswith("metadata.")})
    return {
        **meta,
        "hnsw:space": f["space"],
        "hnsw:M": f["index.M"],
        "hnsw:construction_ef": f["index.construction_ef"],
        "hnsw:search_ef": f["index.search_ef"],
        "ferrostore:dimension": f["dimension"],
    }


def _run_step(step: str, ctx: StackContext, want: Mapping[str, Resource], seen: Observed) -> None:
    action, _, rid = step.partition(":")
    name = rid.partition(".")[2]
    if action == "open-db":
        ctx.db()
    elif action == "mkdir":
        res = want[rid]
        folder = res.fields.get("root") or res.fields.get("online_store.path")
        Path(str(folder)).mkdir(parents=True, exist_ok=True)
    elif action == "collection-delete":
        with contextlib.suppress(NotFound):
            ctx.vector_client().delete_collection(name)
    elif action == "collection-create":
        ctx.vector_client().get_or_create_collection(
            name, metadata=_collection_metadata(want[rid], None), embedding_function=None
        )
    elif action == "collection-modify":
        coll = ctx.vector_client().get_collection(name, embedding_function=None)
        coll.modify(metadata=_collection_metadata(want[rid], coll.metadata))
    elif action == "online-drop":
        with contextlib.suppress(NotFound):
            ctx.feature_store().online_store.delete_view(name)
    elif action == "online-register":
        store = ctx.feature_store()
        view = want[rid].info["obj"]
        if view.online:
            store._register_online(view, replace=True)
        else:
            with contextlib.suppress(NotFound):
                store.online_store.delete_view(name)
    else:  # pragma: no cover - steps come from _steps
        raise InvalidArgument(f"unknown apply step {step!r}")


def _now_us() -> int:
    return int(time.time() * 1e6)


def _write_feature(conn: Any, project: str, res: Resource) -> None:
    from ferrostore.features.definitions import fingerprint

    fo = t.feature_registry_objects.c
    spec = res.spec or {}
    where = (fo.project == project) & (fo.kind == res.kind) & (fo.name == res.name)
    values = {"spec": json.dumps(spec, sort_keys=True), "fingerprint": fingerprint(spec)}
    now = _now_us()
    if (
        conn.execute(
            sa.update(t.feature_registry_objects).where(where).values(updated_at=now, **values)
        ).rowcount
        == 0
    ):
        conn.execute(
            sa.insert(t.feature_registry_objects).values(
                project=project,
                kind=res.kind,
                name=res.name,
                created_at=now,
                updated_at=now,
                **values,
            )
        )


def _model_event(
    conn: Any, name: str, version: int | None, kind: str, actor: str, **extra: Any
) -> None:
    conn.execute(
        sa.insert(t.model_registry_events).values(
            name=name,
            version=version,
            kind=kind,
            actor=actor,
            timestamp=int(time.time() * 1000),
            **extra,
        )
    )


def _write_model(conn: Any, change: Change, actor: str) -> None:
    rm, tg, al, mv = (
        t.registered_models.c,
        t.registered_model_tags.c,
        t.registered_model_aliases.c,
        t.model_versions.c,
    )
    name, now = change.name, int(time.time() * 1000)
    exists = conn.execute(sa.select(rm.name).where(rm.name == name)).first() is not None
    if change.action == "delete":
        if exists:
            _model_event(conn, name, None, "model_deleted", actor)
            conn.execute(sa.delete(t.registered_models).where(rm.name == name))
        return
    if not exists:
        conn.execute(
            sa.insert(t.registered_models).values(
                name=name, creation_time=now, last_updated_time=now
            )
        )
    versions = {
        int(v) for v in conn.execute(sa.select(mv.version).where(mv.name == name)).scalars()
    }
    for fc in change.fields:
        key = fc.key
        if key == "description":
            conn.execute(
                sa.update(t.registered_models).where(rm.name == name).values(description=fc.new)
            )
        elif key.startswith("tags."):
            tag = key[5:]
            conn.execute(sa.delete(t.registered_model_tags).where(tg.name == name, tg.key == tag))
            if fc.new is not None:
                conn.execute(
                    sa.insert(t.registered_model_tags).values(name=name, key=tag, value=str(fc.new))
                )
        elif key.startswith("aliases."):
            alias = key[8:]
            old = conn.execute(
                sa.select(al.version).where(al.name == name, al.alias == alias)
            ).scalar()
            if fc.new is not None and int(fc.new) not in versions:
                continue
            conn.execute(
                sa.delete(t.registered_model_aliases).where(al.name == name, al.alias == alias)
            )
            if fc.new is None:
                if old is not None:
                    _model_event(conn, name, int(old), "alias_deleted", actor, alias=alias)
                continue
            conn.execute(
                sa.insert(t.registered_model_aliases).values(
                    name=name, alias=alias, version=int(fc.new)
                )
            )
            _model_event(
                conn, name, int(fc.new), "alias_set", actor, alias=alias,
                from_stage=None if old is None else f"v{old}",
            )  # fmt: skip
    conn.execute(
        sa.update(t.registered_models).where(rm.name == name).values(last_updated_time=now)
    )


def _metadata_step(
    ctx: StackContext,
    plan: Plan,
    want: Mapping[str, Resource],
    seen: Observed,
    executed: Sequence[Change],
    *,
    destroy: bool,
) -> int | None:
    from ferrostore.lineage.recording import lineage_store, record_stack_apply
    from ferrostore.registry.store import current_user

    spec = ctx.spec
    actor = current_user()
    project = next(
        (i.partition(".")[2] for i in [*want, *seen.owned] if i.startswith("feature_repo.")), None
    )
    db = ctx.db()
    if executed:
        lineage_store(db)  # declares the lineage types in their own transaction, first

    def work(conn: Any) -> int | None:
        fo, sr = t.feature_registry_objects.c, t.stack_resources.c
        for change in executed:
            if change.kind in _FEATURE_KINDS and project is not None:
                if change.action == "delete":
                    conn.execute(
                        sa.delete(t.feature_registry_objects).where(
                            (fo.project == project)
                            & (fo.kind == change.kind)
                            & (fo.name == change.name)
                        )
                    )
                else:
                    _write_feature(conn, project, want[change.id])
            elif change.kind == "model":
                _write_model(conn, change, actor)
        now = int(time.time() * 1000)
        if not destroy:
            for rid, res in want.items():
                values = {
                    "kind": res.kind,
                    "spec": json.dumps(res.fields, sort_keys=True, default=str),
                    "protect": res.protect,
                    "applied_at": now,
                }
                where = (sr.stack == spec.name) & (sr.resource == rid)
                if (
                    conn.execute(
                        sa.update(t.stack_resources).where(where).values(**values)
                    ).rowcount
                    == 0
                ):
                    conn.execute(
                        sa.insert(t.stack_resources).values(stack=spec.name, resource=rid, **values)
                    )
        for change in executed:
            if change.action == "delete":
                conn.execute(
                    sa.delete(t.stack_resources).where(
                        (sr.stack == spec.name) & (sr.resource == change.id)
                    )
                )
        if not executed:
            return None
        raw = {} if destroy else _masked(spec.raw)
        return record_stack_apply(
            db,
            spec.name,
            spec=raw,
            fingerprint=_digest(raw) if destroy else plan.spec_fingerprint,
            changes=[{**c.to_dict(), "destroy": destroy} for c in executed],
            applied_by=actor,
            conn=conn,
        )

    return db.run_in_transaction(work)


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, Mapping):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value


# --------------------------------------------------------------------------- journal


def _read_journal(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and data.get("format") == _JOURNAL_FORMAT else None


def _write_journal(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as fh:
        fh.write(json.dumps(data, sort_keys=True, default=str))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _execute(
    ctx: StackContext,
    plan: Plan,
    want: Mapping[str, Resource],
    seen: Observed,
    *,
    prune: bool,
    destroy: bool,
    journal: dict[str, Any] | None,
) -> ApplyResult:
    jpath = journal_path(ctx.spec.path)
    if journal is None:
        journal = {
            "format": _JOURNAL_FORMAT,
            "mode": "destroy" if destroy else "apply",
            "prune": prune,
            "plan": plan.to_dict(),
            "steps": _steps(plan, prune),
            "done": [],
        }
    resumed = bool(journal["done"])
    done = list(journal["done"])
    skipped_steps = len(done)
    executed = [c for c in plan.changes if c.action != "delete" or prune]
    skipped = [c for c in plan.changes if c.action == "delete" and not prune]
    result = ApplyResult(plan, executed, skipped, resumed, skipped_steps)
    if not executed:
        # Nothing to change: still record ownership of adopted resources.
        if ctx.db_exists() and not destroy:
            _metadata_step(ctx, plan, want, seen, [], destroy=False)
        jpath.unlink(missing_ok=True)
        return result
    crash_after = int(os.environ.get(CRASH_AFTER_ENV, "0") or 0)
    ran = 0
    _write_journal(jpath, journal)
    for step in journal["steps"]:
        if step in done:
            continue
        if step == "metadata:transaction":
            result.execution_id = _metadata_step(ctx, plan, want, seen, executed, destroy=destroy)
        else:
            _run_step(step, ctx, want, seen)
        done.append(step)
        journal["done"] = done
        _write_journal(jpath, journal)
        ran += 1
        if crash_after and ran >= crash_after:
            os._exit(75)
    jpath.unlink(missing_ok=True)
    return result


def apply_stack(
    path: str | os.PathLike[str] = ".",
    plan_file: str | os.PathLike[str] | None = None,
    *,
    prune: bool = False,
) -> ApplyResult:
    """Apply ``ferrostore.yaml``: plan, then run the steps (resuming an interrupted apply).

    Args:
        path: The stack file or its folder.
        plan_file: A plan saved by ``plan -out``: refused if the file or the state changed.
        prune: Also delete resources the stack owns but no longer declares.

    Returns:
        What was applied.

    Raises:
        Conflict: A stale saved plan; a protected resource to delete or replace.
        NotFound, InvalidArgument, SchemaMismatch: As :func:`plan_stack`.
    """
    with StackContext(load_stack(path)) as ctx:
        plan, want, seen = make_plan(ctx)
        jpath = journal_path(ctx.spec.path)
        journal = _read_journal(jpath)
        if journal is not None and (
            journal["mode"] != "apply"
            or journal["plan"]["spec_fingerprint"] != plan.spec_fingerprint
            or bool(journal["prune"]) != prune
        ):
            journal = None  # another spec: plan afresh from the (consistent) current state
        if journal is not None:
            plan = Plan.from_dict(journal["plan"])
        elif plan_file is not None:
            saved = Plan.load(plan_file)
            if saved.spec_fingerprint != plan.spec_fingerprint:
                raise Conflict(
                    f"the saved plan {str(plan_file)!r} was made from another version of "
                    f"{ctx.spec.path}: run plan again"
                )
            if saved.state_fingerprint != plan.state_fingerprint:
                raise Conflict(
                    f"the state changed since the saved plan {str(plan_file)!r} was made "
                    f"(fingerprint {saved.state_fingerprint[:12]} != "
                    f"{plan.state_fingerprint[:12]}): run plan again"
                )
        if prune:
            protected = [c.id for c in plan.changes if c.action == "delete" and c.protect]
            if protected:
                raise Conflict(
                    f"{', '.join(protected)} is protected (protect: true) and is never "
                    "destroyed: declare it again, or apply without --prune"
                )
        return _execute(ctx, plan, want, seen, prune=prune, destroy=False, journal=journal)


def destroy_stack(path: str | os.PathLike[str] = ".", *, plan_only: bool = False) -> ApplyResult:
    """Remove what the stack declared or owns (the metadata database and artifact store stay).

    Args:
        path: The stack file or its folder.
        plan_only: Only plan the destroy (the result's ``applied`` is then empty).

    Raises:
        Conflict: A resource of the stack is protected (nothing is destroyed).
    """
    with StackContext(load_stack(path)) as ctx:
        plan, want, seen = make_plan(ctx, destroy=True)
        if plan_only:
            return ApplyResult(plan)
        journal = _read_journal(journal_path(ctx.spec.path))
        if journal is not None and journal["mode"] == "destroy":
            plan = Plan.from_dict(journal["plan"])
        else:
            journal = None
        return _execute(ctx, plan, want, seen, prune=True, destroy=True, journal=journal)


# --------------------------------------------------------------------------- history


@dataclass(frozen=True)
class HistoryEntry:
    """One recorded apply of a stack.

    Attributes:
        id: The lineage execution id.
        applied_at: Milliseconds since the epoch.
        applied_by: Who applied it.
        fingerprint: The spec's fingerprint.
        spec: The spec applied (``{}`` for a destroy).
        changes: The changes made.
    """

    id: int
    applied_at: int
    applied_by: str
    fingerprint: str
    spec: dict[str, Any]
    changes: list[dict[str, Any]]

    @property
    def destroy(self) -> bool:
        """Whether this entry is a destroy."""
        return any(c.get("destroy") for c in self.changes)


def stack_history(path: str | os.PathLike[str] = ".") -> list[HistoryEntry]:
    """The applies of the stack, oldest first, as recorded in lineage."""
    from ferrostore.lineage.recording import lineage_store

    with StackContext(load_stack(path)) as ctx:
        if not ctx.db_exists():
            return []
        ms = lineage_store(ctx.db())
        context = ms.get_context_by_type_and_name("ferrostore.Stack", ctx.spec.name)
        if context is None or context.id is None:
            return []
        out = []
        for ex in ms.get_executions_by_context(context.id):
            if ex.type != "ferrostore.StackApply" or ex.id is None:
                continue
            p = ex.properties
            out.append(
                HistoryEntry(
                    ex.id,
                    int(ex.create_time_since_epoch or 0),
                    str(p.get("applied_by", "")),
                    str(p.get("fingerprint", "")),
                    dict(p.get("spec") or {}),  # type: ignore[arg-type]
                    list(p.get("changes") or []),  # type: ignore[arg-type]
                )
            )
        return sorted(out, key=lambda e: e.id)


def diff_history(old: HistoryEntry, new: HistoryEntry) -> list[tuple[str, Any, Any]]:
    """The keys of the spec that differ between two applies: ``(dotted key, old, new)``."""
    a, b = flatten(old.spec), flatten(new.spec)
    return [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
