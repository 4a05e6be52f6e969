"""Online store side by side: ferrostore against an ``lmdb`` peer and Feast's SQLite layout.

Usage::

    python benches/online_side_by_side.py [--entities N] [--repeat R] [--seed S] [--breakdown]

One dataset (``--entities`` customers, an int64 ``customer_id``, 5 features: 2 int64,
2 float32, 1 float64, and an ``event_timestamp``) is generated once and loaded, in this one
process, into:

* ferrostore: ``OnlineStore.write`` of the pyarrow table;
* the ``lmdb`` peer: the Python ``lmdb`` package, one key per entity (the id packed as a
  big-endian int64) holding the 5 features and the timestamp struct-packed, written with
  ``putmulti`` in one transaction and read with a per-key loop in one read transaction;
* SQLite in the layout of Feast's SQLite online store: one row per (entity, feature) in
  ``(entity_key BLOB, feature_name TEXT, value BLOB, event_ts, created_ts,
  PRIMARY KEY(entity_key, feature_name))`` plus Feast's index on ``entity_key``, read with
  ``WHERE entity_key IN (...) ORDER BY entity_key`` and grouped per entity as Feast does.

Then it measures (a) one entity per call, (b) 1,000 random entities per call and (c) the
write of every row, and prints per-call p50/p99 times, ratios ``peer / ferrostore`` and one
line per target of the issue. Contenders run round-robin in blocks so that noise from other
processes falls on all of them alike. Nothing here asserts a time: the values read are
checked to agree across stores, and the numbers are printed.

Data files live in a temporary folder removed at exit.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import itertools
import os
import platform
import shutil
import sqlite3
import struct
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import lmdb
import numpy as np
import pyarrow as pa

import ferrostore
from ferrostore.features import OnlineStore
from ferrostore.features.online_store import _micros

VIEW = "customer"
JOIN_KEY = "customer_id"
#: The 5 features in stored order: name, ferrostore type, struct code (little-endian).
FEATURES: tuple[tuple[str, str, str], ...] = (
    ("orders_30d", "int64", "q"),
    ("items_30d", "int64", "q"),
    ("avg_basket", "float32", "f"),
    ("discount_rate", "float32", "f"),
    ("lifetime_value", "float64", "d"),
)
FEATURE_NAMES = [name for name, _, _ in FEATURES]
BATCH = 1_000
#: One entity per call: calls per contender per round.
SINGLE_BLOCK = 500
#: 1,000 entities per call: calls per contender per round.
BATCH_BLOCK = 10
MIB = 1 << 20


# --------------------------------------------------------------------------- data


def make_dataset(n: int, seed: int) -> pa.Table:
    """``n`` distinct customers in random order with 5 features and an event time."""
    rng = np.random.default_rng(seed)
    ids = (rng.permutation(n) + 10_000_000).astype(np.int64)
    end = np.datetime64("2024-06-01T00:00:00", "us")
    offsets = rng.integers(0, 30 * 86_400 * 1_000_000, n, dtype=np.int64)
    return pa.table(
        {
            JOIN_KEY: ids,
            "orders_30d": rng.integers(0, 200, n, dtype=np.int64),
            "items_30d": rng.integers(0, 2_000, n, dtype=np.int64),
            "avg_basket": rng.gamma(2.0, 30.0, n).astype(np.float32),
            "discount_rate": rng.random(n, dtype=np.float32),
            "lifetime_value": rng.gamma(2.0, 500.0, n),
            "event_timestamp": pa.array(end - offsets.astype("timedelta64[us]")),
        }
    )


def _python_columns(table: pa.Table) -> list[list]:
    """Key, features and event time (µs) as Python lists, as a Python peer must take them."""
    columns = [table.column(JOIN_KEY).to_numpy()]
    columns += [table.column(name).to_numpy() for name in FEATURE_NAMES]
    columns.append(table.column("event_timestamp").to_numpy().view(np.int64))
    return [c.tolist() for c in columns]


# --------------------------------------------------------------------------- stores


class Ferrostore:
    """ferrostore's public ``OnlineStore`` API, as an application calls it."""

    def __init__(self, path: str) -> None:
        self.store = OnlineStore(path, map_size=4 << 30)
        self.store.register_view(
            VIEW, {JOIN_KEY: "int64"}, {name: kind for name, kind, _ in FEATURES}
        )

    def write(self, table: pa.Table) -> int:
        return self.store.write(VIEW, table).written

    def read_one(self, key: int) -> dict:
        return self.store.read_one(VIEW, [key], FEATURE_NAMES)

    def read(self, keys: np.ndarray):
        return self.store.read(pa.record_batch({JOIN_KEY: keys}), {VIEW: FEATURE_NAMES})


class LmdbPeer:
    """The Python ``lmdb`` package, one struct-packed row per key."""

    KEY = struct.Struct(">q")
    ROW = struct.Struct("<" + "".join(code for _, _, code in FEATURES) + "q")

    def __init__(self, path: str) -> None:
        self.env = lmdb.open(path, map_size=4 << 30)

    def write(self, table: pa.Table) -> int:
        ids, *values = _python_columns(table)
        with self.env.begin(write=True) as txn:
            _, added = txn.cursor().putmulti(
                zip(map(self.KEY.pack, ids), map(self.ROW.pack, *values), strict=True)
            )
        return added

    def read_one(self, key: int) -> tuple | None:
        with self.env.begin() as txn:
            value = txn.get(self.KEY.pack(key))
        return None if value is None else self.ROW.unpack(value)

    def read(self, keys: np.ndarray) -> list[tuple | None]:
        pack, unpack = self.KEY.pack, self.ROW.unpack
        out = []
        append = out.append
        with self.env.begin() as txn:
            get = txn.get
            for key in keys.tolist():
                value = get(pack(key))
                append(None if value is None else unpack(value))
        return out

    def close(self) -> None:
        self.env.close()


class SqlitePeer:
    """Feast's SQLite online store layout: one row per (entity, feature).

    Differences from Feast, all in SQLite's favour: the entity key is the 8-byte big-endian
    id (Feast serializes an ``EntityKey`` with the join key's name), a value is the
    struct-packed number (Feast stores a serialized ``ValueProto``), timestamps are integer
    microseconds (Feast stores ``datetime`` text parsed back on read), and the load is one
    ``executemany`` upsert (Feast runs an UPDATE then an INSERT OR IGNORE per value).
    """

    KEY = struct.Struct(">q")
    CODECS = tuple((name, struct.Struct("<" + code)) for name, _, code in FEATURES)
    TABLE = "project_customer"

    def __init__(self, path: str) -> None:
        self.conn = sqlite3.connect(path)
        self.conn.execute(
            f"CREATE TABLE IF NOT EXISTS {self.TABLE} (entity_key BLOB, feature_name TEXT, "
            "value BLOB, event_ts timestamp, created_ts timestamp,  "
            "PRIMARY KEY(entity_key, feature_name))"
        )
        self.conn.execute(
            f"CREATE INDEX IF NOT EXISTS {self.TABLE}_ek ON {self.TABLE} (entity_key);"
        )
        self.conn.commit()
        self._queries: dict[int, str] = {}
        self.decoders = {name: codec.unpack for name, codec in self.CODECS}

    def write(self, table: pa.Table) -> int:
        ids, *values, event_ts = _python_columns(table)
        packs = [(name, codec.pack) for name, codec in self.CODECS]

        def rows():
            for i, entity in enumerate(ids):
                key = self.KEY.pack(entity)
                ts = event_ts[i]
                for (name, pack), column in zip(packs, values, strict=True):
                    yield key, name, pack(column[i]), ts, None

        with self.conn:
            self.conn.executemany(
                f"INSERT INTO {self.TABLE} (entity_key, feature_name, value, event_ts, "
                "created_ts) VALUES (?, ?, ?, ?, ?) ON CONFLICT(entity_key, feature_name) "
                "DO UPDATE SET value = excluded.value, event_ts = excluded.event_ts, "
                "created_ts = excluded.created_ts",
                rows(),
            )
        return len(ids)

    def _query(self, n: int) -> str:
        query = self._queries.get(n)
        if query is None:
            query = self._queries[n] = (
                f"SELECT entity_key, feature_name, value, event_ts FROM {self.TABLE} "
                f"WHERE entity_key IN ({','.join('?' * n)}) ORDER BY entity_key"
            )
        return query

    def read_keys(self, keys: Sequence[int]) -> list[tuple[int | None, dict | None]]:
        """Feast's ``online_read``: one IN query, grouped per entity, values decoded."""
        packed = [self.KEY.pack(k) for k in keys]
        cur = self.conn.cursor()
        cur.execute(self._query(len(packed)), packed)
        rows = {k: list(g) for k, g in itertools.groupby(cur.fetchall(), key=lambda r: r[0])}
        decoders = self.decoders
        result: list[tuple[int | None, dict | None]] = []
        for key in packed:
            res = {}
            res_ts = None
            for _, name, blob, ts in rows.get(key, ()):
                res[name] = decoders[name](blob)[0]
                res_ts = ts
            result.append((res_ts, res) if res else (None, None))
        return result

    def read_one(self, key: int) -> tuple[int | None, dict | None]:
        return self.read_keys((key,))[0]

    def read(self, keys: np.ndarray) -> list[tuple[int | None, dict | None]]:
        return self.read_keys(keys.tolist())

    def close(self) -> None:
        self.conn.close()


# --------------------------------------------------------------------------- timing


@dataclass
class Result:
    """Per-call times of one contender, in nanoseconds."""

    name: str
    samples: np.ndarray

    @property
    def p50(self) -> float:
        return float(np.percentile(self.samples, 50))

    @property
    def p99(self) -> float:
        return float(np.percentile(self.samples, 99))


def _time_block(fn: Callable, args: Sequence, out: list[int]) -> None:
    clock = time.perf_counter_ns
    append = out.append
    for arg in args:
        start = clock()
        fn(arg)
        append(clock() - start)


def _noop(_arg: object) -> None:
    return None


def timer_overhead(args: Sequence) -> float:
    """Median time the harness itself takes around a call of a function doing nothing."""
    out: list[int] = []
    for _ in range(5):
        _time_block(_noop, args, out)
    return float(np.median(out))


def race(
    contenders: Sequence[tuple[str, Callable]],
    args: Sequence,
    block: int,
    overhead: float,
) -> list[Result]:
    """Time each call of every contender, round-robin in blocks of ``block`` calls.

    ``args`` holds one argument per call; every contender gets the same arguments in the
    same order. The first block of each contender is a warm-up and is discarded.
    """
    blocks = [args[i : i + block] for i in range(0, len(args), block)]
    samples: dict[str, list[int]] = {name: [] for name, _ in contenders}
    for _, fn in contenders:
        _time_block(fn, blocks[0], [])
    gc.collect()
    gc.disable()
    try:
        for chunk in blocks[1:]:
            for name, fn in contenders:
                _time_block(fn, chunk, samples[name])
    finally:
        gc.enable()
    return [
        Result(name, np.maximum(np.asarray(samples[name], dtype=np.float64) - overhead, 1.0))
        for name, _ in contenders
    ]


def fmt_time(ns: float) -> str:
    if ns >= 1e6:
        return f"{ns / 1e6:8.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:8.2f} µs"
    return f"{ns:8.0f} ns"


def print_reads(title: str, results: Sequence[Result], reference: Result) -> None:
    """One table: p50, p99 and the ratio ``this row's p50 / the reference's p50``."""
    print(f"\n{title}   (ratio = time / time of {reference.name})")
    print(f"  {'contender':46s} {'p50':>11s} {'p99':>11s} {'ratio':>9s}")
    for r in results:
        ratio = "" if r is reference else f"{r.p50 / reference.p50:8.2f}x"
        print(f"  {r.name:46s} {fmt_time(r.p50)} {fmt_time(r.p99)} {ratio:>9s}")


def timed_write(make: Callable[[str], object], table: pa.Table, root: str, tag: str) -> tuple:
    """Write ``table`` into a fresh store; returns (store, folder, seconds, entities stored)."""
    folder = tempfile.mkdtemp(prefix=f"{tag}-", dir=root)
    store = make(os.path.join(folder, "online.db") if tag == "sqlite" else folder)
    gc.collect()
    start = time.perf_counter()
    stored = store.write(table)
    return store, folder, time.perf_counter() - start, stored


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT MET"


# --------------------------------------------------------------------------- checks


def check_agreement(fs: Ferrostore, peer: LmdbPeer, sq: SqlitePeer, table, keys) -> None:
    """The three stores return the same values for ``keys`` (and nothing for a missing key)."""
    ids = table.column(JOIN_KEY).to_numpy()
    position = {int(k): i for i, k in enumerate(ids)}
    columns = {name: table.column(name).to_numpy() for name in FEATURE_NAMES}
    batch = fs.read(np.asarray(keys, dtype=np.int64)).values.to_pydict()
    lmdb_rows = peer.read(np.asarray(keys, dtype=np.int64))
    sqlite_rows = sq.read_keys(list(keys))
    for j, key in enumerate(keys):
        i = position[key]
        expected = [columns[name][i].item() for name in FEATURE_NAMES]
        one = fs.read_one(key)
        got = {
            "ferrostore read_one": [one[name] for name in FEATURE_NAMES],
            "ferrostore read": [batch[f"{VIEW}:{name}"][j] for name in FEATURE_NAMES],
            "lmdb peer": list(lmdb_rows[j][:5]),
            "sqlite": [sqlite_rows[j][1][name] for name in FEATURE_NAMES],
        }
        for who, values in got.items():
            if values != expected:
                raise RuntimeError(f"{who} read {values} for {key}: expected {expected}")
    missing = -1
    if any(fs.read_one(missing).values()) or peer.read_one(missing) or sq.read_one(missing)[1]:
        raise RuntimeError("a store returned values for a key never written")


# --------------------------------------------------------------------------- breakdown


def breakdown(fs: Ferrostore, single_keys: list[int], batches: list[np.ndarray], repeat: int):
    """Where a ferrostore call spends its time: wrapper, binding, Arrow conversion."""
    store = fs.store
    core = store._store  # the PyO3 object under the public wrapper
    now = dt.datetime.now(dt.UTC)
    now_us = _micros(now)
    names = FEATURE_NAMES
    one_feature = names[:1]
    values = [1, 2, 3.0, 4.0, 5.0]
    requests = [(VIEW, names)]
    views = {VIEW: names}
    overhead = timer_overhead(single_keys[:SINGLE_BLOCK])

    def one_row(k: int) -> pa.RecordBatch:
        return pa.record_batch({JOIN_KEY: np.array([k], dtype=np.int64)})

    single = race(
        [
            ("wrapper read_one(view, [k], features)", fs.read_one),
            ("wrapper read_one(..., now=datetime)",
             lambda k: store.read_one(VIEW, [k], names, now=now)),
            ("_core read_one(view, [k], features)", lambda k: core.read_one(VIEW, [k], names)),
            ("_core read_one(..., now_micros=int)",
             lambda k: core.read_one(VIEW, [k], names, now_micros=now_us)),
            ("_core read_one(view, [k])  all features", lambda k: core.read_one(VIEW, [k])),
            ("_core read_one(view, [k], [1 feature])",
             lambda k: core.read_one(VIEW, [k], one_feature)),
            ("_core read_one(view, [-k]) not found", lambda k: core.read_one(VIEW, [-k], names)),
            ("_core view(view)  schema as a dict", lambda k: core.view(VIEW)),
            ("python: _micros(now)", lambda k: _micros(now)),
            ("python: dict(zip(names, values, strict=True))",
             lambda k: dict(zip(names, values, strict=True))),
        ],
        single_keys[: SINGLE_BLOCK * (repeat // 2 + 1)],
        SINGLE_BLOCK,
        overhead,
    )  # fmt: skip
    print_reads("breakdown: one entity, ferrostore only", single, single[0])

    prebuilt = {k: one_row(k) for k in single_keys[: SINGLE_BLOCK * 3]}
    rows1 = race(
        [
            ("wrapper read(1-row batch built per call)", lambda k: fs.read(np.array([k]))),
            ("wrapper read(prebuilt 1-row batch)", lambda k: store.read(prebuilt[k], views)),
            ("_core read(prebuilt 1-row batch)", lambda k: core.read(requests, prebuilt[k])),
            ("_core read(prebuilt, now_micros=int)",
             lambda k: core.read(requests, prebuilt[k], now_micros=now_us)),
            ("pyarrow: record_batch of 1 row", one_row),
        ],
        list(prebuilt),
        SINGLE_BLOCK,
        overhead,
    )  # fmt: skip
    print_reads("breakdown: 1-row batch read, ferrostore only", rows1, rows1[0])

    built = [pa.record_batch({JOIN_KEY: b}) for b in batches]
    in_key_order = [pa.record_batch({JOIN_KEY: np.sort(b)}) for b in batches]
    many = race(
        [
            ("wrapper read(1,000 keys from numpy)", lambda i: fs.read(batches[i])),
            ("wrapper read(..., now=datetime)",
             lambda i: store.read(pa.record_batch({JOIN_KEY: batches[i]}), views, now=now)),
            ("_core read(prebuilt batch)", lambda i: core.read(requests, built[i])),
            ("_core read(prebuilt batch, keys sorted)",
             lambda i: core.read(requests, in_key_order[i])),
            ("pyarrow: record_batch of 1,000 keys",
             lambda i: pa.record_batch({JOIN_KEY: batches[i]})),
        ],
        list(range(len(batches))),
        BATCH_BLOCK,
        overhead,
    )  # fmt: skip
    print_reads("breakdown: 1,000 entities, ferrostore only", many, many[0])


# --------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entities", type=int, default=1_000_000, help="rows written")
    parser.add_argument("--repeat", type=int, default=20, help="timed rounds per read measurement")
    parser.add_argument("--seed", type=int, default=0, help="seed of data and keys")
    parser.add_argument(
        "--write-repeat", type=int, default=3, help="fresh writes of ferrostore and lmdb"
    )
    parser.add_argument(
        "--breakdown", action="store_true", help="also time the parts of ferrostore's calls"
    )
    args = parser.parse_args(argv)
    n, repeat = args.entities, max(args.repeat, 2)
    if n < BATCH:
        parser.error(f"--entities must be at least {BATCH}")

    print(
        f"ferrostore online store side by side: {n:,} entities, 5 features "
        "(2 int64, 2 float32, 1 float64) + event_timestamp"
    )
    print(
        f"python {platform.python_version()}, ferrostore {getattr(ferrostore, '__version__', '?')}"
        f", py-lmdb {lmdb.__version__} (LMDB {'.'.join(map(str, lmdb.version()))}), "
        f"SQLite {sqlite3.sqlite_version}, pyarrow {pa.__version__}, numpy {np.__version__}"
    )
    print(
        f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}; "
        f"seed {args.seed}, {repeat} rounds"
    )

    root = tempfile.mkdtemp(prefix="ferrostore-bench-")
    try:
        t0 = time.perf_counter()
        table = make_dataset(n, args.seed)
        print(f"dataset generated in {time.perf_counter() - t0:.1f} s")

        # (c) writes: fresh stores, one transaction each.
        writes: dict[str, list[float]] = {"ferrostore": [], "lmdb peer": [], "sqlite": []}
        fs = peer = None
        rounds = max(args.write_repeat, 1)
        for i in range(rounds):
            for tag, make in (("ferrostore", Ferrostore), ("lmdb peer", LmdbPeer)):
                store, folder, seconds, stored = timed_write(make, table, root, tag.split()[0])
                if stored != n:
                    raise RuntimeError(f"{tag} stored {stored} of {n} rows")
                writes[tag].append(seconds)
                if i == rounds - 1:  # the last stores written are the ones read
                    if tag == "ferrostore":
                        fs = store
                    else:
                        peer = store
                    continue
                if isinstance(store, LmdbPeer):
                    store.close()
                del store  # ferrostore closes its environment with its last handle
                shutil.rmtree(folder)
        sq, _, seconds, stored = timed_write(SqlitePeer, table, root, "sqlite")
        if stored != n:
            raise RuntimeError(f"sqlite stored {stored} of {n} rows")
        writes["sqlite"].append(seconds)
        if fs is None or peer is None:
            raise RuntimeError("no store was written")

        rng = np.random.default_rng(args.seed + 1)
        ids = table.column(JOIN_KEY).to_numpy()
        check_agreement(fs, peer, sq, table, [int(k) for k in rng.choice(ids, 50)])

        # (a) one entity per call.
        single_keys = [int(k) for k in rng.choice(ids, SINGLE_BLOCK * (repeat + 1))]
        single_np = {k: np.array([k], dtype=np.int64) for k in single_keys}
        overhead = timer_overhead(single_keys[:SINGLE_BLOCK])
        single = race(
            [
                ("ferrostore read_one(view, [key], features)", fs.read_one),
                ("ferrostore read(1-row record batch)", lambda k: fs.read(single_np[k])),
                ("lmdb peer: txn, get, struct.unpack", peer.read_one),
                ("sqlite (Feast layout): IN query, 1 key", sq.read_one),
            ],
            single_keys,
            SINGLE_BLOCK,
            overhead,
        )

        # (b) 1,000 random entities per call.
        batches = [rng.choice(ids, BATCH, replace=False) for _ in range(BATCH_BLOCK * (repeat + 1))]
        many = race(
            [
                ("ferrostore read(record batch from numpy)", fs.read),
                ("lmdb peer: get loop in one read txn", peer.read),
                ("sqlite (Feast layout): IN query", sq.read),
            ],
            batches,
            BATCH_BLOCK,
            overhead,
        )
        print(f"\ntimes per call, harness overhead of {overhead:.0f} ns subtracted")
        print_reads("(a) one entity per call, 5 features", single, single[0])
        print_reads("(b) 1,000 random entities per call, 5 features", many, many[0])

        print(
            f"\n(c) write of {n:,} rows in one transaction into a fresh store   "
            "(ratio = peer time / ferrostore time)"
        )
        print(f"  {'contender':46s} {'median':>11s} {'rows/s':>14s} {'ratio':>9s}")
        rates = {tag: n / float(np.median(times)) for tag, times in writes.items()}
        for tag, times in writes.items():
            ratio = "" if tag == "ferrostore" else f"{rates['ferrostore'] / rates[tag]:8.2f}x"
            label = f"{tag} ({len(times)} run{'s' if len(times) > 1 else ''})"
            print(f"  {label:46s} {np.median(times):9.2f} s {rates[tag]:14,.0f} {ratio:>9s}")
        print(
            "  (sqlite stores 5 rows per entity; its rows/s counts entities. The lmdb and sqlite"
            " times include converting the Arrow columns to Python objects.)"
        )

        lmdb_one = single[2].p50 / single[0].p50
        lmdb_many = many[1].p50 / many[0].p50
        print("\ntargets (p50; ratio = peer time / ferrostore time)")
        print(
            f"  one entity: ferrostore read_one {fmt_time(single[0].p50).strip()} vs lmdb peer "
            f"{fmt_time(single[2].p50).strip()}: ferrostore takes {1 / lmdb_one:.2f}x the peer's "
            f"time (ratio {lmdb_one:.2f}); target <= 1.50x the peer's time: "
            f"{verdict(1 / lmdb_one <= 1.5)}"
        )
        print(
            f"  1,000 entities: ferrostore read {fmt_time(many[0].p50).strip()} vs lmdb peer "
            f"{fmt_time(many[1].p50).strip()}: ratio {lmdb_many:.2f}x; target >= 10x: "
            f"{verdict(lmdb_many >= 10)}"
        )
        print(
            f"  writes: ferrostore {rates['ferrostore']:,.0f} rows/s; target >= 1,000,000 rows/s:"
            f" {verdict(rates['ferrostore'] >= 1e6)}"
        )

        if args.breakdown:
            breakdown(fs, single_keys, batches, repeat)
        peer.close()
        sq.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
