"""pytest-benchmark suite of the online store: ferrostore against the ``lmdb`` peer.

Run with ``python -m pytest benches -m benchmark``. The same operations as
``online_side_by_side.py`` on a smaller dataset (100k entities, built once per module):
one entity per call, 1,000 random entities per call, and a write of 100k rows into a fresh
store. pytest-benchmark prints each group's table with every statistic's ratio to the
fastest contender in parentheses; nothing here asserts a time, only that the values read are
right.
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from online_side_by_side import (
    BATCH,
    FEATURE_NAMES,
    JOIN_KEY,
    VIEW,
    Ferrostore,
    LmdbPeer,
    make_dataset,
)

pytestmark = pytest.mark.benchmark

ENTITIES = 100_000
SEED = 0
CONTENDERS = {"ferrostore": Ferrostore, "lmdb_peer": LmdbPeer}


@pytest.fixture(scope="module")
def table() -> pa.Table:
    return make_dataset(ENTITIES, SEED)


@pytest.fixture(scope="module")
def expected(table: pa.Table) -> dict[int, list]:
    """Feature values per customer id, as Python numbers."""
    ids = table.column(JOIN_KEY).to_pylist()
    columns = [table.column(name).to_pylist() for name in FEATURE_NAMES]
    return {k: [c[i] for c in columns] for i, k in enumerate(ids)}


@pytest.fixture(scope="module")
def stores(table: pa.Table, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """One ferrostore and one lmdb peer store holding ``table``."""
    root = tmp_path_factory.mktemp("online-bench")
    out = {}
    for name, make in CONTENDERS.items():
        store = make(str(root / name))
        if store.write(table) != ENTITIES:
            raise RuntimeError(f"{name} did not store every row")
        out[name] = store
    yield out
    out["lmdb_peer"].close()


@pytest.fixture
def rng() -> np.random.Generator:
    """A fresh generator per test: every contender reads the same keys in the same order."""
    return np.random.default_rng(SEED + 1)


def _values(name: str, result) -> list:
    """The 5 feature values of a one-entity read, whatever the store returned."""
    if name == "ferrostore":
        return [result[f] for f in FEATURE_NAMES]
    return list(result[:5])


def _batch_values(name: str, result) -> list[list]:
    """The 5 feature values per entity of a many-entity read."""
    if name == "ferrostore":
        columns = [result.values.column(f"{VIEW}:{f}").to_pylist() for f in FEATURE_NAMES]
        return [list(row) for row in zip(*columns, strict=True)]
    return [list(row[:5]) for row in result]


@pytest.mark.benchmark(group="read one entity")
@pytest.mark.parametrize("name", list(CONTENDERS))
def test_read_one(benchmark, name: str, stores: dict, table: pa.Table, expected, rng) -> None:
    store = stores[name]
    keys = [int(k) for k in rng.choice(table.column(JOIN_KEY).to_numpy(), 10_000)]
    cycle = itertools.cycle(keys)
    benchmark(lambda: store.read_one(next(cycle)))
    for key in keys[:20]:
        assert _values(name, store.read_one(key)) == expected[key]


@pytest.mark.benchmark(group="read 1,000 entities")
@pytest.mark.parametrize("name", list(CONTENDERS))
def test_read_1000(benchmark, name: str, stores: dict, table: pa.Table, expected, rng) -> None:
    store = stores[name]
    ids = table.column(JOIN_KEY).to_numpy()
    batches = [rng.choice(ids, BATCH, replace=False) for _ in range(50)]
    cycle = itertools.cycle(batches)
    benchmark(lambda: store.read(next(cycle)))
    keys = batches[0]
    assert _batch_values(name, store.read(keys)) == [expected[int(k)] for k in keys]


@pytest.mark.benchmark(group="write 100k rows")
@pytest.mark.parametrize("name", list(CONTENDERS))
def test_write(benchmark, name: str, table: pa.Table, tmp_path: Path) -> None:
    make = CONTENDERS[name]
    made: list = []

    def fresh_store():
        for store in made:  # keep one store at a time on disk
            if isinstance(store, LmdbPeer):
                store.close()
        made.clear()
        folder = tmp_path / name
        shutil.rmtree(folder, ignore_errors=True)
        made.append(make(str(folder)))
        return (made[0], table), {}

    written = benchmark.pedantic(
        lambda store, data: store.write(data), setup=fresh_store, rounds=5, iterations=1
    )
    assert written == ENTITIES
    if isinstance(made[0], LmdbPeer):
        made[0].close()


#: Newer rows for every entity, split in chunks as a materialization streams them.
CHUNKS = 8


def _newer_chunks(table: pa.Table, shift_s: int) -> list[pa.Table]:
    ts = table.column("event_timestamp")
    newer = table.set_column(
        table.schema.get_field_index("event_timestamp"),
        "event_timestamp",
        pa.compute.add(ts, pa.scalar(shift_s * 1_000_000, pa.duration("us"))),
    )
    order = np.random.default_rng(SEED + 2).permutation(len(newer))
    newer = newer.take(pa.array(order))
    size = -(-len(newer) // CHUNKS)
    return [newer.slice(i, size) for i in range(0, len(newer), size)]


@pytest.mark.benchmark(group="update 100k entities in 8 chunks")
@pytest.mark.parametrize("transactions", ["one (write_chunks)", "one per chunk (write)"])
def test_chunked_update(benchmark, transactions: str, table: pa.Table, tmp_path: Path) -> None:
    store = Ferrostore(str(tmp_path / "store"))
    store.write(table)
    rounds = itertools.count(1)

    def newer() -> tuple[tuple[list[pa.Table]], dict]:
        return (_newer_chunks(table, next(rounds)),), {}

    def update(chunks: list[pa.Table]) -> int:
        if transactions.startswith("one ("):
            return store.store.write_chunks(VIEW, chunks).written
        return sum(store.store.write(VIEW, c).written for c in chunks)

    written = benchmark.pedantic(update, setup=newer, rounds=5, iterations=1)
    assert written == ENTITIES
