"""The lineage store: types, nodes, events, links, filters, subgraphs, concurrent publishers."""

from __future__ import annotations

import multiprocessing
import random
import traceback
from collections import deque
from pathlib import Path
from typing import Any

import pytest

from ferrostore.errors import (
    AlreadyExists,
    Conflict,
    InvalidArgument,
    NotFound,
    SchemaMismatch,
)
from ferrostore.lineage import (
    Artifact,
    ArtifactState,
    ArtifactType,
    Association,
    Attribution,
    Context,
    ContextType,
    Direction,
    Event,
    EventType,
    Execution,
    ExecutionState,
    ExecutionType,
    MetadataStore,
    ParentContext,
)

TIMEOUT_S = 120


@pytest.fixture
def store(metadata_url: str) -> Any:
    with MetadataStore(metadata_url) as s:
        s.put_artifact_type(
            ArtifactType("Dataset", {"rows": "INT", "split": "STRING", "score": "DOUBLE"})
        )
        s.put_artifact_type(ArtifactType("Model", {"framework": "STRING"}))
        s.put_execution_type(ExecutionType("Trainer", {"epochs": "INT"}))
        s.put_context_type(ContextType("Experiment", {"owner": "STRING"}))
        yield s


def test_types_add_properties_and_refuse_retyping(store: MetadataStore) -> None:
    first = store.get_artifact_type("Dataset").id
    same = store.put_artifact_type(ArtifactType("Dataset", {"rows": "INT", "fmt": "STRING"}))
    assert same == first
    assert store.get_artifact_type("Dataset").properties["fmt"] == "STRING"
    assert set(store.get_artifact_type("Dataset").properties) == {"rows", "split", "score", "fmt"}
    with pytest.raises(SchemaMismatch, match=r"'rows' is INT.*STRING"):
        store.put_artifact_type(ArtifactType("Dataset", {"rows": "STRING"}))
    with pytest.raises(SchemaMismatch, match="can_add_fields"):
        store.put_artifact_type(ArtifactType("Dataset", {"new": "INT"}), can_add_fields=False)
    with pytest.raises(NotFound, match="'Nope'"):
        store.get_execution_type("Nope")
    with pytest.raises(InvalidArgument, match="'FLOAT'"):
        ArtifactType("X", {"a": "FLOAT"})
    # the same name in another kind is another type
    assert store.put_execution_type(ExecutionType("Dataset")) != first
    assert [t.name for t in store.get_context_types()] == ["Experiment"]


def test_artifacts_roundtrip_properties_and_states(store: MetadataStore) -> None:
    ids = store.put_artifacts(
        [
            Artifact(
                type="Dataset",
                name="train",
                uri="/data/train.parquet",
                properties={"rows": 10, "split": "train", "score": 1},
                custom_properties={"ok": True, "meta": {"cols": ["a", "b"]}, "w": 0.5},
            ),
            Artifact(type="Model", uri="models:/m/1", state=ArtifactState.PENDING),
        ]
    )
    train, model = store.get_artifacts_by_id(ids)
    assert train.type == "Dataset" and train.name == "train"
    assert train.properties == {"rows": 10, "split": "train", "score": 1.0}
    assert train.custom_properties == {"ok": True, "meta": {"cols": ["a", "b"]}, "w": 0.5}
    assert model.state is ArtifactState.PENDING and model.name is None
    # update by id merges properties
    store.put_artifacts([Artifact(id=ids[0], type="Dataset", properties={"rows": 11})])
    again = store.get_artifacts_by_id([ids[0]])[0]
    assert again.properties == {"rows": 11, "split": "train", "score": 1.0}
    assert again.last_update_time_since_epoch >= again.create_time_since_epoch  # type: ignore[operator]


def test_bad_artifacts_change_nothing(store: MetadataStore) -> None:
    good = Artifact(type="Dataset", uri="a")
    with pytest.raises(SchemaMismatch, match="'nope' is not declared"):
        store.put_artifacts([good, Artifact(type="Dataset", properties={"nope": 1})])
    with pytest.raises(SchemaMismatch, match=r"'rows' = 'ten'.*INT"):
        store.put_artifacts([Artifact(type="Dataset", properties={"rows": "ten"})])
    with pytest.raises(SchemaMismatch, match=r"BOOLEAN|INT"):
        store.put_artifacts([Artifact(type="Dataset", properties={"rows": True})])
    with pytest.raises(NotFound, match="'Unknown'"):
        store.put_artifacts([Artifact(type="Unknown")])
    with pytest.raises(InvalidArgument, match="needs a type_id or a type name"):
        store.put_artifacts([Artifact()])
    with pytest.raises(InvalidArgument, match="expected an int, float"):
        store.put_artifacts([Artifact(type="Dataset", custom_properties={"x": object()})])
    with pytest.raises(InvalidArgument, match="state 'GONE'"):
        store.put_artifacts([Artifact(type="Dataset", state="GONE")])  # type: ignore[arg-type]
    with pytest.raises(NotFound, match="artifact 999"):
        store.put_artifacts([Artifact(id=999, type="Dataset")])
    store.put_artifacts([Artifact(type="Dataset", name="dup")])
    with pytest.raises(AlreadyExists):
        store.put_artifacts(
            [Artifact(type="Dataset", uri="x"), Artifact(type="Dataset", name="dup")]
        )
    assert [a.name for a in store.get_artifacts()] == ["dup"]


def test_external_ids_are_upserts_of_one_type(store: MetadataStore) -> None:
    a = store.put_artifacts([Artifact(type="Dataset", external_id="ds:1", uri="v1")])
    b = store.put_artifacts([Artifact(type="Dataset", external_id="ds:1", uri="v2")])
    assert a == b
    assert store.get_artifacts(external_ids=["ds:1"])[0].uri == "v2"
    with pytest.raises(Conflict, match="another type"):
        store.put_artifacts([Artifact(type="Model", external_id="ds:1")])


def test_filtered_listing(store: MetadataStore) -> None:
    ctx = store.put_contexts([Context(type="Experiment", name="exp", properties={"owner": "ann"})])
    ids = store.put_artifacts(
        [
            Artifact(type="Dataset", name=f"d{i}", uri=f"u{i % 3}", properties={"rows": i})
            for i in range(10)
        ]
        + [Artifact(type="Model", name="m", custom_properties={"team": "fraud"})]
    )
    store.put_attributions_and_associations([Attribution(ctx[0], i) for i in ids[:4]], [])
    assert len(store.get_artifacts(type_name="Dataset")) == 10
    assert [a.name for a in store.get_artifacts(uri="u1")] == ["d1", "d4", "d7"]
    assert [a.name for a in store.get_artifacts(properties={"rows": 5})] == ["d5"]
    assert [a.name for a in store.get_artifacts(custom_properties={"team": "fraud"})] == ["m"]
    assert [a.name for a in store.get_artifacts(context_id=ctx[0])] == ["d0", "d1", "d2", "d3"]
    page = store.get_artifacts(type_name="Dataset", limit=3, offset=2, descending=True)
    assert [a.name for a in page] == ["d7", "d6", "d5"]
    assert store.get_artifact_by_type_and_name("Model", "m") is not None
    assert store.get_artifact_by_type_and_name("Model", "zz") is None
    assert store.get_contexts(properties={"owner": "ann"})[0].name == "exp"
    assert [c.name for c in store.get_contexts_by_artifact(ids[0])] == ["exp"]
    with pytest.raises(InvalidArgument, match="order_by"):
        store.get_artifacts(order_by="uri; drop table x")
    with pytest.raises(InvalidArgument, match="limit"):
        store.get_artifacts(limit=0)


def test_events_links_and_parent_contexts(store: MetadataStore) -> None:
    (data,) = store.put_artifacts([Artifact(type="Dataset", uri="d")])
    (run,) = store.put_executions(
        [
            Execution(
                type="Trainer", last_known_state=ExecutionState.RUNNING, properties={"epochs": 3}
            )
        ]
    )
    store.put_events([Event(EventType.INPUT, data, run, path=["examples", 0])])
    store.put_events([Event(EventType.INPUT, data, run, path=["examples", 0])])  # idempotent
    (event,) = store.get_events_by_execution_ids([run])
    assert event.path == ["examples", 0] and event.type is EventType.INPUT
    assert store.get_events_by_artifact_ids([data]) == [event]
    with pytest.raises(NotFound, match="artifact 77"):
        store.put_events([Event(EventType.OUTPUT, 77, run)])
    with pytest.raises(InvalidArgument, match="event type"):
        store.put_events([Event("READ", data, run)])  # type: ignore[arg-type]
    parent, child, grandchild = store.put_contexts(
        [Context(type="Experiment", name=n) for n in ("p", "c", "g")]
    )
    store.put_parent_contexts([ParentContext(child, parent), ParentContext(grandchild, child)])
    assert [c.name for c in store.get_parent_contexts_by_context(child)] == ["p"]
    assert [c.name for c in store.get_children_contexts_by_context(parent)] == ["c"]
    with pytest.raises(InvalidArgument, match="cycle"):
        store.put_parent_contexts([ParentContext(parent, grandchild)])
    store.put_attributions_and_associations([], [Association(child, run)])
    assert [e.id for e in store.get_executions_by_context(child)] == [run]
    assert [c.name for c in store.get_contexts_by_execution(run)] == ["c"]
    with pytest.raises(Conflict):
        store.put_attributions_and_associations([Attribution(child, 12345)], [])


def test_put_execution_is_atomic_and_idempotent(store: MetadataStore) -> None:
    def publish() -> tuple[int, list[int], list[int]]:
        return store.put_execution(
            Execution(type="Trainer", external_id="run:1", last_known_state="COMPLETE"),
            [
                (Artifact(type="Dataset", external_id="ds:train", uri="t"), Event(EventType.INPUT)),
                (Artifact(type="Model", external_id="model:1", uri="m"), Event(EventType.OUTPUT)),
            ],
            [Context(type="Experiment", name="exp")],
        )

    first, second = publish(), publish()
    assert first == second
    assert len(store.get_events_by_execution_ids([first[0]])) == 2
    assert [a.id for a in store.get_artifacts_by_context(first[2][0])] == first[1]
    with pytest.raises(SchemaMismatch):
        store.put_execution(
            Execution(type="Trainer", external_id="run:2"),
            [(Artifact(type="Dataset", external_id="ds:x"), Event(EventType.INPUT))],
            [Context(type="Experiment", name="exp2", properties={"owner": 3})],
        )
    assert store.get_executions(external_ids=["run:2"]) == []
    assert store.get_artifacts(external_ids=["ds:x"]) == []
    with pytest.raises(AlreadyExists):
        store.put_execution(
            Execution(type="Trainer"),
            [],
            [Context(type="Experiment", name="exp")],
            reuse_context_if_already_exist=False,
        )


def _hand_graph(store: MetadataStore) -> dict[str, int]:
    """raw -> [clean] -> table -> [train] -> model -> [eval] -> report; table -> [stats] -> s."""
    ids: dict[str, int] = {}
    for name in ("raw", "table", "model", "report", "s"):
        ids[name] = store.put_artifacts([Artifact(type="Dataset", name=name)])[0]
    for name, ins, outs in (
        ("clean", ["raw"], ["table"]),
        ("train", ["table"], ["model"]),
        ("eval", ["model", "table"], ["report"]),
        ("stats", ["table"], ["s"]),
    ):
        ids[name] = store.put_executions([Execution(type="Trainer", name=name)])[0]
        store.put_events(
            [Event(EventType.INPUT, ids[i], ids[name]) for i in ins]
            + [Event(EventType.OUTPUT, ids[o], ids[name]) for o in outs]
        )
    return ids


def _names(graph: Any) -> set[str]:
    return {a.name for a in graph.artifacts} | {e.name for e in graph.executions}


def test_hand_built_subgraphs(store: MetadataStore) -> None:
    ids = _hand_graph(store)
    model = ("artifact", ids["model"])
    up = store.get_lineage_subgraph(model, 10, Direction.UPSTREAM)
    assert _names(up) == {"model", "train", "table", "clean", "raw"}
    assert up.hops[("artifact", ids["raw"])] == 4
    assert store.get_lineage_subgraph(model, 2, "UPSTREAM").hops == {
        ("artifact", ids["model"]): 0,
        ("execution", ids["train"]): 1,
        ("artifact", ids["table"]): 2,
    }
    down = store.get_lineage_subgraph(("artifact", ids["table"]), 10, Direction.DOWNSTREAM)
    assert _names(down) == {"table", "train", "model", "eval", "report", "stats", "s"}
    both = store.get_lineage_subgraph(("execution", ids["stats"]), 2, Direction.BOTH)
    assert _names(both) == {"stats", "table", "s", "clean", "train", "eval"}
    assert {(e.artifact_id, e.execution_id) for e in both.events} == {
        (ids["s"], ids["stats"]),
        (ids["table"], ids["stats"]),
        (ids["table"], ids["clean"]),
        (ids["table"], ids["train"]),
        (ids["table"], ids["eval"]),
    }
    assert _names(store.get_lineage_subgraph(model, 0)) == {"model"}
    with pytest.raises(NotFound, match="artifact 999"):
        store.get_lineage_subgraph(("artifact", 999), 1)
    with pytest.raises(InvalidArgument, match="max_hops"):
        store.get_lineage_subgraph(model, -1)
    with pytest.raises(InvalidArgument, match="direction"):
        store.get_lineage_subgraph(model, 1, "SIDEWAYS")


def _reference(
    edges: list[tuple[int, int]], start: int, max_hops: int, direction: Direction
) -> dict[int, int]:
    forward: dict[int, list[int]] = {}
    backward: dict[int, list[int]] = {}
    for src, dst in edges:
        forward.setdefault(src, []).append(dst)
        backward.setdefault(dst, []).append(src)
    seen = {start: 0}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if seen[node] == max_hops:
            continue
        nexts: list[int] = []
        if direction in (Direction.DOWNSTREAM, Direction.BOTH):
            nexts += forward.get(node, [])
        if direction in (Direction.UPSTREAM, Direction.BOTH):
            nexts += backward.get(node, [])
        for nxt in nexts:
            if nxt not in seen:
                seen[nxt] = seen[node] + 1
                queue.append(nxt)
    return seen


def test_subgraphs_on_thousands_of_nodes_match_a_reference_walk(store: MetadataStore) -> None:
    rng = random.Random(7)
    n_artifacts, n_executions = 2000, 1500
    artifact_ids = store.put_artifacts(
        [Artifact(type="Dataset", uri=f"a{i}") for i in range(n_artifacts)]
    )
    execution_ids = store.put_executions(
        [Execution(type="Trainer", name=f"e{i}") for i in range(n_executions)]
    )
    events = []
    edges = []  # data-flow edges in node keys ("a", i) / ("e", i) encoded as ints
    for j, eid in enumerate(execution_ids):
        layer_lo = j * (n_artifacts - 40) // n_executions
        inputs = rng.sample(range(max(0, layer_lo - 40), layer_lo + 2), 2)
        outputs = rng.sample(range(layer_lo + 2, layer_lo + 30), 2)
        for i in inputs:
            events.append(Event(EventType.INPUT, artifact_ids[i], eid))
            edges.append((2 * artifact_ids[i], 2 * eid + 1))
        for i in outputs:
            events.append(Event(EventType.OUTPUT, artifact_ids[i], eid))
            edges.append((2 * eid + 1, 2 * artifact_ids[i]))
    store.put_events(events)
    for direction in Direction:
        for start_index in (10, 777, 1500):
            start = artifact_ids[start_index]
            for hops in (1, 3, 6):
                graph = store.get_lineage_subgraph(("artifact", start), hops, direction)
                expected = _reference(edges, 2 * start, hops, direction)
                got = {
                    (2 * i if kind == "artifact" else 2 * i + 1): hop
                    for (kind, i), hop in graph.hops.items()
                }
                assert got == expected, (direction, start_index, hops)
                assert len(graph.artifacts) + len(graph.executions) == len(expected)
                wanted = {(s, d) for s, d in edges if s in expected and d in expected}
                got_edges = {
                    (2 * e.artifact_id, 2 * e.execution_id + 1)  # type: ignore[operator]
                    if e.type.is_input
                    else (2 * e.execution_id + 1, 2 * e.artifact_id)  # type: ignore[operator]
                    for e in graph.events
                }
                assert got_edges == wanted


def _publisher(url: str, index: int, start: Any, results: Any) -> None:
    try:
        with MetadataStore(url) as store:
            store.put_artifact_type(ArtifactType("Dataset", {"rows": "INT"}))
            store.put_execution_type(ExecutionType("Trainer"))
            store.put_context_type(ContextType("Experiment"))
            start.wait(TIMEOUT_S)
            got = []
            for k in range(5):
                got.append(
                    store.put_execution(
                        Execution(
                            type="Trainer", external_id=f"run:{k}", last_known_state="COMPLETE"
                        ),
                        [
                            (
                                Artifact(
                                    type="Dataset",
                                    external_id="ds:shared",
                                    uri="s",
                                    properties={"rows": 1},
                                ),
                                Event(EventType.INPUT),
                            ),
                            (
                                Artifact(type="Dataset", external_id=f"out:{k}", uri=f"o{k}"),
                                Event(EventType.OUTPUT),
                            ),
                        ],
                        [Context(type="Experiment", name="shared-exp")],
                    )
                )
            results.put(("ok", got))
    except BaseException:
        results.put(("error", traceback.format_exc()))


@pytest.mark.parametrize("procs", [6])
def test_concurrent_publishers_converge(metadata_url: str, procs: int) -> None:
    MetadataStore(metadata_url).close()  # migrate once up front
    ctx = multiprocessing.get_context("spawn")
    start, results = ctx.Event(), ctx.Queue()
    workers = [
        ctx.Process(target=_publisher, args=(metadata_url, i, start, results)) for i in range(procs)
    ]
    for w in workers:
        w.start()
    start.set()
    out = [results.get(timeout=TIMEOUT_S) for _ in workers]
    for w in workers:
        w.join(TIMEOUT_S)
        assert w.exitcode == 0
    errors = [payload for status, payload in out if status != "ok"]
    assert not errors, errors[0]
    assert all(payload == out[0][1] for _, payload in out)
    with MetadataStore(metadata_url) as store:
        assert len(store.get_executions()) == 5
        assert len(store.get_artifacts()) == 6
        assert len(store.get_contexts()) == 1
        executions = [e.id for e in store.get_executions()]
        assert len(store.get_events_by_execution_ids(executions)) == 10  # type: ignore[arg-type]
        context = store.get_contexts()[0].id
        assert len(store.get_executions_by_context(context)) == 5  # type: ignore[arg-type]


def test_store_accepts_an_open_database(tmp_path: Path) -> None:
    from ferrostore.metadata import MetadataDB

    with MetadataDB(tmp_path / "m.db") as db:
        store = MetadataStore(db)
        store.put_context_type(ContextType("X"))
        store.close()  # does not close the shared database
        assert MetadataStore(db).get_context_type("X").name == "X"


def test_batched_writes_store_what_one_statement_per_row_did(store: MetadataStore) -> None:
    # Repeated external ids in one call: the later put updates (a None uri keeps the stored
    # one, properties merge, the last value wins) and the ids are the same.
    first, again = store.put_artifacts(
        [
            Artifact(
                type="Dataset", external_id="x", uri="u1", properties={"rows": 1},
                custom_properties={"k": 1, "only_first": "a"},
            ),
            Artifact(
                type="Dataset", external_id="x", properties={"split": "s"},
                custom_properties={"k": 2},
            ),
        ]
    )  # fmt: skip
    assert first == again
    (stored,) = store.get_artifacts_by_id([first])
    assert stored.uri == "u1"
    assert stored.properties == {"rows": 1, "split": "s"}
    assert stored.custom_properties == {"k": 2, "only_first": "a"}
    # Events keep their order (ids) and the first of a repeated (artifact, execution, type).
    data = Artifact(type="Dataset", external_id="ds")
    run, ids, (ctx,) = store.put_execution(
        Execution(type="Trainer", last_known_state="COMPLETE"),
        [
            (Artifact(type="Model", external_id="m"), Event(EventType.OUTPUT, path=["out"])),
            (data, Event(EventType.INPUT, path=[0])),
            (data, Event(EventType.INPUT, path=[1])),
        ],
        [Context(type="Experiment", name="e", properties={"owner": "me"})],
    )
    assert ids[1] == ids[2]
    events = store.get_events_by_execution_ids([run])
    assert [(e.type, e.artifact_id, e.path) for e in events] == [
        (EventType.OUTPUT, ids[0], ["out"]),
        (EventType.INPUT, ids[1], [0]),
    ]
    assert [a.id for a in store.get_artifacts_by_context(ctx)] == sorted(set(ids))
    assert [e.id for e in store.get_executions_by_context(ctx)] == [run]
    assert store.get_contexts_by_id([ctx])[0].properties == {"owner": "me"}


def test_identical_puts_in_one_transaction_write_once(
    store: MetadataStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ferrostore.metadata.db import SQL, DriverConnection

    seen: list[str] = []
    execute = DriverConnection.execute

    def count(self: DriverConnection, stmt: SQL, params: Any = ()) -> Any:
        if stmt.sqlite.startswith("INSERT INTO lineage_artifacts "):
            seen.append(stmt.sqlite)
        return execute(self, stmt, params)

    node = Artifact(type="Dataset", external_id="same", properties={"rows": 3})
    monkeypatch.setattr(DriverConnection, "execute", count)
    ids = store.put_artifacts([node, node, Artifact(type="Dataset", name="other"), node])
    monkeypatch.undo()
    assert ids[0] == ids[1] == ids[3] != ids[2]
    # The node without an external id may have written any row: the last put runs again.
    assert len(seen) == 3
    assert store.get_artifacts_by_id([ids[0]])[0].properties == {"rows": 3}


def test_cached_types_see_properties_declared_elsewhere(metadata_url: str) -> None:
    with MetadataStore(metadata_url) as one, MetadataStore(metadata_url) as two:
        one.put_artifact_type(ArtifactType("Table", {"rows": "INT"}))
        one.put_artifacts([Artifact(type="Table", properties={"rows": 1})])  # type cached
        two.put_artifact_type(ArtifactType("Table", {"owner": "STRING"}))
        (new,) = one.put_artifacts([Artifact(type="Table", properties={"owner": "me"})])
        assert one.get_artifacts_by_id([new])[0].properties == {"owner": "me"}
        with pytest.raises(SchemaMismatch, match="not declared"):
            one.put_artifacts([Artifact(type="Table", properties={"nope": 1})])


def test_types_of_a_rolled_back_transaction_are_not_cached(store: MetadataStore) -> None:
    class Abort(Exception):
        pass

    with pytest.raises(Abort), store.db.transaction() as conn:
        store._put_type(conn, ArtifactType("Temp", {"n": "INT"}))
        store._put_node(conn, Artifact(type="Temp", properties={"n": 1}), 1)
        raise Abort
    with pytest.raises(NotFound, match="'Temp' does not exist"):
        store.put_artifacts([Artifact(type="Temp")])


def test_write_statements_are_built_once_per_dialect() -> None:
    from ferrostore.lineage.store import _node_insert

    stmt = _node_insert("artifact", ("external_id",))
    assert stmt is _node_insert("artifact", ("external_id",))
    for sql, mark in ((stmt.sqlite, "?"), (stmt.postgresql, "%s")):
        assert 'ON CONFLICT ("external_id") DO UPDATE' in sql
        assert 'COALESCE(excluded."uri", lineage_artifacts."uri")' in sql
        assert sql.count(mark) == 7  # type, create time and the five node columns
    assert _node_insert("artifact", None) is not _node_insert("artifact", ("external_id",))
